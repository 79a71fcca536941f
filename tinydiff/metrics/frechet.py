"""Frechet distance between two Gaussians fitted to feature vectors (Dowson & Landau 1982;
used on Inception features as FID by Heusel et al. 2017, eq. 6; here on the features of a
tinydiff classifier, so numbers are comparable only within tinydiff):

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
"""

import numpy as np
from scipy import linalg


def feature_statistics(features):
    """(N, F) features -> (mean (F,), covariance (F, F)), float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features: expected (N, F) with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2):
    """Squared Frechet distance between N(mu1, cov1) and N(mu2, cov2)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"means {mu1.shape}, {mu2.shape} and covariances {cov1.shape}, {cov2.shape} do not match")
    root = linalg.sqrtm(cov1 @ cov2)
    if not np.all(np.isfinite(root)):  # singular product: nudge both diagonals, as is customary
        eps = 1e-6 * np.eye(len(mu1))
        root = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    root = np.real(root)  # round-off can leave a tiny imaginary part
    diff = mu1 - mu2
    d2 = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(root))
    return max(d2, 0.0)  # a squared distance; round-off in sqrtm can leave -1e-7 for equal inputs
