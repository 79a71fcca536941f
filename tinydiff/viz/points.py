"""2-D point clouds and the paths points take (reverse-diffusion trajectories)."""

import numpy as np


def plot_points(ax, points, title=None, color="tab:blue", size=3.0, limits=(-3.0, 3.0), label=None, alpha=0.5):
    """Scatter 2-D points on `ax` with equal aspect and fixed limits.

    Parameters
    ----------
    points : ndarray, shape (N, 2)
    """
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {p.shape}")
    ax.scatter(p[:, 0], p[:, 1], s=size, c=color, alpha=alpha, linewidths=0, label=label)
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize="medium")
    return ax


def plot_trajectories(ax, paths, title=None, limits=(-3.0, 3.0), cmap="viridis"):
    """Draw each point's path through time, coloured from start (noise) to end (data).

    Parameters
    ----------
    paths : ndarray, shape (S, N, 2): S steps of N points
    """
    p = np.asarray(paths)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"paths must have shape (S, N, 2), got {p.shape}")
    for i in range(p.shape[1]):
        ax.plot(p[:, i, 0], p[:, i, 1], color="0.6", lw=0.6, alpha=0.7)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=10, c="tab:gray", label="start (noise)")
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=12, c="tab:red", label="end (sample)")
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(loc="lower right", fontsize="small")
    return ax
