"""Mode collapse, measured on gaussians8: how many of the 8 modes a sampler covers, and the share
of its samples that are "high quality", i.e. near a mode.

The criterion of Srivastava et al. 2017 (VEEGAN, sec. 5.1), used for the ring of 8 Gaussians
ever since:
    high quality   a sample within 3 sigma of the nearest mode's centre (sigma: each
                   Gaussian's std); for data itself that share is 1 - exp(-9/2) = 98.9 %
                   (|x - mu| / sigma is Rayleigh-distributed in 2-D)
    covered        a mode that at least `min_count` of the high-quality samples are nearest
                   to. The count is a convention, not a law: with the default 20 of 2500
                   samples (0.8 %, where an even spread gives each mode 12.5 %) a mode
                   visited by a stray handful of samples is not counted, a thin one is.

The centres and sigma are those of tinydiff.data.gaussians8 after its scaling to E|x|^2 = 2
(data/toys.py): radius r = 1 / sqrt((1 + 2 noise^2) / 2), sigma = noise * r.
"""

import math

import numpy as np

from tinydiff.nn.checks import check_positive_int

NUM_MODES = 8
HIGH_QUALITY_SIGMAS = 3.0  # Srivastava et al. 2017, sec. 5.1
DEFAULT_MIN_COUNT = 20


def gaussians8_modes(noise=0.1):
    """(centres (8, 2), sigma) of tinydiff.data.gaussians8(n, rng, noise): the angle k pi / 4 on
    the circle of radius 1 / sqrt((1 + 2 noise^2) / 2), and each Gaussian's std in those units."""
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise > 0):
        raise ValueError(f"noise: expected a finite number > 0, got {noise!r}")
    scale = 1.0 / math.sqrt((1.0 + 2.0 * noise**2) / 2.0)  # data/toys.py's _standardise
    angles = np.arange(NUM_MODES) * (math.pi / 4)
    centres = scale * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8,) x2 -> (8, 2)
    return centres, noise * scale


def mode_coverage(samples, centres, sigma, min_count=DEFAULT_MIN_COUNT):
    """Modes covered and the high-quality share of `samples`.

    Parameters
    ----------
    samples : ndarray (N, 2)
    centres : ndarray (K, 2), the modes' centres
    sigma : float, each mode's std
    min_count : int, high-quality samples a mode needs to count as covered

    Returns
    -------
    dict: modes_covered (int, of K), high_quality_share (float in [0, 1]),
    counts (list of K ints: high-quality samples nearest to each mode).
    """
    samples = np.asarray(samples, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    if samples.ndim != 2 or centres.ndim != 2 or samples.shape[1] != centres.shape[1] or len(samples) == 0:
        raise ValueError(f"samples and centres must have shapes (N, D) and (K, D) with N > 0, got "
                         f"{samples.shape} and {centres.shape}")
    if not (isinstance(sigma, (int, float, np.floating)) and sigma > 0):
        raise ValueError(f"sigma: expected a number > 0, got {sigma!r}")
    min_count = check_positive_int(min_count, "min_count")
    finite = np.isfinite(samples).all(axis=1)  # a diverged sample (NaN) is simply not high quality
    distance = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)  # (N, K)
    distance[~finite] = np.inf
    nearest = distance.argmin(axis=1)
    good = distance[np.arange(len(samples)), nearest] <= HIGH_QUALITY_SIGMAS * sigma
    counts = np.bincount(nearest[good], minlength=len(centres))
    return {"modes_covered": int((counts >= min_count).sum()), "high_quality_share": float(good.mean()),
            "counts": [int(c) for c in counts]}


def gaussians8_coverage(samples, noise=0.1, min_count=DEFAULT_MIN_COUNT):
    """mode_coverage of `samples` (N, 2) against tinydiff.data.gaussians8(..., noise)'s modes."""
    centres, sigma = gaussians8_modes(noise)
    return mode_coverage(samples, centres, sigma, min_count)
