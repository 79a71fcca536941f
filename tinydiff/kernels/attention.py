"""Scaled dot-product attention forward and backward: blocks of query rows per (batch, head).

How it works. The (batch, head) pairs are shared out over numba.get_num_threads() threads
(threads/pool.py says why not prange); each pair is one iteration of a Numba loop that walks its
query rows in blocks of R rows. For a block, one small matrix product gives the logits
S = Q_R K^T (R, M); a row-wise pass finds the max, and a fused pass computes
P = exp(S / sqrt(D) - max) and the row sums; a second product gives out = P V / rowsum. Only
the logsumexp per row (lse) is kept: backward rebuilds P = exp(S / sqrt(D) - lse) block by block
(Dao et al. 2022, FlashAttention, Algorithm 2), so no (N, M) matrix larger than one block is ever held
-- peak memory is the inputs, the outputs and a few (R, M) blocks per thread.

The causal mask (Vaswani et al. 2017, sec. 3.2.3; causal=True: query i sees keys j <= i, top-left
aligned as torch's is_causal)
is a number of keys per row: the row max, exp and row sum run over those keys only and the
masked probabilities are written as exact zeros, so no masked key gets weight or gradient. The
products still span all M keys (the zeros ride along): at CLIP's 77 tokens one block holds
most rows, so skipping masked key blocks would save little.

The products are BLAS calls (np.dot inside Numba): they run at several times the speed of
hand-written loops at head widths D of 16-64. Calling a multi-threaded BLAS from several threads
at once would stack BLAS threads on top of ours; R is chosen so that each product has at most
_SERIAL_MNK = 2^18 multiply-adds (m*n*k), the size up to which OpenBLAS runs a product on the
calling thread, so the only parallelism is the split over heads.

exp is the costliest elementwise step. LLVM cannot vectorise calls to libm's exp, so
_exp_rows uses exp(x) = 2^k * 2^f with k an integer written straight into the float's exponent
bits and 2^f a Taylor polynomial; that loop vectorises. Relative error about 1e-7 for float32
(degree 6) and 1e-15 for float64 (degree 12).

What bounds it. For small D the products are thin (inner dimension D), so they reach about half
of BLAS peak; the elementwise passes over (R, M) blocks (max, exp, and dS in backward) cost
about as much as the products and are bound by L1/L2 bandwidth and the exp polynomial.
"""

import math

import numba
import numpy as np

from tinydiff.kernels.fast_math import FAST_MATH
from tinydiff.kernels.threads import split_run

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_SERIAL_MNK = 2**18

# Taylor coefficients 1/n! for 2^f = exp(f ln 2), highest degree first (Horner order)
_INV_FACT_F64 = (1 / 479001600, 1 / 39916800, 1 / 3628800, 1 / 362880, 1 / 40320, 1 / 5040,
                 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0)


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _exp_rows(s, scale, shift, bits, sums, lengths):
    """s[i, j] = exp(s[i, j] * scale - shift[i]) and sums[i] = sum_j s[i, j] for the first
    lengths[i] columns of row i; the columns after them (masked keys) are set to exactly 0.

    s: (R, M), with s * scale - shift <= 0 up to rounding (shift is the row max or the lse);
    bits: (R, M) integers of s's item size, scratch for the 2^k factors; lengths: (R,) ints.
    """
    pow2 = bits.view(s.dtype)
    t = s.dtype.type
    n_r = s.shape[0]
    for i in range(n_r):
        row, row_bits = s[i], bits[i]
        off = shift[i]
        n_k = lengths[i]
        row[n_k:] = t(0.0)
        if s.itemsize == 4:
            for j in range(n_k):
                # below -87 exp leaves float32's normal range: clamp so 2^k stays representable
                y = max(row[j] * scale - off, t(-87.0)) * t(_LOG2E)
                k = np.floor(y + t(0.5))
                f = (y - k) * t(_LN2)  # |f| <= ln(2)/2
                row[j] = t(1.0) + f * (t(1.0) + f * (t(1 / 2) + f * (t(1 / 6) + f * (
                    t(1 / 24) + f * (t(1 / 120) + f * t(1 / 720))))))
                row_bits[j] = (np.int32(k) + 127) << 23  # float32 2^k: biased exponent only
        else:
            c = _INV_FACT_F64
            for j in range(n_k):
                y = max(row[j] * scale - off, -708.0) * _LOG2E
                k = np.floor(y + 0.5)
                f = (y - k) * _LN2
                p = c[0] * f + c[1]
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
                row[j] = p * f + c[12]
                row_bits[j] = (np.int64(k) + 1023) << 52
        total = t(0.0)
        row_pow2 = pow2[i]
        for j in range(n_k):
            row[j] *= row_pow2[j]
            total += row[j]
        sums[i] = total


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _row_max(s, out, lengths):
    """out[i] = max_j s[i, j] over the first lengths[i] columns; 16 running maxima so that the
    comparisons vectorise."""
    n_r = s.shape[0]
    lanes = np.empty(16, dtype=s.dtype)
    for i in range(n_r):
        row = s[i]
        n_k = lengths[i]
        m = row[0]
        j0 = 0
        if n_k >= 16:
            lanes[:] = row[:16]
            for j0 in range(16, n_k - 15, 16):
                for lane in range(16):
                    x = row[j0 + lane]
                    lanes[lane] = x if x > lanes[lane] else lanes[lane]
            j0 = n_k - n_k % 16
            for lane in range(16):
                m = max(m, lanes[lane])
        for j in range(j0, n_k):
            m = max(m, row[j])
        out[i] = m


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _block_scratch(q, n_k, rows, bits_like):
    """The scratch both kernels need per thread: logits s (R, M), _exp_rows' bits (R, M), a
    block of queries q_r (R, D), K^T k_t (D, M), row sums (R,) and keys per row lengths (R,)."""
    d = q.shape[3]
    return (np.empty((rows, n_k), dtype=q.dtype), np.empty((rows, n_k), dtype=bits_like.dtype),
            np.empty((rows, d), dtype=q.dtype), np.empty((d, n_k), dtype=q.dtype),
            np.empty(rows, dtype=q.dtype), np.empty(rows, dtype=np.int64))


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _block_logits(q, b, h, i0, r, k_t, causal, q_r, s, lengths):
    """Unscaled logits s[:r] = Q[i0:i0+r] K^T of pair (b, h), and lengths[i] = the number of
    keys query row i0 + i sees: all M, or with the causal mask keys 0..i0+i (top-left aligned,
    as torch's is_causal), so lengths[i] = min(M, i0 + i + 1)."""
    n_k = k_t.shape[1]
    q_r[:r] = q[b, h, i0:i0 + r]
    np.dot(q_r[:r], k_t, s[:r])  # (R, D) @ (D, M)
    for i in range(r):
        lengths[i] = min(n_k, i0 + i + 1) if causal else n_k


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _attention_forward(q, k, v, causal, first, stop, rows, out, lse, bits_like):
    """q (B, Hd, N, D), k/v (B, Hd, M, D), any strides; fills out (B, Hd, N, D) and lse
    (B, Hd, N) for the (batch, head) pairs first..stop-1 (pair b*Hd + h).

    rows: query rows per block; bits_like: any integer array of q's item size (sets the dtype
    of _exp_rows' scratch). Each pair's K^T, V and each block of Q rows are copied into
    contiguous scratch arrays for the products: the copies are small and stay in cache, and the
    inputs may then be views in any layout (the heads of token-major (B, N, Hd*D) arrays).
    Masked keys (causal) never enter the max or exp: their probabilities are set to exactly 0.
    """
    n_h, n_q, d = q.shape[1:]
    n_k = k.shape[2]
    scale = q.dtype.type(1.0 / math.sqrt(d))
    s, bits, q_r, k_t, sums, lengths = _block_scratch(q, n_k, rows, bits_like)
    pv = np.empty((rows, d), dtype=q.dtype)
    v_h = np.empty((n_k, d), dtype=q.dtype)
    shift = np.empty(rows, dtype=q.dtype)
    for pair in range(first, stop):
        b, h = pair // n_h, pair % n_h
        k_t[:] = k[b, h].T  # (M, D) -> (D, M)
        v_h[:] = v[b, h]
        for i0 in range(0, n_q, rows):
            r = min(rows, n_q - i0)
            _block_logits(q, b, h, i0, r, k_t, causal, q_r, s, lengths)
            _row_max(s[:r], shift[:r], lengths[:r])
            for i in range(r):
                shift[i] *= scale  # scale > 0, so the max commutes with it
            # subtracting the row max keeps exp in (0, 1] however large the logits
            _exp_rows(s[:r], scale, shift[:r], bits[:r], sums[:r], lengths[:r])
            np.dot(s[:r], v_h, pv[:r])  # (R, M) @ (M, D)
            for i in range(r):
                for e in range(d):
                    out[b, h, i0 + i, e] = pv[i, e] / sums[i]
                lse[b, h, i0 + i] = shift[i] + math.log(sums[i])


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _attention_backward(dout, q, k, v, out, lse, causal, first, stop, rows, dq, dk, dv,
                        bits_like):
    """Fills dq (B, Hd, N, D), dk and dv (B, Hd, M, D) for the pairs first..stop-1; arguments
    as in _attention_forward, and any strides again. A masked key's P is exactly 0, so its dS,
    and with it every gradient through it, is exactly 0 as well."""
    n_h, n_q, d = q.shape[1:]
    n_k = k.shape[2]
    t = q.dtype.type
    scale = t(1.0 / math.sqrt(d))
    p, bits, q_r, k_t, sums, lengths = _block_scratch(q, n_k, rows, bits_like)
    ds = np.empty((rows, n_k), dtype=q.dtype)
    dout_r = np.empty((rows, d), dtype=q.dtype)
    dq_r = np.empty((rows, d), dtype=q.dtype)
    k_h = np.empty((n_k, d), dtype=q.dtype)
    v_t = np.empty((d, n_k), dtype=q.dtype)
    dk_h = np.empty((n_k, d), dtype=q.dtype)
    dv_h = np.empty((n_k, d), dtype=q.dtype)
    part = np.empty((n_k, d), dtype=q.dtype)
    for pair in range(first, stop):
        b, h = pair // n_h, pair % n_h
        k_h[:] = k[b, h]
        k_t[:] = k_h.T  # (M, D) -> (D, M)
        v_t[:] = v[b, h].T
        dk_h[:] = 0
        dv_h[:] = 0
        for i0 in range(0, n_q, rows):
            r = min(rows, n_q - i0)
            _block_logits(q, b, h, i0, r, k_t, causal, q_r, p, lengths)
            dout_r[:r] = dout[b, h, i0:i0 + r]
            # P = exp(S - lse)
            _exp_rows(p[:r], scale, lse[b, h, i0:i0 + r], bits[:r], sums[:r], lengths[:r])
            np.dot(dout_r[:r], v_t, ds[:r])  # dP = dO V^T
            for i in range(r):
                delta = t(0.0)  # rowsum(dO * O) = rowsum(P * dP)
                for e in range(d):
                    delta += dout_r[i, e] * out[b, h, i0 + i, e]
                for j in range(n_k):
                    ds[i, j] = p[i, j] * (ds[i, j] - delta) * scale  # dS / sqrt(D)
            np.dot(p[:r].T, dout_r[:r], part)  # dV += P^T dO
            dv_h += part
            np.dot(ds[:r].T, q_r[:r], part)  # dK += dS^T Q / sqrt(D)
            dk_h += part
            np.dot(ds[:r], k_h, dq_r[:r])  # dQ = dS K / sqrt(D)
            dq[b, h, i0:i0 + r] = dq_r[:r]
        dk[b, h] = dk_h
        dv[b, h] = dv_h


def _rows_per_block(n_q, n_k, d):
    """Query rows per block: each product (R*M*D multiply-adds) small enough to stay serial."""
    return max(1, min(n_q, _SERIAL_MNK // (n_k * d)))


def _bits_like(dtype):
    """An empty integer array of dtype's item size, for _exp_rows' 2^k scratch."""
    return np.empty(0, dtype=np.int32 if np.dtype(dtype).itemsize == 4 else np.int64)


def _token_major(n_b, n_h, n, d, dtype):
    """An empty (B, Hd, n, D) array whose memory is laid out (B, n, Hd, D): merging its heads
    back into (B, n, Hd*D) tokens (nn.attention.merge_heads) is then a view, not a copy."""
    return np.empty((n_b, n, n_h, d), dtype=dtype).transpose(0, 2, 1, 3)


def attention_forward(q, k, v, causal=False):
    """Fast softmax attention forward: q (B, Hd, N, D), k and v (B, Hd, M, D) -> out
    (B, Hd, N, D), lse (B, Hd, N). Same contract, arguments and causal mask as
    reference.attention_forward_ref, whose docstring is the one to read.

    The inputs may be views of any layout (as split_heads makes them from (B, N, Hd*D) tokens);
    out is laid out (B, N, Hd, D) in memory (see _token_major).
    """
    n_b, n_h, n_q, d = q.shape
    n_k = k.shape[2]
    out = _token_major(n_b, n_h, n_q, d, q.dtype)
    lse = np.empty((n_b, n_h, n_q), dtype=q.dtype)
    rows, bits_like = _rows_per_block(n_q, n_k, d), _bits_like(q.dtype)
    split_run(n_b * n_h, lambda i, j: _attention_forward(
        q, k, v, bool(causal), i, j, rows, out, lse, bits_like))
    return out, lse


def attention_backward(dout, q, k, v, out, lse, causal=False):
    """Fast softmax attention backward: dq like q, dk and dv like k. Same contract as
    reference.attention_backward_ref; causal must be what forward was given.

    Inputs of any layout; dq, dk and dv are laid out (B, n, Hd, D) in memory, like out.
    """
    n_b, n_h, n_q, d = q.shape
    n_k = k.shape[2]
    dq = _token_major(n_b, n_h, n_q, d, q.dtype)
    dk = _token_major(n_b, n_h, n_k, d, q.dtype)
    dv = _token_major(n_b, n_h, n_k, d, q.dtype)
    dout = np.asarray(dout, dtype=q.dtype)
    rows, bits_like = _rows_per_block(n_q, n_k, d), _bits_like(q.dtype)
    split_run(n_b * n_h, lambda i, j: _attention_backward(
        dout, q, k, v, out, lse, bool(causal), i, j, rows, dq, dk, dv, bits_like))
    return dq, dk, dv
