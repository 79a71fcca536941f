"""Line plots of several named curves on one axes (schedules, losses, metrics)."""

import numpy as np


def plot_curves(ax, x, curves, xlabel, ylabel, title=None, logy=False, legend_loc="best", styles=None):
    """Draw each curve of `curves` (label -> y array of x's length) on `ax` with a legend.

    Parameters
    ----------
    ax : matplotlib Axes
    x : ndarray, shape (T,)
    curves : dict of str -> ndarray, shape (T,)
    xlabel, ylabel, title : str
    logy : bool, logarithmic y axis (non-positive values are left out of the plot)
    styles : dict of str -> matplotlib line style ("--", ":"), for curves that overlap others
    """
    x = np.asarray(x)
    for label, y in curves.items():
        y = np.asarray(y, dtype=np.float64)
        if y.shape != x.shape:
            raise ValueError(f"curve {label!r} must have the shape of x {x.shape}, got {y.shape}")
        if logy:
            y = np.where(y > 0, y, np.nan)
        ax.plot(x, y, (styles or {}).get(label, "-"), label=label, lw=1.8)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize="small")
    return ax
