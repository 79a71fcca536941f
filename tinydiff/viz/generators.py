"""Figures of lesson 11 (diffusion against a GAN, a VAE and an autoregressive model): samples side
by side, the sampling-cost axis, the ring's mode coverage, training stability and the NLLs."""

import numpy as np

from tinydiff.viz.figures import new_figure
from tinydiff.viz.images import to_uint8
from tinydiff.viz.points import plot_points


def samples_figure(samples, ncols=12, title=None):
    """One row per model: samples is a dict name -> images (>= ncols, 1, H, W) in [-1, 1]."""
    fig, axes = new_figure(len(samples), 1, panel_size=(ncols * 0.75, 0.95))
    for ax, (name, images) in zip(axes[:, 0], samples.items()):
        row = np.concatenate([np.pad(to_uint8(img), 1, constant_values=128) for img in images[:ncols]], axis=1)
        ax.imshow(row, cmap="gray", interpolation="nearest", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def cost_figure(costs, title=None):
    """Two panels against network passes per image (log x): the measured seconds per image and the
    share recognised. costs: list of dicts with name, passes, seconds, recognised."""
    fig, axes = new_figure(1, 2, panel_size=(4.6, 3.4))
    for c in costs:
        for ax, key in zip(axes[0], ("seconds", "recognised")):
            ax.scatter([c["passes"]], [c[key]], s=40)
            ax.annotate(c["name"], (c["passes"], c[key]), fontsize="x-small", xytext=(4, 3), textcoords="offset points")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("sampling seconds per image")
    axes[0, 1].set_ylabel("share recognised by the classifier")
    axes[0, 1].set_ylim(-0.05, 1.05)
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("sequential network passes per image")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def ring_figure(panels, centres, radius, title=None):
    """Point clouds side by side (panels: name -> (N, 2) points), each mode's 3-sigma circle drawn."""
    fig, axes = new_figure(1, len(panels), panel_size=(3.4, 3.4))
    angle = np.linspace(0, 2 * np.pi, 60)
    for ax, (name, points) in zip(axes[0], panels.items()):
        plot_points(ax, points, title=name, size=2.0, limits=(-2.2, 2.2))
        for cx, cy in centres:
            ax.plot(cx + radius * np.cos(angle), cy + radius * np.sin(angle), color="tab:red", lw=0.8)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def stability_figure(gan_quality, diffusion_losses, diffusion_quality, title=None):
    """Left: the share recognised over training seconds, GAN and diffusion; right: diffusion's loss.
    gan_quality, diffusion_quality: lists of (seconds, recognised); diffusion_losses: (seconds, loss)."""
    fig, axes = new_figure(1, 2, panel_size=(4.6, 3.3))
    for name, rows, style in (("GAN", gan_quality, "o-"), ("diffusion", diffusion_quality, "s-")):
        if rows:
            x, y = np.array(rows, dtype=np.float64).T
            axes[0, 0].plot(x, y, style, label=name, ms=3)
    axes[0, 0].set_xlabel("training seconds")
    axes[0, 0].set_ylabel("share recognised")
    axes[0, 0].set_ylim(-0.05, 1.05)
    axes[0, 0].legend()
    x, y = np.array(diffusion_losses, dtype=np.float64).T
    axes[0, 1].plot(x, y, lw=0.8, color="tab:orange")
    axes[0, 1].set_xlabel("training seconds")
    axes[0, 1].set_ylabel("diffusion training loss")
    axes[0, 1].set_yscale("log")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def nll_figure(nlls, title=None):
    """Bars of bits/dim with one standard error; nlls: name -> (mean, stderr, kind)."""
    fig, axes = new_figure(1, 1, panel_size=(5.6, 3.2))
    ax = axes[0, 0]
    names = list(nlls)
    means = [nlls[n][0] for n in names]
    errors = [nlls[n][1] for n in names]
    colors = ["tab:green" if nlls[n][2] == "exact" else "tab:blue" for n in names]
    ax.barh(names, means, xerr=errors, color=colors, capsize=4)
    for i, n in enumerate(names):
        ax.text(means[i] + errors[i], i, f"  {means[i]:.2f} ({nlls[n][2]})", va="center", fontsize="small")
    ax.set_xlabel("bits per dimension on held-out 8-bit glyphs (lower is better)")
    ax.set_xlim(0, max(m + e for m, e in zip(means, errors)) * 1.45)
    ax.invert_yaxis()
    if title:
        ax.set_title(title, fontsize="medium")
    return fig
