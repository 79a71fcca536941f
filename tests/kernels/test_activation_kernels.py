"""The fused SiLU kernels against their NumPy references, and at extreme inputs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.kernels import silu_backward, silu_backward_ref, silu_forward, silu_forward_ref
from kernel_checks import RTOL, assert_close


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(seed=st.integers(0, 2**32 - 1), shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_silu_kernels_match_reference(dtype, seed, shape, scale):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    assert_close(silu_forward(x), silu_forward_ref(x), RTOL[dtype], "silu forward")
    assert_close(silu_backward(dy, x), silu_backward_ref(dy, x), RTOL[dtype], "silu backward")


def test_silu_reference_matches_its_definition_and_stays_finite():
    x = np.array([-1e4, -80.0, -1.0, 0.0, 1.0, 80.0, 1e4])
    expected = x * (1 / (1 + np.exp(-np.clip(x, -700, 700))))
    np.testing.assert_allclose(silu_forward_ref(x), expected, rtol=1e-15, atol=1e-290)
    for dtype in (np.float32, np.float64):
        xs = x.astype(dtype)
        assert np.all(np.isfinite(silu_forward(xs))) and np.all(np.isfinite(silu_backward(np.ones_like(xs), xs)))
    np.testing.assert_allclose(silu_backward(np.ones(3), np.array([-1e4, 0.0, 1e4])), [0.0, 0.5, 1.0])


def test_silu_kernels_accept_non_contiguous_input():
    x = np.random.default_rng(0).standard_normal((6, 8))[:, ::2]
    np.testing.assert_allclose(silu_forward(x), silu_forward_ref(x), rtol=1e-12)
