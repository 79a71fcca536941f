"""clip_grad_norm_: the returned norm, direction kept, max_norm reached, non-finite reported."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.nn import Parameter
from tinydiff.optim import clip_grad_norm_, global_grad_norm


def params_with_grads(rng, scale, dtype=np.float64):
    params = [Parameter(np.zeros(s, dtype=dtype)) for s in ((3, 3), (4,), (2, 2, 2))]
    for p in params:
        p.grad[...] = rng.standard_normal(p.data.shape) * scale
    return params


@given(seed=st.integers(0, 2**32), scale=st.floats(1e-3, 1e3), max_norm=st.floats(0.01, 100))
def test_clipping_keeps_direction_and_reaches_max_norm(seed, scale, max_norm):
    params = params_with_grads(np.random.default_rng(seed), scale)
    before = np.concatenate([p.grad.ravel() for p in params])
    norm = clip_grad_norm_(params, max_norm)
    after = np.concatenate([p.grad.ravel() for p in params])
    assert norm == pytest.approx(math.sqrt(np.sum(before**2)), rel=1e-12)
    if norm <= max_norm:
        np.testing.assert_array_equal(after, before)  # short enough: untouched
    else:
        # PyTorch's factor max_norm / (norm + 1e-6) lands a hair under max_norm
        assert np.linalg.norm(after) == pytest.approx(max_norm * norm / (norm + 1e-6), rel=1e-12)
        ratio = after / before
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # one factor for all
        assert np.linalg.norm(after) <= max_norm


def test_a_norm_just_above_max_norm_is_clipped():
    p = Parameter(np.zeros(2))
    p.grad[...] = [3.0, 4.0]  # norm 5
    assert clip_grad_norm_([p], 4.9) == 5.0
    np.testing.assert_allclose(p.grad, np.array([3.0, 4.0]) * 4.9 / (5.0 + 1e-6), rtol=1e-15)
    p.grad[...] = [3.0, 4.0]
    clip_grad_norm_([p], 5.0)  # exactly at the limit: PyTorch's 1e-6 still shrinks it a hair
    assert np.linalg.norm(p.grad) < 5.0


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = params_with_grads(rng, 3.0, dtype=np.float32)
    tensors = [torch.zeros(p.data.shape, requires_grad=True) for p in params]
    for t, p in zip(tensors, params):
        t.grad = torch.from_numpy(p.grad.copy())
    norm = clip_grad_norm_(params, 1.5)
    ref = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    assert norm == pytest.approx(float(ref), rel=1e-6)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-6)


def test_float32_gradients_do_not_overflow_the_norm():
    p = Parameter(np.zeros(4, dtype=np.float32))
    p.grad[...] = 1e30  # the float32 sum of squares would be inf
    norm = global_grad_norm([p])
    assert norm == pytest.approx(2e30, rel=1e-6)
    clip_grad_norm_([p], 1.0)
    np.testing.assert_allclose(p.grad, 0.5, rtol=1e-5)


def test_non_finite_gradients_are_reported():
    rng = np.random.default_rng(1)
    params = params_with_grads(rng, 1.0)
    params[2].grad[0, 1, 0] = np.nan
    params[2].grad[1, 1, 1] = np.inf
    with pytest.raises(FloatingPointError,
                       match=r"norm is nan.*2 \(shape \(2, 2, 2\), 2 non-finite values\)"):
        clip_grad_norm_(params, 1.0)
    kept = [p.grad.copy() for p in params]
    norm = clip_grad_norm_(params, 1.0, error_if_nonfinite=False)
    assert math.isnan(norm)
    for p, k in zip(params, kept):
        np.testing.assert_array_equal(p.grad, k)  # left alone, so the caller can skip


def test_bad_arguments():
    params = params_with_grads(np.random.default_rng(2), 1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(params, 0.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match="empty"):
        clip_grad_norm_([], 1.0)
