"""Figures of lesson 09 (DreamBooth and LoRA): rows of samples side by side, and a LoRA rank
against the concept fidelity it reaches and the size of its file."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinydiff.viz.images import plot_image_grid  # noqa: E402


def rows_figure(rows, row_labels, title, col_labels=None, notes=None):
    """One row of images per entry of `rows`, labelled on the left.

    Parameters
    ----------
    rows : list of R arrays (C, 3, H, W) in [-1, 1], the same C for all
    row_labels : R str;  col_labels : C str, optional
    title : str
    notes : R x C nested list of str, optional: a line under each image (e.g. "ring" / "no")

    Returns
    -------
    matplotlib Figure
    """
    counts = {len(r) for r in rows}
    if len(counts) != 1 or len(row_labels) != len(rows):
        raise ValueError(f"rows: expected {len(row_labels)} rows of the same length, got lengths {[len(r) for r in rows]}")
    ncols = counts.pop()
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.25 * ncols + 1.6, 1.35 * len(rows) + 0.7), squeeze=False)
    plot_image_grid(axes, [list(r) for r in rows], row_labels, col_labels)
    for r, label in enumerate(row_labels):
        axes[r, 0].set_ylabel(label, fontsize="small", rotation=0, ha="right", va="center")
        if notes is not None:
            for c in range(ncols):
                axes[r, c].set_xlabel(notes[r][c], fontsize="x-small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    return fig


def rank_figure(ranks, fidelity, file_kb, full_kb, title):
    """Concept fidelity (bars, left axis) and adapter file size (line, right axis, log) per LoRA rank,
    with the whole UNet's size as a dashed line.

    ranks : list of int;  fidelity : list of float in [0, 1];  file_kb : list of float
    full_kb : float, the UNet's weights in KB;  title : str
    """
    if not len(ranks) == len(fidelity) == len(file_kb):
        raise ValueError("ranks, fidelity and file_kb: expected one value per rank")
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    x = np.arange(len(ranks))
    ax.bar(x, 100 * np.asarray(fidelity), color="tab:blue", width=0.5, label="concept fidelity")
    ax.axhline(80, color="tab:blue", linestyle=":", linewidth=1)
    ax.set_ylim(0, 105)
    ax.set_ylabel("concept fidelity (%)", color="tab:blue")
    ax.set_xticks(x, [f"rank {r}" for r in ranks])
    size = ax.twinx()
    size.plot(x, file_kb, "o-", color="tab:orange", label="adapter file")
    size.axhline(full_kb, color="tab:orange", linestyle="--", linewidth=1)
    size.text(x[-1], full_kb * 0.8, f"whole UNet {full_kb / 1e3:.1f} MB", ha="right", va="top", fontsize="small",
              color="tab:orange")
    size.set_yscale("log")
    size.set_ylim(min(file_kb) / 3, full_kb * 2)
    size.set_ylabel("file size (KB, log)", color="tab:orange")
    for xi, kb in zip(x, file_kb):
        size.annotate(f"{kb:.0f} KB", (xi, kb), textcoords="offset points", xytext=(8, 4), fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig
