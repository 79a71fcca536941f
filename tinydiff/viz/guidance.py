"""Figures of classifier-free guidance (lesson 07): score fields in 2-D, guided samples beside the
true class densities, rows of glyphs by guidance scale s, and the fidelity trade-off curves.

Each function draws on a new figure and returns it; the caller saves it (save_figure).
"""

import numpy as np
from matplotlib.ticker import NullFormatter

from tinydiff.viz.figures import new_figure
from tinydiff.viz.tiles import tile_images

CLASS_COLOURS = ("tab:blue", "tab:orange")  # class 0, class 1


def plot_score_fields(points, score_cond, score_uncond, s, zoom, noised, title, limits=(-2.6, 2.6)):
    """A 2x2 grid of arrow fields over faint noised points of each class, all at one scale: the
    conditional score (class 0), the unconditional one, their difference grad log p(c | x_t)
    drawn `zoom` times longer, and the guided score uncond + s (cond - uncond).

    Parameters
    ----------
    points : ndarray, shape (N, 2), where the arrows start: a square grid, raveled from np.meshgrid
    score_cond, score_uncond : ndarray, shape (N, 2), the scores at `points`
    s : float, the guidance scale of the guided field
    noised : list of ndarray (M, 2), noised points of class 0 and class 1
    title : str, the figure's title
    """
    fields = [
        ("conditional score, blue class: grad log p(x_t | c)", score_cond, "tab:blue", 1),
        ("unconditional score: grad log p(x_t)", score_uncond, "0.35", 1),
        (f"their difference, grad log p(c | x_t) (drawn {zoom}x longer)", score_cond - score_uncond, "tab:red", zoom),
        (f"guided score, s = {s:g}: uncond + s (cond - uncond)", score_uncond + s * (score_cond - score_uncond),
         "navy", 1),
    ]
    fig, axes = new_figure(2, 2, panel_size=(4.6, 4.6))
    cell = points[1, 0] - points[0, 0]  # grid spacing (points in np.meshgrid's order, x fastest)
    arrow_scale = np.percentile(np.linalg.norm(fields[0][1], axis=1), 90) / cell  # score units per grid cell
    for ax, (panel_title, field, colour, longer) in zip(axes.ravel(), fields):
        for c in (0, 1):
            ax.scatter(*noised[c].T, s=4, c=CLASS_COLOURS[c], alpha=0.3, linewidths=0)
        ax.quiver(points[:, 0], points[:, 1], field[:, 0], field[:, 1], color=colour, angles="xy", scale_units="xy",
                  scale=arrow_scale / longer, width=0.005)
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
        ax.set_aspect("equal")
        ax.set_title(panel_title, fontsize="small")
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2")
    fig.suptitle(title, fontsize="medium")
    return fig


def plot_guided_samples(samples, labels, class_mixtures, rows, real_fidelity, scales, title, limits=(-2.4, 2.4)):
    """Samples at two guidance scales over the contours of p(x | c), and fidelity against diversity.

    Parameters
    ----------
    samples : dict s -> ndarray (N, 2), the samples drawn at each scale s
    labels : ndarray, shape (N,), the class (0 or 1) each sample was asked for
    class_mixtures : two GaussianMixture, p(x | c), whose log_prob draws the contours
    rows : list of dict with "s", "fidelity", "diversity", by increasing s; the first (s = 0) is
        left off the curve, since it ignores the class
    real_fidelity : float, the fidelity of real points (a star on the curve's panel)
    scales : the two values of s to show samples of
    """
    grid_fine = np.linspace(*limits, 120)
    fx, fy = np.meshgrid(grid_fine, grid_fine)
    fine = np.stack([fx.ravel(), fy.ravel()], axis=1)  # (120*120, 2)
    fig, axes = new_figure(1, 3, panel_size=(4.4, 4.4), squeeze=True)
    for ax, s in zip(axes[:2], scales):
        for c in (0, 1):
            density = np.exp(class_mixtures[c].log_prob(fine)).reshape(fx.shape)
            ax.contour(fx, fy, density, levels=4, colors=CLASS_COLOURS[c], linewidths=0.8, alpha=0.8)
            ax.scatter(*samples[s][labels == c][:800].T, s=3, c=CLASS_COLOURS[c], alpha=0.5, linewidths=0,
                       label=f"asked for {'blue' if c == 0 else 'orange'}")
        stats = next(r for r in rows if r["s"] == s)
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
        ax.set_aspect("equal")
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2")
        ax.set_title(f"s = {s:g}: fidelity {stats['fidelity']:.0%}, diversity {stats['diversity']:.2f}",
                     fontsize="medium")
        ax.legend(loc="lower left", fontsize="small", markerscale=3)
    ax = axes[2]
    ax.plot([r["diversity"] for r in rows[1:]], [r["fidelity"] for r in rows[1:]], "o-", color="navy",
            label="guided samples (s = 1 ... 8)")
    for r in rows[1:]:
        ax.annotate(f"s={r['s']:g}", (r["diversity"], r["fidelity"]), textcoords="offset points", xytext=(5, -10),
                    fontsize="small")
    ax.plot([1.0], [real_fidelity], "k*", markersize=10, label="real points")
    ax.set_xlabel("diversity within a class (real points = 1)")
    ax.set_ylabel("fidelity: share sure to be the class asked for")
    ax.set_title("guidance trades diversity for fidelity", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    fig.suptitle(title, fontsize="medium")
    return fig


def plot_images_by_scale(images, scales, panels, title, ncols=10):
    """One panel per setting, each a column of image rows, one row block per guidance scale s.

    Parameters
    ----------
    images : dict (s, *key) -> ndarray (N, C, H, W) in [-1, 1], for every s and panel key
    scales : list of s, top to bottom
    panels : dict key -> panel title, left to right
    """
    blocks = {key: [tile_images(images[(s, *key)], ncols=ncols, scale=3) for s in scales] for key in panels}
    first = next(iter(blocks.values()))[0]
    n_images = len(images[(scales[0], *next(iter(panels)))])
    gap = np.full((14, first.shape[1], 3), 255, np.uint8)  # white band between two values of s
    fig, axes = new_figure(1, len(panels), panel_size=(5.0, 0.9 + 0.42 * len(scales) * n_images / ncols),
                           squeeze=True)
    for ax, (key, panel_title) in zip(axes, panels.items()):
        ax.imshow(np.concatenate([part for block in blocks[key] for part in (block, gap)][:-1]),
                  interpolation="nearest")
        height = blocks[key][0].shape[0] + len(gap)
        ax.set_yticks([i * height + blocks[key][0].shape[0] / 2 for i in range(len(scales))],
                      [f"s = {s:g}" + (" (uncond.)" if s == 0 else "") for s in scales])
        ax.set_xticks([])
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(panel_title, fontsize="medium")
    fig.suptitle(title, fontsize="medium")
    return fig


def plot_tradeoff(curves, real_frechet, real_fidelity, num, title, off_chart, label_scales):
    """Fidelity against Frechet distance (log scale) and against diversity, one line per curve.

    Parameters
    ----------
    curves : dict label -> list of dict with "s", "fidelity", "frechet", "diversity", by s
    real_frechet, real_fidelity : float, real glyphs' values (a star in each panel)
    num : int, samples per setting (for the axis label)
    title : str, the figure's title
    off_chart : dict name -> one such dict, the settings left off the axes; named in a note under them
    label_scales : dict "frechet"/"diversity" -> the values of s annotated on the first curve
    """
    note = ";  ".join(f"{name} fidelity {r['fidelity']:.0%}, Frechet {r['frechet']:.2f}, diversity "
                      f"{r['diversity']:.2f}" for name, r in off_chart.items())
    fig, axes = new_figure(1, 2, panel_size=(5.0, 4.4), squeeze=True)
    for ax, key, xlabel in ((axes[0], "frechet", f"Frechet distance to real glyphs ({num} samples; lower is closer; "
                                                 "log scale)"),
                            (axes[1], "diversity", "diversity within a digit (real glyphs = 1)")):
        for i, ((label, rs), style) in enumerate(zip(curves.items(), ("o-", "s--"))):
            ax.plot([r[key] for r in rs], [r["fidelity"] for r in rs], style, label=label)
            for r in rs:  # label one curve, at values of s far enough apart to read
                if i == 0 and r["s"] in label_scales[key]:
                    ax.annotate(f"s={r['s']:g}", (r[key], r["fidelity"]), textcoords="offset points",
                                xytext=(3, -13), fontsize="small")
        real_x = real_frechet if key == "frechet" else 1.0
        ax.plot([real_x], [real_fidelity], "k*", markersize=10, label="real glyphs")
        ax.set_xlabel(xlabel, fontsize="small")
        ax.set_ylabel("fidelity: share recognised as the digit asked")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    axes[0].set_xscale("log")  # the low values sit close together near the floor, large s far out
    frechets = [r["frechet"] for rs in curves.values() for r in rs]
    ticks = [v for v in (0.2, 0.3, 0.5, 1, 2, 5, 10, 20, 50) if min(frechets) / 1.5 < v < 1.5 * max(frechets)]
    axes[0].set_xticks(ticks, [f"{v:g}" for v in ticks])
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_title("fidelity against Frechet distance", fontsize="medium")
    axes[1].set_title("fidelity against diversity", fontsize="medium")
    fig.suptitle(title, fontsize="medium")
    fig.supxlabel("off the chart: " + note, fontsize="small")
    return fig


def tradeoff_table(rows, real, num, steps, seed):
    """The guidance sweep as a text table, one line per setting and one for real glyphs.

    Parameters
    ----------
    rows : list of dict with "s", "phi", "clip", "fidelity", "frechet", "diversity", "junk"
        (share "not a digit"), "bright" (share of |pixel| > 1.05) and "seconds" (for `num` images)
    real : dict with "fidelity", "frechet", "frechet_sd", "junk", "bright", real glyphs' values
    num, steps, seed : int, samples per setting, DDIM steps and the seed (for the heading)
    """
    header = (f"{'s':>4} {'phi':>4} {'clip x_0':>8} {'fidelity':>9} {'Frechet':>8} {'diversity':>10} "
              f"{'not a digit':>12} {'|pixel|>1.05':>13} {'sec/image':>9}")
    lines = [f"{num} samples per setting, DDIM {steps} steps, seed {seed}", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['s']:>4g} {r['phi']:>4g} {'yes' if r['clip'] else 'no':>8} {r['fidelity']:>9.1%} "
                     f"{r['frechet']:>8.3f} {r['diversity']:>10.2f} {r['junk']:>12.1%} {r['bright']:>13.1%} "
                     f"{r['seconds'] / num:>9.3f}")
    lines.append(f"{'real glyphs':>18} {real['fidelity']:>9.1%} {real['frechet']:>8.3f} {1.0:>10.2f} "
                 f"{real['junk']:>12.1%} {real['bright']:>13.1%}"
                 f"   (Frechet: mean of 3 sets of {num}, +- {real['frechet_sd']:.3f}: the floor)")
    return "\n".join(lines)
