"""Energy distance and sliced Wasserstein: zero for identical sets, known values for shifted
Gaussians, and growth with the discrepancy."""

import numpy as np
import pytest

from tinydiff.metrics import class_diversity, energy_distance, sliced_wasserstein


def test_identical_sets_have_zero_distance():
    x = np.random.default_rng(0).standard_normal((300, 3))
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert sliced_wasserstein(x, x, np.random.default_rng(1)) == pytest.approx(0.0, abs=1e-12)


def test_shift_in_one_dimension_gives_known_values():
    # 1-D: W2 between N(0,1) and N(d,1) is d; sliced over 1 direction it is exact.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20000, 1))
    y = rng.standard_normal((20000, 1)) + 0.5
    assert sliced_wasserstein(x, y, np.random.default_rng(3), num_projections=4) == pytest.approx(0.5, abs=0.03)
    # In D dims a shift d along one axis projects to |u_1| d: the mean of u_1^2 is 1/D.
    x = rng.standard_normal((4000, 2))
    y = rng.standard_normal((4000, 2)) + np.array([1.0, 0.0])
    sw = sliced_wasserstein(x, y, np.random.default_rng(4), num_projections=2000)
    assert sw == pytest.approx(np.sqrt(0.5), abs=0.05)


def test_distances_grow_with_the_discrepancy_and_handle_unequal_sizes():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((800, 2))
    prev_e = prev_s = -1.0
    for shift in (0.0, 0.3, 1.0, 3.0):
        y = rng.standard_normal((500, 2)) + shift
        e, s = energy_distance(x, y), sliced_wasserstein(x, y, np.random.default_rng(6))
        assert e > prev_e and s > prev_s
        prev_e, prev_s = e, s


@pytest.mark.parametrize("x, y", [(np.zeros((5, 2)), np.zeros((5, 3))), (np.zeros((1, 2)), np.zeros((5, 2))),
                                  (np.zeros(5), np.zeros(5))])
def test_bad_shapes_are_rejected(x, y):
    with pytest.raises(ValueError, match="x and y"):
        energy_distance(x, y)


def test_unbiased_energy_distance_averages_to_zero_for_equal_laws_where_the_biased_one_does_not():
    # The V-statistic's bias is (E|X-X'| / N + E|Y-Y'| / M) / 2; for N(0, I_2), E|X-X'| = sqrt(pi).
    n, draws = 200, 200
    rng = np.random.default_rng(7)
    biased, unbiased = [], []
    for _ in range(draws):
        x, y = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
        biased.append(energy_distance(x, y))
        unbiased.append(energy_distance(x, y, unbiased=True))
    se = np.std(unbiased) / np.sqrt(draws)
    assert abs(np.mean(unbiased)) < 4 * se
    assert np.mean(biased) == pytest.approx(np.sqrt(np.pi) / n, rel=0.15)
    assert min(unbiased) < 0 < min(biased)  # single unbiased values may be negative


def test_biased_and_unbiased_energy_distances_differ_by_the_diagonal_term():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((70, 3)) + 0.2

    def mean_within(a):  # U-statistic mean distance, i != j, written out
        d = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return d.sum() / (len(a) * (len(a) - 1))

    gap = energy_distance(x, y) - energy_distance(x, y, unbiased=True)
    assert gap == pytest.approx(0.5 * (mean_within(x) / len(x) + mean_within(y) / len(y)), rel=1e-10)


def test_mean_pairwise_distance_equals_the_loop_over_pairs():
    from tinydiff.metrics import mean_pairwise_distance

    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 3)).astype(np.float32) + 100.0  # far from 0: float32's expansion would cancel
    b = rng.standard_normal((4, 3))
    a64 = a.astype(np.float64)
    within = [np.linalg.norm(a64[i] - a64[j]) for i in range(7) for j in range(7) if i != j]
    across = [np.linalg.norm(a64[i] - b[j]) for i in range(7) for j in range(4)]
    np.testing.assert_allclose(mean_pairwise_distance(a), np.mean(within), rtol=1e-9)
    np.testing.assert_allclose(mean_pairwise_distance(a, b), np.mean(across), rtol=1e-9)


def test_class_diversity_is_one_against_itself_and_scales_per_class():
    rng = np.random.default_rng(5)
    features, labels = rng.normal(size=(30, 3)), np.repeat([0, 1, 2], 10)
    assert class_diversity(features, labels, features, labels) == pytest.approx(1.0)
    spread = features * np.where(labels == 1, 3.0, 1.0)[:, None]  # class 1 three times as spread out
    assert class_diversity(spread, labels, features, labels) == pytest.approx((1 + 3 + 1) / 3)
    # a class with a single sample has no spread and is left out of the mean
    assert class_diversity(spread[:21], labels[:21], features, labels) == pytest.approx((1 + 3) / 2)
