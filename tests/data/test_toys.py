"""2-D toys: shapes, determinism, the documented scale (E x = 0, E|x|^2 = 2) and geometry."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.data import checkerboard, gaussians8, moons, swiss_roll

TOYS = [swiss_roll, moons, gaussians8, checkerboard]


@pytest.mark.parametrize("toy", TOYS)
def test_shape_dtype_and_determinism(toy):
    a = toy(101, np.random.default_rng(3))
    b = toy(101, np.random.default_rng(3))
    c = toy(101, np.random.default_rng(4))
    assert a.shape == (101, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert toy(7, np.random.default_rng(0), dtype=np.float64).dtype == np.float64
    assert toy(0, np.random.default_rng(0)).shape == (0, 2)


@given(toy=st.sampled_from(TOYS), noise=st.floats(0.0, 0.5), seed=st.integers(0, 2**32))
def test_centred_with_unit_average_variance(toy, noise, seed):
    # Documented scale: E x = 0 and E|x|^2 = 2 exactly, for any noise. With 200k points the
    # standard errors are below 0.01, so these tolerances fail for a wrong constant.
    x = toy(200_000, np.random.default_rng(seed), noise=noise, dtype=np.float64)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    assert abs((x**2).sum(axis=1).mean() - 2.0) < 0.04


def test_gaussians8_without_noise_sits_on_eight_points():
    x = gaussians8(4000, np.random.default_rng(0), noise=0.0, dtype=np.float64)
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), math.sqrt(2.0), rtol=1e-12)
    angles = np.round(np.arctan2(x[:, 1], x[:, 0]) / (math.pi / 4)) % 8
    counts = np.bincount(angles.astype(int), minlength=8)
    assert counts.min() > 4000 / 8 * 0.8  # all eight modes, roughly equally often


def test_checkerboard_without_noise_stays_on_dark_squares():
    x = checkerboard(5000, np.random.default_rng(1), noise=0.0, dtype=np.float64)
    raw = x * math.sqrt(4.0 / 3.0)  # undo the documented scaling back to [-2, 2]^2
    assert np.abs(raw).max() <= 2.0 + 1e-12
    col, row = np.floor(raw[:, 0] + 2), np.floor(raw[:, 1] + 2)
    assert np.all((col + row) % 2 == 0)
    squares = np.bincount((col * 4 + row).astype(int), minlength=16)
    assert np.count_nonzero(squares) == 8


def test_moons_split_evenly_and_two_clusters():
    x = moons(1001, np.random.default_rng(2), noise=0.0, dtype=np.float64)
    # Undo the documented standardisation; then each point lies on one of the two unit
    # half circles, centred at (0, 0) (upper moon) and (1, 0.5) (lower moon).
    total = 0.75 + 9 / 16 - 1 / math.pi
    raw = x * math.sqrt(total / 2) + np.array([0.5, 0.25])
    upper = np.isclose(np.hypot(raw[:, 0], raw[:, 1]), 1.0) & (raw[:, 1] >= -1e-12)
    lower = np.isclose(np.hypot(raw[:, 0] - 1.0, raw[:, 1] - 0.5), 1.0) & (raw[:, 1] <= 0.5)
    assert np.all(upper | lower)
    assert upper.sum() == 1001 // 2 and lower.sum() == 1001 - 1001 // 2


@pytest.mark.parametrize("toy", TOYS)
def test_bad_arguments(toy):
    with pytest.raises(TypeError, match="rng"):
        toy(10, 0)
    with pytest.raises(ValueError, match="noise"):
        toy(10, np.random.default_rng(0), noise=-0.1)
    with pytest.raises(ValueError, match="n"):
        toy(-1, np.random.default_rng(0))
