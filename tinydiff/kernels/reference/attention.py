"""Scaled dot-product attention forward and backward, one einsum per equation.

Shapes: B batch, Hd heads, N query tokens, M key tokens, D head width.
"""

import numpy as np


# ----------------------------------------------------------------------------------------------
# Scaled dot-product attention (Vaswani et al. 2017, eq. 1):
#   S = Q K^T / sqrt(D),  P = softmax(S) row-wise,  out = P V
# lse = logsumexp(S) per query row lets backward rebuild P = exp(S - lse) without storing it
# (the trick of FlashAttention, Dao et al. 2022).
# The causal mask (Vaswani et al. 2017, sec. 3.2.3; Radford et al. 2019, GPT-2) sets S[i, j] =
# -inf for keys j > i, so P[i, j] = 0: top-left aligned, as torch's is_causal, also when N != M
# (query i sees keys 0..min(i, M-1); every query sees key 0, so no row is empty).
# ----------------------------------------------------------------------------------------------


def causal_keep_ref(n, m):
    """(N, M) bool, True where query i may attend key j (j <= i): the causal mask."""
    return np.arange(m)[None, :] <= np.arange(n)[:, None]


def _logits_ref(q, k, causal):
    """S = Q K^T / sqrt(D), (B, Hd, N, M), with -inf at masked keys when causal."""
    scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * scale
    if causal:
        s = np.where(causal_keep_ref(q.shape[2], k.shape[2]), s, -np.inf)
    return s

def attention_forward_ref(q, k, v, causal=False):
    """Softmax attention forward with a max-shifted (stable) logsumexp.

    Parameters
    ----------
    q : ndarray, shape (B, Hd, N, D)
    k, v : ndarray, shape (B, Hd, M, D)
    causal : bool
        Query i attends keys j <= i only (see causal_keep_ref).

    Returns
    -------
    out : ndarray, shape (B, Hd, N, D)
    lse : ndarray, shape (B, Hd, N) -- logsumexp over keys of the scaled logits
    """
    s = _logits_ref(q, k, causal)  # (B, Hd, N, M)
    # subtracting the row max keeps exp() in [0, 1]: finite for logits of any size; exp(-inf) = 0
    row_max = s.max(axis=-1, keepdims=True)
    lse = row_max[..., 0] + np.log(np.exp(s - row_max).sum(axis=-1))  # (B, Hd, N)
    p = np.exp(s - lse[..., None])
    out = np.einsum("bhnm,bhmd->bhnd", p, v)
    return out, lse


def attention_backward_ref(dout, q, k, v, out, lse, causal=False):
    """Softmax attention backward from the saved logsumexp.

    With P = softmax(S): dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
    dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D). rowsum(dO * O) equals rowsum(P * dP).

    Parameters
    ----------
    dout, q, out : ndarray, shape (B, Hd, N, D)
    k, v : ndarray, shape (B, Hd, M, D)
    lse : ndarray, shape (B, Hd, N)
    causal : bool
        As given to forward. Masked P is exactly 0, so masked dS is too.

    Returns
    -------
    dq : ndarray, shape (B, Hd, N, D)
    dk, dv : ndarray, shape (B, Hd, M, D)
    """
    scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    s = _logits_ref(q, k, causal)  # (B, Hd, N, M)
    p = np.exp(s - lse[..., None])
    dv = np.einsum("bhnm,bhnd->bhmd", p, dout)
    dp = np.einsum("bhnd,bhmd->bhnm", dout, v)
    delta = (dout * out).sum(axis=-1)  # (B, Hd, N)
    ds = p * (dp - delta[..., None])
    dq = np.einsum("bhnm,bhmd->bhnd", ds, k) * scale
    dk = np.einsum("bhnm,bhnd->bhmd", ds, q) * scale
    return dq, dk, dv
