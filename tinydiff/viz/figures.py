"""Figures without pyplot: matplotlib's object API on the Agg canvas, so nothing depends on
(or changes) a global backend, and figures work on machines without a display."""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(nrows=1, ncols=1, panel_size=(4.0, 3.2), squeeze=False):
    """A Figure with an Agg canvas and a grid of axes.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, shape (nrows, ncols) (or squeezed if squeeze=True)
    """
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be >= 1, got {nrows} and {ncols}")
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def save_figure(fig, path, dpi=110):
    """Write `fig` as PNG to `path` (folders created) and return the path."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def figure_to_array(fig, dpi=80):
    """Render `fig` to an RGB image, shape (H, W, 3) uint8 (one frame of an animation)."""
    fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
