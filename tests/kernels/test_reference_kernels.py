"""The NumPy references against independent computations: direct loops, adjoint identities,
finite differences, a naive softmax and the defining statistics of group norm."""

import numpy as np
from hypothesis import given, settings

from kernel_checks import (assert_close, attention_arrays, attention_cases, conv_arrays,
                           conv_cases, group_norm_arrays, group_norm_cases)
from tinydiff.kernels.reference import (attention_backward_ref, attention_forward_ref,
                                        conv2d_backward_input_ref, conv2d_backward_weight_ref,
                                        conv2d_forward_ref, group_norm_backward_ref,
                                        group_norm_forward_ref)
from tinydiff.nn.gradcheck import numerical_gradient

FEW = settings(max_examples=15, deadline=None)


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every entry of x (perturbed in place, restored)."""
    return numerical_gradient(f, x, np.arange(x.size), eps).reshape(x.shape)


@FEW
@given(conv_cases())
def test_conv_forward_ref_matches_direct_sum(case):
    x, w, b, _ = conv_arrays(case, np.float64)
    s, p = case["stride"], case["padding"]
    y = conv2d_forward_ref(x, w, b, s, p)
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    expected = np.zeros_like(y)
    for n in range(y.shape[0]):
        for o in range(y.shape[1]):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    window = xpad[n, :, i * s:i * s + w.shape[2], j * s:j * s + w.shape[3]]
                    expected[n, o, i, j] = np.sum(window * w[o]) + (b[o] if b is not None else 0)
    assert_close(y, expected, 1e-12, "conv forward")


@FEW
@given(conv_cases())
def test_conv_backward_refs_are_adjoints_of_forward(case):
    # y is bilinear in (x, w): <y(x, w), dy> = <x, dx(dy, w)> = <w, dw(dy, x)>, and <b, db>
    # is what the bias adds.
    x, w, b, dy = conv_arrays(case, np.float64)
    s, p = case["stride"], case["padding"]
    y0 = conv2d_forward_ref(x, w, None, s, p)
    dx = conv2d_backward_input_ref(dy, w, x.shape[2:], s, p)
    dw, db = conv2d_backward_weight_ref(dy, x, w.shape[2:], s, p)
    lhs = np.sum(y0 * dy)
    tol = 1e-11 * (1 + np.abs(y0).sum() * np.abs(dy).max())
    assert abs(lhs - np.sum(x * dx)) <= tol
    assert abs(lhs - np.sum(w * dw)) <= tol
    ones = np.ones(w.shape[0])
    y1 = conv2d_forward_ref(x, w, ones, s, p)
    assert abs(np.sum((y1 - y0) * dy) - np.sum(db)) <= tol


def test_conv_backward_input_ref_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 4))
    w = rng.standard_normal((3, 2, 2, 3))
    dy = rng.standard_normal((1, 3, 3, 2))  # stride 2, padding 1 -> (5+2-2)//2+1, (4+2-3)//2+1
    num = numerical_grad(lambda: np.sum(conv2d_forward_ref(x, w, None, 2, 1) * dy), x)
    assert_close(conv2d_backward_input_ref(dy, w, (5, 4), 2, 1), num, 1e-7, "dx vs fd")
    num_w = numerical_grad(lambda: np.sum(conv2d_forward_ref(x, w, None, 2, 1) * dy), w)
    assert_close(conv2d_backward_weight_ref(dy, x, (2, 3), 2, 1)[0], num_w, 1e-7, "dw vs fd")


@FEW
@given(attention_cases())
def test_attention_ref_matches_naive_softmax(case):
    q, k, v, _ = attention_arrays(case, np.float64)
    out, lse = attention_forward_ref(q, k, v)
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # moderate: no shift needed
    weights = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    assert_close(out, weights @ v, 1e-12, "attention out")
    assert_close(lse, np.log(np.exp(logits).sum(axis=-1)), 1e-12, "attention lse")


def test_attention_ref_is_stable_at_huge_logits():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        q = rng.standard_normal((1, 2, 5, 4)).astype(dtype)
        k = rng.standard_normal((1, 2, 7, 4)).astype(dtype)
        v = rng.standard_normal((1, 2, 7, 4)).astype(dtype)
        for sign in (1.0, -1.0):
            # scale q so logits reach +-1e4: softmax becomes a one-hot at the largest logit
            qs = (q * dtype(sign * 1e4 / np.abs(q @ np.swapaxes(k, -1, -2)).max())).astype(dtype)
            qs *= dtype(np.sqrt(4))
            out, lse = attention_forward_ref(qs, k, v)
            assert np.all(np.isfinite(out)) and np.all(np.isfinite(lse))
            logits = qs @ np.swapaxes(k, -1, -2) / dtype(2)
            assert np.abs(logits).max() > 5e3
            winner = np.take_along_axis(v, logits.argmax(-1)[..., None], axis=-2)
            assert_close(out, winner, 1e-5, "one-hot attention")
            dq, dk, dv = attention_backward_ref(np.ones_like(out), qs, k, v, out, lse)
            assert all(np.all(np.isfinite(g)) for g in (dq, dk, dv))


def test_attention_backward_ref_matches_finite_differences():
    case = dict(batch=1, heads=2, n=3, m=4, d=3, seed=5)
    q, k, v, dout = attention_arrays(case, np.float64)
    out, lse = attention_forward_ref(q, k, v)
    dq, dk, dv = attention_backward_ref(dout, q, k, v, out, lse)

    def loss():
        return np.sum(attention_forward_ref(q, k, v)[0] * dout)

    assert_close(dq, numerical_grad(loss, q), 1e-7, "dq vs fd")
    assert_close(dk, numerical_grad(loss, k), 1e-7, "dk vs fd")
    assert_close(dv, numerical_grad(loss, v), 1e-7, "dv vs fd")


@FEW
@given(group_norm_cases())
def test_group_norm_ref_normalises_each_group(case):
    x, weight, bias, _ = group_norm_arrays(case, np.float64)
    ones, zeros = np.ones_like(weight), np.zeros_like(bias)
    y, mean, rstd = group_norm_forward_ref(x, ones, zeros, case["groups"], 1e-12)
    yg = y.reshape(case["batch"], case["groups"], -1)
    size = yg.shape[-1]
    assert np.allclose(yg.mean(axis=-1), 0.0, atol=1e-10)
    if size > 1:  # one element per group has zero variance: nothing to normalise
        varying = x.reshape(yg.shape).std(axis=-1) > 1e-6
        assert np.allclose(yg.var(axis=-1)[varying], 1.0, atol=1e-8)
    assert_close(mean, x.reshape(yg.shape).mean(axis=-1), 1e-12, "mean")
    # weight and bias act per channel after normalising
    y2, _, _ = group_norm_forward_ref(x, weight, bias, case["groups"], 1e-12)
    channel = (1, -1) + (1,) * len(case["spatial"])
    assert_close(y2, y * weight.reshape(channel) + bias.reshape(channel), 1e-12, "affine")


def test_group_norm_backward_ref_matches_finite_differences():
    for spatial in ((), (3,), (2, 3)):
        case = dict(batch=2, groups=2, channels=4, spatial=spatial, seed=3)
        x, weight, bias, dy = group_norm_arrays(case, np.float64)
        y, mean, rstd = group_norm_forward_ref(x, weight, bias, 2, 1e-5)
        dx, dweight, dbias = group_norm_backward_ref(dy, x, weight, mean, rstd, 2)

        def loss():
            return np.sum(group_norm_forward_ref(x, weight, bias, 2, 1e-5)[0] * dy)

        assert_close(dx, numerical_grad(loss, x), 1e-6, "dx vs fd")
        assert_close(dweight, numerical_grad(loss, weight), 1e-7, "dweight vs fd")
        assert_close(dbias, numerical_grad(loss, bias), 1e-7, "dbias vs fd")
