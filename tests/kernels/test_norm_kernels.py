"""The Numba group norm kernels equal the NumPy references for 0-3 trailing dims."""

import numpy as np
import pytest
from hypothesis import given, settings

from kernel_checks import RTOL, assert_close, group_norm_arrays, group_norm_cases
from tinydiff.kernels import (group_norm_backward, group_norm_backward_ref, group_norm_forward,
                              group_norm_forward_ref)

DTYPES = [np.float64, np.float32]


def check_against_reference(case, dtype, eps=1e-5):
    x, weight, bias, dy = group_norm_arrays(case, dtype)
    groups = case["groups"]
    rtol = RTOL[dtype]
    got = group_norm_forward(x, weight, bias, groups, eps)
    want = group_norm_forward_ref(x, weight, bias, groups, eps)
    for a, b, name in zip(got, want, ("y", "mean", "rstd")):
        assert_close(a, b, rtol, name)
    _, mean, rstd = want
    got = group_norm_backward(dy, x, weight, mean, rstd, groups)
    want = group_norm_backward_ref(dy, x, weight, mean, rstd, groups)
    # dx is a difference of terms of size rstd * |dy * weight|, which cancel exactly for a group
    # of one element: measure its error against that size
    terms = float(np.abs(rstd).max() * np.abs(dy).max() * np.abs(weight).max())
    assert_close(got[0], want[0], rtol, "dx", floor=terms)
    assert_close(got[1], want[1], rtol, "dweight")
    assert_close(got[2], want[2], rtol, "dbias")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=group_norm_cases())
def test_group_norm_kernels_match_reference(case, dtype):
    check_against_reference(case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_kernels_match_reference_at_unet_size(dtype):
    # 32 groups over 64 channels of 16x16, as in the benchmark, batch 2
    check_against_reference(dict(batch=2, groups=32, channels=64, spatial=(16, 16), seed=4), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_kernel_handles_constant_groups(dtype):
    # a constant group has zero variance: eps alone keeps rstd finite, and y is the bias
    x = np.full((1, 4, 3, 3), 2.5, dtype=dtype)
    weight = np.arange(1, 5, dtype=dtype)
    bias = np.arange(4, dtype=dtype)
    y, mean, rstd = group_norm_forward(x, weight, bias, 2, 1e-5)
    assert np.all(np.isfinite(rstd))
    assert_close(y, np.broadcast_to(bias[None, :, None, None], x.shape).astype(dtype), 1e-5, "y")
