"""Frechet distance between Gaussians: closed forms it must reproduce.

For commuting covariances (same eigenvectors, eigenvalues l1_i and l2_i) the matrix square
root is taken eigenvalue by eigenvalue, so

    d^2 = |mu_1 - mu_2|^2 + sum_i (sqrt(l1_i) - sqrt(l2_i))^2,

which in 1-D is (m1 - m2)^2 + (s1 - s2)^2. sqrt(d^2) is the Wasserstein-2 distance between the
two Gaussians (Dowson & Landau 1982), so it is symmetric and obeys the triangle inequality.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.metrics import feature_statistics, frechet_distance

seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 6)


def random_spd(rng, d, floor=0.1):
    """A well-conditioned symmetric positive definite (d, d) matrix."""
    a = rng.standard_normal((d, d))
    return a @ a.T / d + floor * np.eye(d)


def random_rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))  # (d, d) orthogonal


@given(seeds, dims)
def test_identical_gaussians_are_at_distance_zero(seed, d):
    rng = np.random.default_rng(seed)
    mu, cov = rng.standard_normal(d), random_spd(rng, d)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9 * (1 + np.trace(cov)))


@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(0.01, 4), st.floats(0.01, 4))
def test_one_dimension_is_mean_gap_squared_plus_std_gap_squared(m1, m2, s1, s2):
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2
    got = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)
    # scalars are accepted as 1-D Gaussians too
    assert frechet_distance(m1, s1**2, m2, s2**2) == pytest.approx(expected, rel=1e-7, abs=1e-9)


@given(seeds, dims)
def test_diagonal_covariances_add_up_per_dimension(seed, d):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = sum((mu1[i] - mu2[i]) ** 2 + (s1[i] - s2[i]) ** 2 for i in range(d))
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


@given(seeds, dims)
def test_commuting_covariances_in_a_rotated_basis(seed, d):
    # Same eigenvectors, different eigenvalues: the diagonal formula holds in the eigenbasis.
    rng = np.random.default_rng(seed)
    q = random_rotation(rng, d)
    l1, l2 = rng.uniform(0.05, 4, d), rng.uniform(0.05, 4, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(l1) @ q.T, mu2, q @ np.diag(l2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-8)


@given(seeds, dims)
def test_equal_covariances_leave_only_the_mean_gap(seed, d):
    rng = np.random.default_rng(seed)
    cov = random_spd(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    assert frechet_distance(mu1, cov, mu2, cov) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-6, abs=1e-8)


@given(seeds, dims)
def test_symmetric_nonnegative_and_a_metric_after_the_square_root(seed, d):
    rng = np.random.default_rng(seed)
    g = [(rng.standard_normal(d), random_spd(rng, d)) for _ in range(3)]  # three general Gaussians
    d12, d21 = frechet_distance(*g[0], *g[1]), frechet_distance(*g[1], *g[0])
    d23, d13 = frechet_distance(*g[1], *g[2]), frechet_distance(*g[0], *g[2])
    assert d12 == pytest.approx(d21, rel=1e-7, abs=1e-10)
    assert min(d12, d23, d13) > 0
    assert np.sqrt(d13) <= np.sqrt(d12) + np.sqrt(d23) + 1e-9


def test_scaling_a_covariance_costs_the_gap_of_the_scales_times_its_trace():
    # N(0, a^2 S) vs N(0, b^2 S): (a S^(1/2) - b S^(1/2))^2 has trace (a - b)^2 tr S.
    rng = np.random.default_rng(3)
    cov = random_spd(rng, 5)
    got = frechet_distance(np.zeros(5), 4.0 * cov, np.zeros(5), 0.25 * cov)
    assert got == pytest.approx((2.0 - 0.5) ** 2 * np.trace(cov), rel=1e-9)


def test_singular_covariances_still_give_a_finite_near_zero_self_distance():
    # Fewer samples than features make rank-deficient covariances, as with small sample sets.
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 2))
    cov = a @ a.T  # rank 2 of 6
    with np.errstate(all="ignore"):
        got = frechet_distance(np.zeros(6), cov, np.zeros(6), cov)
    assert np.isfinite(got) and abs(got) < 1e-5 * np.trace(cov)


def test_sample_statistics_recover_known_gaussians():
    # Features drawn from two known Gaussians: the distance of their fitted statistics is
    # close to the closed form.
    rng = np.random.default_rng(5)
    q = random_rotation(rng, 3)
    l1, l2 = np.array([1.0, 2.0, 0.5]), np.array([0.5, 2.0, 3.0])
    mu1, mu2 = np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, -1.0])
    x = mu1 + rng.standard_normal((40000, 3)) * np.sqrt(l1) @ q.T  # (N, 3), covariance q l1 q^T
    y = mu2 + rng.standard_normal((40000, 3)) * np.sqrt(l2) @ q.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    got = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert got == pytest.approx(expected, rel=0.03)


def test_feature_statistics_are_the_mean_and_unbiased_covariance_in_float64():
    x = np.random.default_rng(6).standard_normal((7, 3)).astype(np.float32)
    mu, cov = feature_statistics(x)
    assert mu.dtype == np.float64 and cov.dtype == np.float64
    assert mu.shape == (3,) and cov.shape == (3, 3)
    x64 = x.astype(np.float64)
    centred = x64 - x64.sum(axis=0) / 7
    np.testing.assert_allclose(mu, x64.sum(axis=0) / 7, rtol=1e-12)
    np.testing.assert_allclose(cov, centred.T @ centred / 6, rtol=1e-12)


@pytest.mark.parametrize("features", [np.zeros(5), np.zeros((1, 4)), np.zeros((2, 3, 4))])
def test_feature_statistics_rejects_bad_shapes(features):
    with pytest.raises(ValueError, match=r"features: expected \(N, F\) with N >= 2"):
        feature_statistics(features)


@pytest.mark.parametrize("mu1, cov1, mu2, cov2", [
    (np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)),   # dimensions differ
    (np.zeros(2), np.eye(3), np.zeros(2), np.eye(3)),   # mean and covariance disagree
    (np.zeros(2), np.ones((2, 3)), np.zeros(2), np.ones((2, 3))),  # covariance not square
])
def test_frechet_distance_rejects_mismatched_shapes(mu1, cov1, mu2, cov2):
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(mu1, cov1, mu2, cov2)
