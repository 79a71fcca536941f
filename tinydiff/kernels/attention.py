"""Scaled dot-product attention forward and backward: one fused Numba loop per (batch, head).

How it works. Each (batch, head) pair is one task of a parallel loop. A task walks its query
rows; for row i it builds the logits s = q_i K^T / sqrt(D) against a transposed copy of K (so
the inner loop runs over contiguous keys), exponentiates them after subtracting the row max,
and accumulates out_i = sum_j p_j v_j. Only the logsumexp per row (lse) is saved: backward
rebuilds p = exp(s - lse) row by row (Dao et al. 2022, FlashAttention, alg. 2), so neither pass
ever holds an (N, M) matrix larger than one head's rows -- peak memory is the inputs, outputs
and O(M + D) scratch per thread.

exp is the costliest scalar operation here; LLVM cannot vectorise a call to libm's exp, so
_exp_inplace uses exp(x) = 2^k * 2^f with k an integer (written straight into the float's
exponent bits) and 2^f a short Taylor polynomial, which vectorises. Its relative error is about
1e-7 for float32 (degree 6) and 1e-15 for float64 (degree 12).

What bounds it. Every (query, key) pair costs a few D-wide multiply-adds (2 forward, 5
backward) plus one exp each pass; for small D (16-32) that is too little work per row to run at
BLAS speed, so the loop is bound by load/store traffic through L1 and by the exp polynomial.
"""

import math

import numba
import numpy as np
from numba import prange

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453


# Taylor coefficients 1/n! for 2^f = exp(f ln 2), highest degree first (Horner order)
_INV_FACT_F64 = (1 / 479001600, 1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040,
                 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0)


@numba.njit(cache=True, fastmath=True)
def _exp_inplace(s, bits):
    """s[:] = exp(s) for s <= 0 (shifted logits); bits is int scratch of s's item size."""
    scale = bits.view(s.dtype)
    t = s.dtype.type
    if s.itemsize == 4:
        for j in range(s.shape[0]):
            # below -87 exp underflows float32's normal range: clamp so 2^k stays representable
            y = max(s[j], t(-87.0)) * t(_LOG2E)
            k = np.floor(y + t(0.5))
            f = (y - k) * t(_LN2)  # |f| <= ln(2)/2
            s[j] = t(1.0) + f * (t(1.0) + f * (t(1 / 2) + f * (t(1 / 6) + f * (
                t(1 / 24) + f * (t(1 / 120) + f * t(1 / 720))))))
            bits[j] = (np.int32(k) + 127) << 23  # the float32 2^k: biased exponent, no mantissa
    else:
        c = _INV_FACT_F64
        for j in range(s.shape[0]):
            y = max(s[j], -708.0) * _LOG2E
            k = np.floor(y + 0.5)
            f = (y - k) * _LN2
            p = c[0]
            p = p * f + c[1]
            p = p * f + c[2]
            p = p * f + c[3]
            p = p * f + c[4]
            p = p * f + c[5]
            p = p * f + c[6]
            p = p * f + c[7]
            p = p * f + c[8]
            p = p * f + c[9]
            p = p * f + c[10]
            p = p * f + c[11]
            s[j] = p * f + c[12]
            bits[j] = (np.int64(k) + 1023) << 52
    for j in range(s.shape[0]):
        s[j] *= scale[j]


@numba.njit(parallel=True, cache=True, fastmath=True)
def _attention_forward(q, k, v, out, lse, bits):
    """q (BH, N, D), k/v (BH, M, D) -> fills out (BH, N, D) and lse (BH, N).

    bits: (BH, M) integer scratch of q's item size, for _exp_inplace.
    """
    n_bh, n_q, d = q.shape
    n_k = k.shape[1]
    t = q.dtype.type
    scale = t(1.0 / math.sqrt(d))
    for h in prange(n_bh):
        k_t = np.ascontiguousarray(k[h].T)  # (M, D) -> (D, M): keys contiguous in the inner loop
        s = np.empty(n_k, dtype=q.dtype)
        acc = np.empty(d, dtype=q.dtype)
        for i in range(n_q):
            s[:] = 0
            for e in range(d):
                qe = q[h, i, e] * scale
                for j in range(n_k):
                    s[j] += qe * k_t[e, j]
            row_max = s.max()
            for j in range(n_k):
                s[j] -= row_max  # now <= 0: exp stays in (0, 1] however large the logits
            _exp_inplace(s, bits[h])
            total = s.sum()
            acc[:] = 0
            for j in range(n_k):
                for e in range(d):
                    acc[e] += s[j] * v[h, j, e]
            for e in range(d):
                out[h, i, e] = acc[e] / total
            lse[h, i] = row_max + math.log(total)


@numba.njit(parallel=True, cache=True, fastmath=True)
def _attention_backward(dout, q, k, v, out, lse, dq, dk, dv, bits):
    """Fills dq (BH, N, D), dk and dv (BH, M, D); dk and dv must be zero on entry.

    bits: (BH, M) integer scratch of q's item size, for _exp_inplace.
    """
    n_bh, n_q, d = q.shape
    n_k = k.shape[1]
    t = q.dtype.type
    scale = t(1.0 / math.sqrt(d))
    for h in prange(n_bh):
        k_t = np.ascontiguousarray(k[h].T)  # (M, D) -> (D, M)
        v_t = np.ascontiguousarray(v[h].T)  # (M, D) -> (D, M)
        p = np.empty(n_k, dtype=q.dtype)
        dp = np.empty(n_k, dtype=q.dtype)
        qi = np.empty(d, dtype=q.dtype)
        acc = np.empty(d, dtype=q.dtype)
        for i in range(n_q):
            # rebuild this row of P = exp(S - lse) and dP = dO V^T
            p[:] = 0
            dp[:] = 0
            for e in range(d):
                qe = q[h, i, e] * scale
                de = dout[h, i, e]
                for j in range(n_k):
                    p[j] += qe * k_t[e, j]
                    dp[j] += de * v_t[e, j]
            row_lse = lse[h, i]
            for j in range(n_k):
                p[j] -= row_lse
            _exp_inplace(p, bits[h])
            delta = t(0.0)  # rowsum(dO * O) = rowsum(P * dP)
            for e in range(d):
                delta += dout[h, i, e] * out[h, i, e]
            for j in range(n_k):
                dp[j] = p[j] * (dp[j] - delta) * scale  # dS / sqrt(D), reused for dq and dk
            for e in range(d):
                qi[e] = q[h, i, e]
            acc[:] = 0
            for j in range(n_k):
                pj = p[j]
                dsj = dp[j]
                for e in range(d):
                    dv[h, j, e] += pj * dout[h, i, e]
                    dk[h, j, e] += dsj * qi[e]
                    acc[e] += dsj * k[h, j, e]
            for e in range(d):
                dq[h, i, e] = acc[e]


def _exp_scratch(dtype, shape):
    """Integer scratch whose items have the size of dtype's: _exp_inplace writes 2^k into it."""
    return np.empty(shape, dtype=np.int32 if np.dtype(dtype).itemsize == 4 else np.int64)


def attention_forward(q, k, v):
    """Fast softmax attention forward; same contract as reference.attention_forward_ref.

    Parameters
    ----------
    q : ndarray, shape (B, Hd, N, D)
    k, v : ndarray, shape (B, Hd, M, D)

    Returns
    -------
    out : ndarray, shape (B, Hd, N, D)
    lse : ndarray, shape (B, Hd, N)
    """
    n_b, n_h, n_q, d = q.shape
    n_k = k.shape[2]
    q3 = np.ascontiguousarray(q).reshape(n_b * n_h, n_q, d)  # (B, Hd, N, D) -> (B*Hd, N, D)
    k3 = np.ascontiguousarray(k).reshape(n_b * n_h, n_k, d)
    v3 = np.ascontiguousarray(v).reshape(n_b * n_h, n_k, d)
    out = np.empty_like(q3)
    lse = np.empty((n_b * n_h, n_q), dtype=q.dtype)
    _attention_forward(q3, k3, v3, out, lse, _exp_scratch(q3.dtype, (n_b * n_h, n_k)))
    return out.reshape(n_b, n_h, n_q, d), lse.reshape(n_b, n_h, n_q)


def attention_backward(dout, q, k, v, out, lse):
    """Fast softmax attention backward; same contract as reference.attention_backward_ref.

    Parameters
    ----------
    dout, q, out : ndarray, shape (B, Hd, N, D)
    k, v : ndarray, shape (B, Hd, M, D)
    lse : ndarray, shape (B, Hd, N)

    Returns
    -------
    dq : ndarray, shape (B, Hd, N, D)
    dk, dv : ndarray, shape (B, Hd, M, D)
    """
    n_b, n_h, n_q, d = q.shape
    n_k = k.shape[2]
    bh = n_b * n_h

    def flat(a, n):  # (B, Hd, n, D) -> (B*Hd, n, D)
        return np.ascontiguousarray(a).reshape(bh, n, d)

    q3, k3, v3 = flat(q, n_q), flat(k, n_k), flat(v, n_k)
    dq = np.empty_like(q3)
    dk = np.zeros_like(k3)
    dv = np.zeros_like(v3)
    _attention_backward(flat(dout, n_q), q3, k3, v3, flat(out, n_q),
                        np.ascontiguousarray(lse).reshape(bh, n_q), dq, dk, dv,
                        _exp_scratch(q3.dtype, (bh, n_k)))
    return (dq.reshape(n_b, n_h, n_q, d), dk.reshape(n_b, n_h, n_k, d),
            dv.reshape(n_b, n_h, n_k, d))
