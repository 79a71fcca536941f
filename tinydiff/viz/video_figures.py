"""Lesson 10's figures (matplotlib, Agg): clips side by side as frame strips, the centroid paths
clips trace, the checks of tinydiff.metrics.video_checks as bars, temporal attention maps, and
training curves."""

import numpy as np

from tinydiff.viz.figures import new_figure, save_figure
from tinydiff.viz.images import to_uint8


def strips_figure(path, rows, title):
    """rows: list of (label, clip (F, 3, H, W)); one row of F frames each, labelled on the left."""
    F = max(len(clip) for _, clip in rows)
    fig, axes = new_figure(len(rows), F, panel_size=(1.0, 1.05))
    for r, (label, clip) in enumerate(rows):
        for f in range(F):
            ax = axes[r, f]
            ax.set_xticks([])
            ax.set_yticks([])
            if f < len(clip):
                ax.imshow(to_uint8(np.transpose(clip[f], (1, 2, 0))), interpolation="nearest")
            if r == 0:
                ax.set_title(f"frame {f}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def paths_figure(path, groups, title, size=32):
    """groups: list of (label, centroids (N, F, 2) in pixels of `size`, prompts (N,)); one panel
    per group, every clip's path from a dot (frame 0) along its frames, on the frame's box (y
    down, as the picture)."""
    fig, axes = new_figure(1, len(groups), panel_size=(3.2, 3.3))
    colours = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray")
    for ax, (label, centroids, prompts) in zip(axes[0], groups):
        for n, (c, prompt) in enumerate(zip(centroids, prompts)):
            colour = colours[n % len(colours)]
            ok = np.isfinite(c).all(axis=1)
            ax.plot(c[ok, 0], c[ok, 1], "-", color=colour, lw=1.2, alpha=0.85)
            if ok[0]:
                ax.plot(c[0, 0], c[0, 1], "o", color=colour, ms=4)
            if ok.sum() >= 2:
                last = np.flatnonzero(ok)[-1]
                ax.annotate("", xy=c[last], xytext=c[np.flatnonzero(ok)[-2]],
                            arrowprops=dict(arrowstyle="->", color=colour, lw=1.2))
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x (px)", fontsize=8)
    axes[0, 0].set_ylabel("y (px, down)", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


CHECKS = ("frames_valid", "constant", "as_captioned", "direction_right", "speed_right", "smooth", "passed")


def checks_figure(path, summaries, title):
    """summaries: list of (label, video_checks(...).summary()); grouped bars of each check's rate."""
    fig, axes = new_figure(1, 1, panel_size=(8.0, 3.4))
    ax = axes[0, 0]
    width = 0.8 / len(summaries)
    x = np.arange(len(CHECKS))
    hatches = ("", "//", "..", "xx")
    for k, (label, summary) in enumerate(summaries):
        rates = [summary[c] for c in CHECKS]
        bars = ax.bar(x + (k - (len(summaries) - 1) / 2) * width, rates, width, label=label, hatch=hatches[k % 4],
                      edgecolor="black", linewidth=0.5)
        for bar, rate in zip(bars, rates):
            ax.text(bar.get_x() + bar.get_width() / 2, rate + 0.01, f"{rate:.0%}", ha="center", fontsize=6)
    ax.set_xticks(x, [c.replace("_", " ") for c in CHECKS], fontsize=8)
    ax.set_ylim(0, 1.3)
    ax.set_ylabel("share of clips (frames for 'frames valid')", fontsize=8)
    ax.legend(fontsize=8, loc="upper center", ncol=len(summaries))
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def temporal_maps_figure(path, maps, focused, names, title):
    """maps, focused: (modules, F, F) temporal attention (rows: query frame, columns: key frame),
    over all pixels and over the shape's; one column per motion module."""
    modules, F, _ = maps.shape
    fig, axes = new_figure(2, modules, panel_size=(2.0, 2.1))
    for m in range(modules):
        for r, (grid, what) in enumerate(((maps[m], "all pixels"), (focused[m], "shape's pixels"))):
            ax = axes[r, m]
            image = ax.imshow(grid, vmin=0, vmax=max(float(np.nanmax(grid)), 1.0 / F), cmap="viridis")
            ax.set_xticks(range(0, F, max(1, F // 4)))
            ax.set_yticks(range(0, F, max(1, F // 4)))
            ax.tick_params(labelsize=6)
            short = names[m].replace("motion_modules.", "mm").replace("_blocks.", "").replace("down", "down ")
            ax.set_title(f"{short}\n{what}", fontsize=7)
            if m == 0:
                ax.set_ylabel("query frame", fontsize=7)
            if r == 1:
                ax.set_xlabel("key frame", fontsize=7)
            fig.colorbar(image, ax=ax, shrink=0.7).ax.tick_params(labelsize=5)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def curves_figure(path, curves, title, ylabel="held-out loss"):
    """curves: list of (label, steps, values); one line each, with markers."""
    fig, axes = new_figure(1, 1, panel_size=(5.0, 3.2))
    ax = axes[0, 0]
    styles = ("-o", "--s", ":^")
    for k, (label, steps, values) in enumerate(curves):
        ax.plot(steps, values, styles[k % 3], label=label, ms=4)
    ax.set_xlabel("training step", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
