"""The fused group norm + SiLU kernels equal the two kernels they fuse, to the bit, and their
reference twins to rounding; the GroupNorm(silu=True) layer equals GroupNorm followed by SiLU."""

import numpy as np
import pytest

from kernel_checks import RTOL, assert_close
from tinydiff.kernels import (group_norm_backward, group_norm_forward, group_norm_silu_backward,
                              group_norm_silu_backward_ref, group_norm_silu_forward,
                              group_norm_silu_forward_ref, silu_backward, silu_forward)
from tinydiff.nn import GroupNorm, SiLU

SHAPES = [((64, 32, 16, 16), 8), ((5, 128, 4, 4), 32), ((1, 6, 5, 7), 3), ((3, 8), 2),
          ((2, 4, 3, 2, 2), 2)]


def arrays(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    weight = rng.standard_normal(shape[1]).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    dz = rng.standard_normal(shape).astype(dtype)
    return x, weight, bias, dz


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups", SHAPES[1:])
def test_fused_kernels_equal_their_reference_twins(shape, groups, dtype):
    x, weight, bias, dz = arrays(shape, dtype)
    fast = group_norm_silu_forward(x, weight, bias, groups, 1e-5)
    reference = group_norm_silu_forward_ref(x, weight, bias, groups, 1e-5)
    for got, want, name in zip(fast, reference, ("z", "y", "mean", "rstd")):
        assert_close(got, want, RTOL[dtype], name)
    z, y, mean, rstd = reference
    for got, want, name in zip(group_norm_silu_backward(dz, y, x, weight, mean, rstd, groups),
                               group_norm_silu_backward_ref(dz, y, x, weight, mean, rstd, groups),
                               ("dx", "dweight", "dbias")):
        assert_close(got, want, RTOL[dtype], name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups", SHAPES)
def test_fused_kernels_equal_the_two_kernels_to_the_bit(shape, groups, dtype):
    x, weight, bias, dz = arrays(shape, dtype)
    z, y, mean, rstd = group_norm_silu_forward(x, weight, bias, groups, 1e-5)
    y2, mean2, rstd2 = group_norm_forward(x, weight, bias, groups, 1e-5)
    z2 = silu_forward(y2)
    for got, want, name in ((z, z2, "z"), (y, y2, "y"), (mean, mean2, "mean"), (rstd, rstd2, "rstd")):
        assert got.shape == want.shape and got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    got = group_norm_silu_backward(dz, y, x, weight, mean, rstd, groups)
    want = group_norm_backward(silu_backward(dz, y2), x, weight, mean2, rstd2, groups)
    for g, w, name in zip(got, want, ("dx", "dweight", "dbias")):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)


def test_group_norm_silu_layer_equals_group_norm_then_silu():
    x, _, _, dz = arrays((4, 16, 6, 6), np.float32, seed=1)
    fused, norm, act = GroupNorm(4, 16, silu=True), GroupNorm(4, 16), SiLU()
    rng = np.random.default_rng(2)
    for layer in (fused, norm):
        layer.weight.data[...] = rng.standard_normal(16).astype(np.float32)
        layer.bias.data[...] = rng.standard_normal(16).astype(np.float32)
    norm.weight.data[...], norm.bias.data[...] = fused.weight.data, fused.bias.data
    np.testing.assert_array_equal(fused(x), act(norm(x)))
    np.testing.assert_array_equal(fused.backward(dz), norm.backward(act.backward(dz)))
    np.testing.assert_array_equal(fused.weight.grad, norm.weight.grad)
    np.testing.assert_array_equal(fused.bias.grad, norm.bias.grad)
    assert "silu=True" in repr(fused) and "silu" not in repr(norm)
