"""The Numba attention kernels equal the NumPy references, including cross-attention (N != M),
and stay finite at logits of +-1e4."""

import numpy as np
import pytest
from hypothesis import given, settings

from kernel_checks import RTOL, assert_close, attention_arrays, attention_cases
from tinydiff.kernels import (attention_backward, attention_backward_ref, attention_forward,
                              attention_forward_ref)

DTYPES = [np.float64, np.float32]


def check_against_reference(q, k, v, dout, rtol):
    out, lse = attention_forward(q, k, v)
    out_ref, lse_ref = attention_forward_ref(q, k, v)
    assert_close(out, out_ref, rtol, "out")
    assert_close(lse, lse_ref, rtol, "lse")
    grads = attention_backward(dout, q, k, v, out_ref, lse_ref)
    grads_ref = attention_backward_ref(dout, q, k, v, out_ref, lse_ref)
    for got, want, name in zip(grads, grads_ref, ("dq", "dk", "dv")):
        assert_close(got, want, rtol, name)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=attention_cases())
def test_attention_kernels_match_reference(case, dtype):
    q, k, v, dout = attention_arrays(case, dtype)
    check_against_reference(q, k, v, dout, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m,d", [(64, 64, 32), (33, 77, 16), (1, 5, 3)])
def test_attention_kernels_match_reference_at_model_sizes(n, m, d, dtype):
    q, k, v, dout = attention_arrays(dict(batch=2, heads=2, n=n, m=m, d=d, seed=7), dtype)
    # logits of a few units: softmax neither uniform nor one-hot
    check_against_reference(q * dtype(2), k, v, dout, RTOL[dtype])


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
