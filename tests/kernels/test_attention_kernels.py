"""The Numba attention kernels equal the NumPy references, including cross-attention (N != M)
and the causal mask, and stay finite at logits of +-1e4; the causal reference equals torch's
scaled_dot_product_attention(is_causal=True) where torch is importable."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_checks import RTOL, assert_close, attention_arrays, attention_cases
from tinydiff.kernels import (attention_backward, attention_backward_ref, attention_forward,
                              attention_forward_ref)

DTYPES = [np.float64, np.float32]


def check_against_reference(q, k, v, dout, rtol, causal=False):
    out, lse = attention_forward(q, k, v, causal=causal)
    out_ref, lse_ref = attention_forward_ref(q, k, v, causal=causal)
    assert_close(out, out_ref, rtol, "out")
    assert_close(lse, lse_ref, rtol, "lse")
    grads = attention_backward(dout, q, k, v, out_ref, lse_ref, causal=causal)
    grads_ref = attention_backward_ref(dout, q, k, v, out_ref, lse_ref, causal=causal)
    for got, want, name in zip(grads, grads_ref, ("dq", "dk", "dv")):
        assert_close(got, want, rtol, name)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=attention_cases(), causal=st.booleans())
def test_attention_kernels_match_reference(case, causal, dtype):
    q, k, v, dout = attention_arrays(case, dtype)
    check_against_reference(q, k, v, dout, RTOL[dtype], causal)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,m,d", [(64, 64, 32), (33, 77, 16), (1, 5, 3), (77, 77, 64), (300, 300, 8)])
def test_attention_kernels_match_reference_at_model_sizes(n, m, d, causal, dtype):
    q, k, v, dout = attention_arrays(dict(batch=2, heads=2, n=n, m=m, d=d, seed=7), dtype)
    # logits of a few units: softmax neither uniform nor one-hot; (300, 300, 8) spans several
    # blocks of query rows, so the mask's row offsets are exercised
    check_against_reference(q * dtype(2), k, v, dout, RTOL[dtype], causal)


@pytest.mark.parametrize("n,m", [(5, 5), (7, 4), (3, 8)])
def test_causal_masked_keys_get_exactly_zero_weight_and_gradient(n, m):
    q, k, v, dout = attention_arrays(dict(batch=1, heads=2, n=n, m=m, d=3, seed=5), np.float64)
    out, lse = attention_forward(q, k, v, causal=True)
    dq, dk, dv = attention_backward(dout, q, k, v, out, lse, causal=True)
    # a huge change to the keys and values nobody may see changes nothing, to the bit
    hidden = np.arange(m) >= n  # keys after the last query's position
    k2, v2 = k.copy(), v.copy()
    k2[:, :, hidden] *= 1e6
    v2[:, :, hidden] = 1e6
    out2, lse2 = attention_forward(q, k2, v2, causal=True)
    assert np.array_equal(out2, out) and np.array_equal(lse2, lse)
    assert np.all(dk[:, :, hidden] == 0) and np.all(dv[:, :, hidden] == 0)
    # the first query sees only key 0: its output is v[0] exactly up to rounding, its dq is 0
    np.testing.assert_allclose(out[:, :, 0], v[:, :, 0], rtol=1e-14)
    assert np.all(dq[:, :, 0] == 0)


@pytest.mark.parametrize("n,m", [(6, 6), (7, 4), (3, 8)])
def test_causal_reference_matches_torch_is_causal(n, m):
    torch = pytest.importorskip("torch")
    q, k, v, _ = attention_arrays(dict(batch=2, heads=2, n=n, m=m, d=4, seed=11), np.float64)
    want = torch.nn.functional.scaled_dot_product_attention(
        *(torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v)), is_causal=True).numpy()
    out, _ = attention_forward_ref(q, k, v, causal=True)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_attention_kernels_are_finite_at_huge_logits(sign, dtype):
    q, k, v, dout = attention_arrays(dict(batch=1, heads=2, n=6, m=9, d=4, seed=3), dtype)
    logits = q @ np.swapaxes(k, -1, -2) / dtype(2)
    q = (q * dtype(sign * 1e4 / np.abs(logits).max())).astype(dtype)
    out, lse = attention_forward(q, k, v)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(lse))
    # a one-hot softmax picks the value row of the largest logit
    winner = np.take_along_axis(v, (q @ np.swapaxes(k, -1, -2)).argmax(-1)[..., None], axis=-2)
    assert_close(out, winner, 1e-5, "one-hot out")
    for grad in attention_backward(dout, q, k, v, out, lse):
        assert np.all(np.isfinite(grad))
