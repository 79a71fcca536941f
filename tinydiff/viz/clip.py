"""CLIP's pictures (lesson 08): the similarity matrix of captions against images, and the
training curves (the contrastive loss, the learned temperature, retrieval on held-out images).

    similarity_figure(similarity (N_text, N_image), captions, images)   captions x thumbnails
    training_curves_figure(curves)   curves as CLIPTrainer.curves() / final/clip.json["curves"]
"""

import numpy as np

from tinydiff.viz.curves import plot_curves
from tinydiff.viz.figures import new_figure, save_figure
from tinydiff.viz.images import to_uint8


def check_matrix(similarity, captions, images):
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2 or s.shape != (len(captions), len(images)) or 0 in s.shape:
        raise ValueError(f"similarity: expected (N_text, N_image) = ({len(captions)}, {len(images)}), one row per "
                         f"caption and one column per image, got shape {s.shape}")
    if np.asarray(images).ndim != 4:
        raise ValueError(f"images: expected (N_image, C, H, W) in [-1, 1], got shape {np.asarray(images).shape}")
    return s


def similarity_figure(similarity, captions, images, title=None, cell=0.9):
    """The similarity matrix (N_text, N_image), captions as row labels and each image's
    thumbnail above its column; every value written in its cell, each caption's best image
    boxed (its text-to-image retrieval). Returns the Figure."""
    s = check_matrix(similarity, captions, images)
    n_text, n_image = s.shape
    label_width = 0.075 * max(len(c) for c in captions)  # inches for the longest caption
    fig, _ = new_figure(1, 1, panel_size=(label_width + cell * n_image + 1.2, cell * (n_text + 1) + 0.8))
    fig.clear()
    grid = fig.add_gridspec(2, n_image, height_ratios=(1, n_text))
    for j in range(n_image):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(to_uint8(images[j]), interpolation="nearest")
        ax.set_axis_off()
    ax = fig.add_subplot(grid[1, :])
    shown = ax.imshow(s, cmap="viridis", aspect="auto")
    best = np.argmax(s, axis=1)
    for i in range(n_text):
        for j in range(n_image):
            bright = s[i, j] > (s.min() + s.max()) / 2
            ax.text(j, i, f"{s[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="black" if bright else "white", fontweight="bold" if j == best[i] else "normal")
        ax.add_patch(_box(best[i], i))
    ax.set_xticks(range(n_image), [f"image {j}" for j in range(n_image)], fontsize=7)
    ax.set_yticks(range(n_text), captions, fontsize=8)
    ax.set_xlabel("images (boxed: each caption's best image)")
    fig.colorbar(shown, ax=ax, shrink=0.8, label="t * cosine similarity")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _box(x, y):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)


def save_similarity_matrix(path, similarity, captions, images, title=None):
    """similarity_figure written as a PNG at `path`; returns the path."""
    return save_figure(similarity_figure(similarity, captions, images, title), path)


def training_curves_figure(curves, title=None):
    """Three panels: the contrastive loss, the inverse temperature t = exp(logit_scale), and the
    held-out retrieval of all four attributes both ways, against the step.

    curves : dict with "loss" [[step, loss]...], "temperature" [[step, t]...] and "retrieval"
        [[step, text-to-image, image-to-text]...] (CLIPTrainer.curves(), clip.json["curves"]).
    """
    for key in ("loss", "temperature", "retrieval"):
        if key not in curves:
            raise ValueError(f"curves: expected the keys loss, temperature and retrieval, got {sorted(curves)}")
    fig, axes = new_figure(1, 3, panel_size=(3.6, 2.9))
    loss = np.asarray(curves["loss"], dtype=np.float64).reshape(-1, 2)
    plot_curves(axes[0, 0], loss[:, 0], {"contrastive loss": loss[:, 1]}, "step", "loss", "training loss")
    temp = np.asarray(curves["temperature"], dtype=np.float64).reshape(-1, 2)
    plot_curves(axes[0, 1], temp[:, 0], {"t = exp(logit_scale)": temp[:, 1]}, "step", "t", "learned temperature")
    ret = np.asarray(curves["retrieval"], dtype=np.float64).reshape(-1, 3)
    plot_curves(axes[0, 2], ret[:, 0], {"text -> image": ret[:, 1], "image -> text": ret[:, 2]}, "step",
                "all four attributes right", "held-out retrieval")
    axes[0, 2].set_ylim(0, 1.02)
    for ax in axes[0, :2]:
        ax.get_legend().remove()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_training_curves(path, curves, title=None):
    """training_curves_figure written as a PNG at `path`; returns the path."""
    return save_figure(training_curves_figure(curves, title), path)
