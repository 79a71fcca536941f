"""attention_probabilities is the P of the reference attention kernel (Vaswani et al. 2017,
eq. 1): each row sums to 1, it equals softmax(Q K^T / sqrt(d)) computed directly, and P V is
the kernels' output. MultiHeadAttention.record_probabilities keeps it per forward without
changing the output."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.kernels import attention_forward, attention_forward_ref
from tinydiff.nn import MultiHeadAttention, attention_probabilities
from tinydiff.nn.attention import split_heads


def arrays(b, h, n, m, d, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    q, k, v = (scale * rng.standard_normal(shape) for shape in ((b, h, n, d), (b, h, m, d), (b, h, m, d)))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


@given(b=st.integers(1, 2), h=st.integers(1, 3), n=st.integers(1, 6), m=st.integers(1, 6), d=st.integers(1, 5),
       causal=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_probabilities_are_the_reference_kernels_softmax(b, h, n, m, d, causal, dtype):
    q, k, v = arrays(b, h, n, m, d, dtype, seed=n * 7 + m)
    p = attention_probabilities(q, k, causal=causal)
    assert p.shape == (b, h, n, m) and p.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=tol)
    # the direct definition, in float64, no max shift (the values here are small)
    s = np.einsum("bhnd,bhmd->bhnm", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(d)
    e = np.exp(s)
    if causal:
        e = e * (np.arange(m)[None, :] <= np.arange(n)[:, None])
        assert np.all(p[..., np.arange(m)[None, :] > np.arange(n)[:, None]] == 0)
    np.testing.assert_allclose(p, e / e.sum(axis=-1, keepdims=True), atol=tol)
    # P V is what the kernels compute, both of them
    for forward in (attention_forward_ref, attention_forward):
        out, _ = forward(q, k, v, causal=causal)
        np.testing.assert_allclose(np.einsum("bhnm,bhmd->bhnd", p.astype(np.float64), v), out,
                                   atol=10 * tol, rtol=10 * tol)


def test_probabilities_stay_finite_for_huge_logits():
    q, k, _ = arrays(1, 1, 3, 4, 2, np.float32, scale=300.0)
    p = attention_probabilities(q, k)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=-1), 1.0)
    assert p.max() > 0.99  # a row that is all but one-hot


def test_probabilities_reject_bad_arguments():
    q, k, _ = arrays(1, 2, 3, 4, 2, np.float64)
    with pytest.raises(ValueError, match="k must be"):
        attention_probabilities(q, k[:, :1])
    with pytest.raises(TypeError, match="causal"):
        attention_probabilities(q, k, causal=1)


def test_recording_keeps_each_forwards_probabilities_and_changes_nothing():
    rng = np.random.default_rng(3)
    layer = MultiHeadAttention(8, 2, context_dim=6, bias=False, rng=rng)
    layer.eval()
    x, context = (rng.standard_normal(s).astype(np.float32) for s in ((2, 5, 8), (2, 4, 6)))
    plain = layer(x, context)
    assert layer.recorded_probabilities is None  # off by default
    layer.record_probabilities(True)
    recorded = [layer(x, context), layer(x[:1], context[:1])]
    np.testing.assert_array_equal(recorded[0], plain)
    first, second = layer.recorded_probabilities
    want = attention_probabilities(split_heads(layer.to_q(x), 2), split_heads(layer.to_k(context), 2))
    np.testing.assert_array_equal(first, want)
    assert first.shape == (2, 2, 5, 4) and second.shape == (1, 2, 5, 4)
    layer.record_probabilities(False)
    assert layer.recorded_probabilities is None
    with pytest.raises(TypeError, match="record"):
        layer.record_probabilities("yes")
