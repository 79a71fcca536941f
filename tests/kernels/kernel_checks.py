"""Shared hypothesis strategies and comparison helpers for the kernel tests."""

import numpy as np
from hypothesis import strategies as st

# float64 kernels must agree with the references to rounding; float32 ones to float32 rounding
# accumulated over sums of a few hundred terms.
RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def assert_close(actual, expected, rtol, what, floor=1.0):
    """Norm-wise closeness: max |actual - expected| <= rtol * max(max |expected|, floor).

    A norm-wise bound suits kernels that sum many terms: an element that is a near-cancelling sum
    has a large relative error in any summation order, but its absolute error is set by the scale
    of the whole output. The floor covers outputs that cancel to (almost) zero as a whole, e.g.
    dq with a single key: the test data are of unit scale, so the terms that cancel are of size
    about 1 and so is their rounding error's reference.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), floor)
    err = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0))
    assert err <= rtol * scale, f"{what}: max abs error {err:.3e} > {rtol:.0e} * {scale:.3e}"


@st.composite
def conv_cases(draw):
    """Conv problems with odd/even kernels, stride 1-3, padding 0-2, batch often 1."""
    k_h = draw(st.integers(1, 4))
    k_w = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    # the padded input must hold at least one kernel window
    h = draw(st.integers(max(1, k_h - 2 * padding), 9))
    w = draw(st.integers(max(1, k_w - 2 * padding), 9))
    return dict(
        batch=draw(st.sampled_from([1, 1, 2, 3])),
        c_in=draw(st.integers(1, 5)),
        c_out=draw(st.integers(1, 5)),
        hw=(h, w), kernel=(k_h, k_w), stride=stride, padding=padding,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def attention_cases(draw):
    """Attention problems with N != M allowed (cross-attention) and batch 1."""
    return dict(
        batch=draw(st.sampled_from([1, 1, 2])),
        heads=draw(st.integers(1, 3)),
        n=draw(st.integers(1, 17)),
        m=draw(st.integers(1, 17)),
        d=draw(st.integers(1, 9)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def group_norm_cases(draw):
    """Group norm problems with 0-3 trailing spatial dims."""
    groups = draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=3)))
    return dict(
        batch=draw(st.sampled_from([1, 1, 2, 3])),
        groups=groups,
        channels=groups * draw(st.integers(1, 3)),
        spatial=spatial,
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def conv_arrays(case, dtype):
    """Random x, w, b, dy for a conv case, in dtype."""
    rng = np.random.default_rng(case["seed"])
    k_h, k_w = case["kernel"]
    h, w = case["hw"]
    s, p = case["stride"], case["padding"]
    h_out = (h + 2 * p - k_h) // s + 1
    w_out = (w + 2 * p - k_w) // s + 1
    x = rng.standard_normal((case["batch"], case["c_in"], h, w)).astype(dtype)
    wt = rng.standard_normal((case["c_out"], case["c_in"], k_h, k_w)).astype(dtype)
    b = rng.standard_normal(case["c_out"]).astype(dtype) if case["bias"] else None
    dy = rng.standard_normal((case["batch"], case["c_out"], h_out, w_out)).astype(dtype)
    return x, wt, b, dy


def attention_arrays(case, dtype):
    """Random q, k, v, dout for an attention case, in dtype."""
    rng = np.random.default_rng(case["seed"])
    bh = (case["batch"], case["heads"])
    q = rng.standard_normal(bh + (case["n"], case["d"])).astype(dtype)
    k = rng.standard_normal(bh + (case["m"], case["d"])).astype(dtype)
    v = rng.standard_normal(bh + (case["m"], case["d"])).astype(dtype)
    dout = rng.standard_normal(bh + (case["n"], case["d"])).astype(dtype)
    return q, k, v, dout


def group_norm_arrays(case, dtype):
    """Random x, weight, bias, dy for a group norm case, in dtype."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["batch"], case["channels"]) + case["spatial"]
    # an offset and scale per sample so the normalisation has something to remove
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    weight = rng.standard_normal(case["channels"]).astype(dtype)
    bias = rng.standard_normal(case["channels"]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, weight, bias, dy
