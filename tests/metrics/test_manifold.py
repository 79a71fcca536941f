"""k-NN precision and recall: against a brute-force reference, and on cases whose answer is
known (identical sets, samples off the data, samples that cover only part of it)."""

import numpy as np
import pytest

from tinydiff.metrics import in_knn_manifold, knn_precision_recall


def inside(points, reference, k):
    """Kynkaanniemi et al. 2019 written straight from the definition, with all distances."""
    d_ref = np.linalg.norm(reference[:, None] - reference[None], axis=-1)  # (M, M)
    radii = np.sort(d_ref, axis=1)[:, k]  # column 0 is the point itself
    d = np.linalg.norm(points[:, None] - reference[None], axis=-1)  # (N, M)
    return (d <= radii[None]).any(axis=1)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_matches_the_definition(k):
    rng = np.random.default_rng(k)
    data = rng.standard_normal((150, 2))
    samples = np.concatenate([rng.standard_normal((100, 2)) * 0.5, rng.uniform(-4, 4, (30, 2))])
    np.testing.assert_array_equal(in_knn_manifold(samples, data, k), inside(samples, data, k))
    expected = (inside(samples, data, k).mean(), inside(data, samples, k).mean())
    assert knn_precision_recall(samples, data, k) == pytest.approx(expected, abs=1e-12)


def test_identical_sets_score_one_and_far_samples_zero():
    data = np.random.default_rng(0).standard_normal((200, 3))
    assert knn_precision_recall(data, data) == (1.0, 1.0)
    assert knn_precision_recall(data + 100.0, data) == (0.0, 0.0)


def test_stray_samples_lower_precision_and_partial_coverage_lowers_recall():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((1000, 2))
    fresh = rng.standard_normal((1000, 2))
    p0, r0 = knn_precision_recall(fresh, data)
    assert p0 > 0.85 and r0 > 0.85  # two draws of one law: high, though not 1
    strays = fresh.copy()
    strays[:200] = rng.uniform(6, 8, (200, 2))  # a fifth of the samples far from the data
    p1, _ = knn_precision_recall(strays, data)
    assert p1 == pytest.approx(p0 - 0.2, abs=0.03)
    half = fresh[fresh[:, 0] > 0]  # samples that cover only the right half of the data
    _, r2 = knn_precision_recall(half, data)
    assert r2 < 0.6


@pytest.mark.parametrize("samples, data, k, match", [
    (np.zeros((5, 2)), np.zeros((5, 3)), 3, "same D"),
    (np.zeros(5), np.zeros((5, 2)), 3, "shapes"),
    (np.zeros((3, 2)), np.zeros((10, 2)), 3, "more than k"),
    (np.zeros((10, 2)), np.zeros((10, 2)), 0, "k must be"),
    (np.zeros((10, 2)), np.zeros((10, 2)), 2.5, "k must be"),
    (np.full((10, 2), np.nan), np.zeros((10, 2)), 3, "finite"),
])
def test_bad_input_is_named(samples, data, k, match):
    with pytest.raises(ValueError, match=match):
        knn_precision_recall(samples, data, k)
