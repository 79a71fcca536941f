"""Distances between two sets of samples, for judging a sampler against fresh data.

    energy distance   E|X - Y| - (E|X - X'| + E|Y - Y'|) / 2, halved form of Szekely & Rizzo
                      2013 (eq. 1 has 2E|X-Y| - E|X-X'| - E|Y-Y'|); zero iff the laws agree.
                      From samples: the V-statistic (every pair, i = j included) is >= 0 but
                      biased up by about (E|X-X'| / N + E|Y-Y'| / M) / 2 -- two draws of the
                      same law score that much, not 0; the U-statistic (i != j) is unbiased,
                      so it scatters around 0 for equal laws and may come out negative
    sliced W2         sqrt of the mean over random directions of the squared 1-D Wasserstein-2
                      distance between the projections (Rabin et al. 2011; Bonneel et al. 2015)

Both take samples x (N, D) and y (M, D). The energy distance uses all N*M pairs: keep N, M
in the low thousands.
"""

import numpy as np


def _check_pair(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have shapes (N, D) and (M, D) with the same D, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"x and y need at least 2 samples each, got {len(x)} and {len(y)}")
    return x, y


def mean_pairwise_distance(a, b=None):
    """Mean Euclidean distance between the rows of a (N, D) and of b (M, D); with b omitted,
    between the N (N - 1) ordered pairs of distinct rows of a: the spread of one set. Computed
    in float64 (the expansion |a|^2 + |b|^2 - 2 a.b cancels badly in float32)."""
    a = np.asarray(a, dtype=np.float64)
    if b is None:
        return _mean_pairwise_distance(a, a, skip_diagonal=True)
    return _mean_pairwise_distance(a, np.asarray(b, dtype=np.float64))


def class_diversity(features, labels, reference_features, reference_labels):
    """The spread within each class (mean_pairwise_distance of its rows) relative to the
    reference's for the same class, averaged over the classes with at least 2 rows.

    Parameters
    ----------
    features : ndarray, shape (N, D), and labels (N,) ints: the samples and their classes
    reference_features : ndarray, shape (M, D), and reference_labels (M,): real data, every
        class of `labels` with at least 2 rows
    """
    ratios = [mean_pairwise_distance(features[labels == d])
              / mean_pairwise_distance(reference_features[reference_labels == d])
              for d in np.unique(labels) if np.sum(labels == d) >= 2]
    return float(np.mean(ratios))


def _mean_pairwise_distance(a, b, skip_diagonal=False):
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T  # (N, M)
    total = np.sqrt(np.maximum(d2, 0.0)).sum()
    if skip_diagonal:  # a is b: the N zero self-distances are left out of the mean
        return total / (len(a) * (len(a) - 1))
    return total / (len(a) * len(b))


def energy_distance(x, y, unbiased=False):
    """Energy distance between the laws of x (N, D) and y (M, D), estimated from the samples.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    y : ndarray, shape (M, D)
    unbiased : bool
        False: the V-statistic, >= 0 (0 only for identical sets) but on average
        (E|X-X'| / N + E|Y-Y'| / M) / 2 above the true distance. True: the U-statistic, whose
        mean over draws is the true distance (0 for equal laws), so single values may be < 0.

    Returns
    -------
    float
    """
    x, y = _check_pair(x, y)
    within = _mean_pairwise_distance(x, x, unbiased) + _mean_pairwise_distance(y, y, unbiased)
    return float(_mean_pairwise_distance(x, y) - 0.5 * within)


def sliced_wasserstein(x, y, generator, num_projections=128):
    """Sliced Wasserstein-2 distance between x (N, D) and y (M, D).

    Each random unit direction turns both sets into 1-D samples, whose W2 distance is the
    mean squared gap between matching quantiles. With N != M the quantiles are interpolated
    on a common grid of max(N, M) levels.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    y : ndarray, shape (M, D)
    generator : numpy.random.Generator, draws the directions
    num_projections : int >= 1

    Returns
    -------
    float
    """
    x, y = _check_pair(x, y)
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
    if int(num_projections) < 1:
        raise ValueError(f"num_projections must be >= 1, got {num_projections}")
    dirs = generator.standard_normal((x.shape[1], int(num_projections)))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)  # (D, P) unit columns
    px = np.sort(x @ dirs, axis=0)  # (N, P)
    py = np.sort(y @ dirs, axis=0)  # (M, P)
    n = max(len(px), len(py))
    levels = (np.arange(n) + 0.5) / n
    qx = _quantiles(px, levels)
    qy = _quantiles(py, levels)
    return float(np.sqrt(np.mean((qx - qy) ** 2)))


def _quantiles(sorted_proj, levels):
    """Empirical quantiles of each column of a sorted (N, P) array at `levels` (L,) -> (L, P)."""
    n = len(sorted_proj)
    if n == len(levels):
        return sorted_proj
    grid = (np.arange(n) + 0.5) / n
    return np.stack([np.interp(levels, grid, col) for col in sorted_proj.T], axis=1)
