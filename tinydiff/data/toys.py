"""Two-dimensional toy distributions for diffusion models you can plot.

Scale: each set is built in its classic coordinates (e.g. scikit-learn's moons), then
shifted by its exact mean and divided by one isotropic factor so that E[x] = 0 and
E[|x|^2] = 2 exactly: on average each coordinate has variance 1, like the unit-variance
noise a diffusion model adds, and the picture keeps its aspect ratio. `noise` is the
standard deviation of Gaussian noise added in the classic coordinates before scaling (the
scaling accounts for it). The means and variances below are closed forms, derived in the
comments, and the tests check them against large samples.
"""

import math

import numpy as np

from tinydiff.data.checks import check_int, check_rng


def _check(n, rng, noise):
    n = check_int(n, "n", minimum=0)
    check_rng(rng)
    if not (isinstance(noise, (int, float, np.floating)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise: expected a finite number >= 0, got {noise!r}")
    return n


def _standardise(points, mean, total_variance, dtype):
    """Shift by the exact mean; divide by sqrt(total variance / 2) so E|x|^2 = 2."""
    scale = math.sqrt(total_variance / 2.0)
    return ((points - np.asarray(mean)) / scale).astype(dtype)


def swiss_roll(n, rng, noise=0.3, dtype=np.float32):
    """The 2-D Swiss roll: a spiral (t cos t, t sin t), t uniform in [1.5 pi, 4.5 pi].

    Parameters
    ----------
    n : int
        Number of points.
    rng : numpy.random.Generator
    noise : float
        Std of Gaussian noise per coordinate, in the spiral's units (its radius runs
        from about 4.7 to 14.1).

    Returns
    -------
    ndarray, shape (n, 2)
        Centred, scaled to E|x|^2 = 2.
    """
    n = _check(n, rng, noise)
    t = rng.uniform(1.5 * math.pi, 4.5 * math.pi, size=n)
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)  # (n,) x2 -> (n, 2)
    points += noise * rng.standard_normal((n, 2))
    # With a = 1.5 pi, b = 4.5 pi (sin a = -1, sin b = 1, cos a = cos b = 0), over b - a = 3 pi:
    # E[t cos t] = [t sin t + cos t]_a^b / 3pi = 6 pi / 3 pi = 2,
    # E[t sin t] = [sin t - t cos t]_a^b / 3pi = 2 / 3pi,
    # E[t^2] = (b^3 - a^3) / (3 (b - a)) = 9.75 pi^2, the summed second moments.
    mean = (2.0, 2.0 / (3.0 * math.pi))
    total_variance = 9.75 * math.pi**2 - mean[0] ** 2 - mean[1] ** 2 + 2 * noise**2
    return _standardise(points, mean, total_variance, dtype)


def moons(n, rng, noise=0.05, dtype=np.float32):
    """Two interleaving half circles (scikit-learn's make_moons layout), n // 2 and n - n // 2.

    The upper moon is (cos s, sin s), the lower (1 - cos s, 0.5 - sin s), s uniform in
    [0, pi]. `noise` is in those units (radius 1). Returns (n, 2), scaled to E|x|^2 = 2;
    rows alternate at random between the moons.
    """
    n = _check(n, rng, noise)
    s = rng.uniform(0.0, math.pi, size=n)
    lower = rng.permutation(n) < n - n // 2  # exactly n - n // 2 points on the lower moon
    x = np.where(lower, 1.0 - np.cos(s), np.cos(s))
    y = np.where(lower, 0.5 - np.sin(s), np.sin(s))
    points = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))  # (n, 2)
    # Moments for an even split (E cos = 0, E sin = 2/pi, E cos^2 = E sin^2 = 1/2):
    # E x = 1/2, E x^2 = (1/2 + 3/2) / 2 = 1, so Var x = 3/4;
    # E y = 1/4, E y^2 = (1/2 + 3/4 - 2/pi) / 2, so Var y = 9/16 - 1/pi.
    total_variance = 0.75 + 9.0 / 16.0 - 1.0 / math.pi + 2 * noise**2
    return _standardise(points, (0.5, 0.25), total_variance, dtype)


def gaussians8(n, rng, noise=0.1, dtype=np.float32):
    """Eight Gaussians centred on the unit circle at angles k pi / 4, equally likely.

    `noise` is each Gaussian's std in those units (radius 1). Returns (n, 2), scaled to
    E|x|^2 = 2: the radius becomes sqrt(2 / (1 + 2 noise^2)), about 1.40 for noise 0.1.
    """
    n = _check(n, rng, noise)
    angle = rng.integers(0, 8, size=n) * (math.pi / 4)
    points = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (n,) x2 -> (n, 2)
    points += noise * rng.standard_normal((n, 2))
    return _standardise(points, (0.0, 0.0), 1.0 + 2 * noise**2, dtype)


def checkerboard(n, rng, noise=0.0, dtype=np.float32):
    """Uniform points on the 8 dark squares of a 4x4 checkerboard covering [-2, 2]^2.

    A dark square is one whose column and row indices (0..3, from -2) have equal parity.
    Each coordinate's marginal is uniform on [-2, 2] (variance 4/3), so the scaling is
    sqrt(3)/2 for noise 0. Returns (n, 2), scaled to E|x|^2 = 2.
    """
    n = _check(n, rng, noise)
    x = rng.uniform(-2.0, 2.0, size=n)
    column = np.floor(x + 2.0)
    row = 2 * rng.integers(0, 2, size=n) + column % 2  # same parity as the column
    y = row - 2.0 + rng.uniform(0.0, 1.0, size=n)
    points = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))  # (n, 2)
    return _standardise(points, (0.0, 0.0), 8.0 / 3.0 + 2 * noise**2, dtype)
