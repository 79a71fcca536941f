"""Histograms of values against a reference density."""

import numpy as np


def plot_histogram(ax, values, label, bins=80, value_range=(-4.0, 4.0), reference=None, reference_label=None,
                   title=None, xlabel="value"):
    """A density histogram of `values`, optionally over a reference density curve.

    Parameters
    ----------
    ax : matplotlib Axes
    values : ndarray, any shape (flattened)
    label : str, legend entry of the histogram
    reference : callable x -> density, or None
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    ax.hist(v, bins=bins, range=value_range, density=True, alpha=0.6, label=label)
    if reference is not None:
        xs = np.linspace(value_range[0], value_range[1], 400)
        ax.plot(xs, reference(xs), "k-", lw=1.5, label=reference_label)
    ax.set_xlim(*value_range)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return ax


def standard_normal_pdf(x):
    """N(0, 1) density, for overlays."""
    return np.exp(-0.5 * np.asarray(x) ** 2) / np.sqrt(2 * np.pi)
