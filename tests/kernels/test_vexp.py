"""The vectorisable float32 exp (tinydiff.kernels.vexp) against float64 np.exp rounded to float32."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.kernels import silu_backward, silu_backward_ref, silu_forward, silu_forward_ref
from tinydiff.kernels.vexp import BLOCK, exp_f32

TINY = np.finfo(np.float32).tiny


def rounded_exp(a):
    with np.errstate(over="ignore"):
        return np.exp(a.astype(np.float64)).astype(np.float32)


def ulps(actual, expected):
    """Distance in units in the last place between positive float32 arrays."""
    return np.abs(actual.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))


def test_exp_is_within_one_ulp_over_the_whole_float32_range():
    a = np.linspace(-110, 95, 2_000_003, dtype=np.float64).astype(np.float32)
    out = np.empty_like(a)
    exp_f32(a, out)
    expected = rounded_exp(a)
    normal = np.isfinite(expected) & (expected >= TINY)
    assert ulps(out[normal], expected[normal]).max() <= 1
    assert np.abs(out[~normal & np.isfinite(expected)] - expected[~normal & np.isfinite(expected)]).max() <= 2e-45
    assert np.array_equal(np.isinf(out), np.isinf(expected))  # overflow where exp overflows, nowhere else


@given(st.lists(st.floats(-120, 100, width=32), min_size=1, max_size=3 * BLOCK + 5))
def test_exp_of_any_float32_in_range_is_within_one_ulp(values):
    a = np.array(values, dtype=np.float32)
    out = np.full_like(a, np.nan)
    exp_f32(a, out)
    expected = rounded_exp(a)
    normal = np.isfinite(expected) & (expected >= TINY)
    assert ulps(out[normal], expected[normal]).max(initial=0) <= 1
    tiny = ~normal & np.isfinite(expected)
    assert np.all(np.abs(out[tiny] - expected[tiny]) <= 2e-45)
    assert np.array_equal(np.isinf(out), np.isinf(expected))


def test_exp_special_values():
    a = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72, 88.73, -103.3, -104.5], dtype=np.float32)
    out = np.empty_like(a)
    exp_f32(a, out)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:5], [np.inf, 0.0, 1.0, 1.0])
    assert np.isfinite(out[5]) and np.isinf(out[6])  # exp overflows float32 at ln(FLT_MAX) = 88.7228
    assert out[7] > 0 and out[8] == 0  # the smallest subnormal is exp(-103.28)


@pytest.mark.parametrize("scale", [0.5, 5.0, 60.0])
def test_float32_silu_is_accurate_element_by_element(scale):
    """The norm-wise kernel tests would miss a poor exp on the small outputs of negative inputs."""
    rng = np.random.default_rng(int(scale))
    x = (scale * rng.standard_normal(3 * BLOCK + 17)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    exact_y = silu_forward_ref(x.astype(np.float64))
    exact_dx = silu_backward_ref(dy.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(silu_forward(x), exact_y, rtol=2e-6, atol=1e-30)
    np.testing.assert_allclose(silu_backward(dy, x), exact_dx, rtol=1e-5, atol=1e-6 * np.abs(dy).max())
