"""Does a sample lie where the data lies? k-nearest-neighbour precision and recall.

A distance between two sample sets (distances.py) averages over all points: a few samples
stranded between the modes move it little, while a small shift of every point moves it a
lot. Precision and recall (Kynkaanniemi et al. 2019, "Improved precision and recall metric
for assessing generative models", sec. 2) ask a per-point question instead:

    r_k(y)        distance from a data point y to its k-th nearest other data point: the
                  radius of a ball around y that the data fills densely
    manifold(Y)   the union of those balls over all data points y in Y
    precision     share of the samples that fall inside manifold(data): 1 - precision is the
                  share of samples *off* the data manifold, what the eye sees as stray points
    recall        share of the data points that fall inside manifold(samples): 1 - recall is
                  the share of the data that the samples miss

Two independent draws of the same law do not score 1: a fresh point may fall just outside
every ball. Compare a sampler with that data-vs-data floor, as for the distances.
"""

import numpy as np
from scipy.spatial import cKDTree


def _check_sets(samples, data, k):
    """Both as float64 (N, D) and (M, D) arrays; named errors for what a caller can get wrong."""
    samples = np.asarray(samples, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    if samples.ndim != 2 or data.ndim != 2 or samples.shape[1] != data.shape[1]:
        raise ValueError(f"samples and data must have shapes (N, D) and (M, D) with the same D, "
                         f"got {samples.shape} and {data.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if min(len(samples), len(data)) < k + 1:
        raise ValueError(f"samples and data need more than k = {k} points each, got {len(samples)} and {len(data)}")
    if not (np.isfinite(samples).all() and np.isfinite(data).all()):
        raise ValueError("samples and data must be finite (no NaN or inf)")
    return samples, data


def in_knn_manifold(points, reference, k=3):
    """Whether each point lies in some reference point's k-NN ball.

    Parameters
    ----------
    points : ndarray, shape (N, D)
    reference : ndarray, shape (M, D), whose k-NN balls make the manifold
    k : int >= 1

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    points, reference = _check_sets(points, reference, k)
    tree = cKDTree(reference)
    radii = tree.query(reference, k=k + 1)[0][:, k]  # (M,); neighbour 0 is the point itself
    # A point is inside if |p - y| <= r_k(y) for some y. Any such y is within max(radii) of
    # p, so only those candidates are checked.
    candidates = tree.query_ball_point(points, r=radii.max())
    inside = np.zeros(len(points), dtype=bool)
    for i, idx in enumerate(candidates):
        if idx:
            idx = np.asarray(idx)
            inside[i] = np.any(np.linalg.norm(reference[idx] - points[i], axis=1) <= radii[idx])
    return inside


def knn_precision_recall(samples, data, k=3):
    """k-NN precision and recall of samples (N, D) against data (M, D).

    Parameters
    ----------
    samples : ndarray, shape (N, D), the generated points
    data : ndarray, shape (M, D), the real points
    k : int >= 1, which neighbour sets each ball's radius (3, as in the paper)

    Returns
    -------
    (precision, recall) : two floats in [0, 1]
    """
    return float(in_knn_manifold(samples, data, k).mean()), float(in_knn_manifold(data, samples, k).mean())
