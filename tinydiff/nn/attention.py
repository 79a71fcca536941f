"""Attention (Vaswani et al. 2017, eq. 1): softmax(Q K^T / sqrt(d)) V, and the multi-head
layer that projects tokens to queries, keys and values and back.

ScaledDotProductAttention is the kernel wrapped as a Module: the arithmetic (a numerically
stable softmax through the log-sum-exp of each row, and its backward) is in tinydiff.kernels.
MultiHeadAttention follows diffusers' Attention in parameter names (to_q, to_k, to_v,
to_out.0) so weights can be exchanged by name.

attention_probabilities forms P = softmax(Q K^T / sqrt(d)) itself, which the kernels never
keep (they save the log-sum-exp of each row instead), so that P can be looked at:
MultiHeadAttention.record_probabilities makes a layer keep P of every forward (lesson 08's
cross-attention maps).
"""

import numpy as np

from tinydiff import kernels
from tinydiff.nn.activation import Dropout
from tinydiff.nn.checks import check_float_array, check_positive_int
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module, Sequential


class ScaledDotProductAttention(Module):
    """forward(q (B, h, N, d), k (B, h, M, d), v (B, h, M, d)) -> (B, h, N, d);
    backward(dout) -> (dq, dk, dv). Softmax scale 1/sqrt(d).

    causal=True masks the future: query i attends keys j <= i only (top-left aligned like
    torch's scaled_dot_product_attention(is_causal=True), also when N != M).

    Reference: tinydiff.kernels.reference.attention_forward_ref and attention_backward_ref
    (fast: kernels/attention.py)."""

    def __init__(self, causal=False):
        super().__init__()
        if not isinstance(causal, bool):
            raise TypeError(f"ScaledDotProductAttention: causal must be a bool, got {causal!r}")
        self.causal = causal

    def forward(self, q, k, v):
        check_float_array(q, "q", ndim=4)
        check_float_array(k, "k", ndim=4, dtype=q.dtype)
        check_float_array(v, "v", ndim=4, dtype=q.dtype)
        if k.shape[:2] != q.shape[:2] or k.shape[3] != q.shape[3]:
            raise ValueError(
                f"ScaledDotProductAttention: k must be (B, h, M, d) with B, h, d of q {q.shape}, got {k.shape}"
            )
        if v.shape[:3] != k.shape[:3]:
            raise ValueError(
                f"ScaledDotProductAttention: v must be (B, h, M, d_v) with B, h, M of k {k.shape}, got {v.shape}"
            )
        forward = kernels.pick(kernels.attention_forward, kernels.attention_forward_ref)
        out, lse = forward(q, k, v, causal=self.causal)
        self.save_for_backward(q, k, v, out, lse)
        return out

    def backward(self, grad_out):
        q, k, v, out, lse = self.saved()
        backward = kernels.pick(kernels.attention_backward, kernels.attention_backward_ref)
        return backward(grad_out, q, k, v, out, lse, causal=self.causal)

    def extra_repr(self):
        return f"causal={self.causal}"


def attention_probabilities(q, k, causal=False):
    """P = softmax(Q K^T / sqrt(d)) row by row (Vaswani et al. 2017, eq. 1): how much each query
    attends to each key. q (B, h, N, d), k (B, h, M, d) -> P (B, h, N, M) in q's dtype, every
    row summing to 1 (keys j > i get exactly 0 when causal, as in ScaledDotProductAttention).

    The kernels compute P V without ever storing P; this computes P alone, for looking at
    (Hertz et al. 2022, sec. 3.1: M = softmax(Q K^T / sqrt(d)) as cross-attention maps).
    Computed in float64 with the row maximum subtracted, so it is finite for logits of any size."""
    check_float_array(q, "q", ndim=4)
    check_float_array(k, "k", ndim=4, dtype=q.dtype)
    if k.shape[:2] != q.shape[:2] or k.shape[3] != q.shape[3]:
        raise ValueError(f"attention_probabilities: k must be (B, h, M, d) with B, h, d of q {q.shape}, got {k.shape}")
    if not isinstance(causal, bool):
        raise TypeError(f"attention_probabilities: causal must be a bool, got {causal!r}")
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    s = np.einsum("bhnd,bhmd->bhnm", q64, k64) / np.sqrt(q.shape[-1])  # (B, h, N, M)
    if causal:
        n, m = s.shape[2:]
        s = np.where(np.arange(m)[None, :] <= np.arange(n)[:, None], s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)).astype(q.dtype)


def split_heads(x, heads):
    """(B, N, D) -> (B, heads, N, D / heads)."""
    B, N, D = x.shape
    return x.reshape(B, N, heads, D // heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, heads, N, d) -> (B, N, heads * d)."""
    B, h, N, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, h * d)


class MultiHeadAttention(Module):
    """Multi-head self-attention, or cross-attention when context_dim is given.

    forward(x (B, N, dim), context (B, M, context_dim) or None) -> (B, N, dim).
    backward(dout) -> dx for self-attention, (dx, dcontext) for cross-attention.

    Parameters
    ----------
    dim : int
        Token width; must be divisible by heads.
    heads : int
    context_dim : int, optional
        Width of the context tokens; keys and values are projected from them.
    bias : bool
        Bias on the q/k/v projections (the output projection always has one).
    dropout : float
        Dropout after the output projection.

    Reference: its attention is ScaledDotProductAttention's (attention_forward_ref and
    attention_backward_ref); the projections are Linear layers (NumPy products either way).
    """

    def __init__(self, dim, heads, context_dim=None, bias=True, dropout=0.0, rng=None):
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        self.heads = check_positive_int(heads, "heads")
        if dim % heads:
            raise ValueError(f"MultiHeadAttention: dim={dim} must be divisible by heads={heads}")
        self.context_dim = None if context_dim is None else check_positive_int(context_dim, "context_dim")
        kv_dim = dim if context_dim is None else context_dim
        self.to_q = Linear(dim, dim, bias=bias, rng=rng)
        self.to_k = Linear(kv_dim, dim, bias=bias, rng=rng)
        self.to_v = Linear(kv_dim, dim, bias=bias, rng=rng)
        self.attention = ScaledDotProductAttention()
        self.to_out = Sequential([Linear(dim, dim, rng=rng), Dropout(dropout, rng=rng)])
        self.recorded_probabilities = None  # a list while record_probabilities is on

    def record_probabilities(self, record=True):
        """record=True: from now on every forward appends its attention probabilities
        P = softmax(Q K^T / sqrt(d)), (B, heads, N, M) (attention_probabilities), to
        self.recorded_probabilities, a fresh list; record=False stops and drops them. Off by
        default: P costs a second pass over the logits, and memory for every forward kept."""
        if not isinstance(record, bool):
            raise TypeError(f"MultiHeadAttention.record_probabilities: record must be a bool, got {record!r}")
        self.recorded_probabilities = [] if record else None

    def forward(self, x, context=None):
        check_float_array(x, "x", ndim=3, dtype=self.to_q.weight.dtype)
        if x.shape[2] != self.dim:
            raise ValueError(f"MultiHeadAttention: x must be (B, N, dim={self.dim}), got shape {x.shape}")
        if (context is None) != (self.context_dim is None):
            raise ValueError(
                "MultiHeadAttention: pass context exactly when the layer was built with context_dim "
                f"(context_dim={self.context_dim}, context given: {context is not None})"
            )
        if context is not None:
            check_float_array(context, "context", ndim=3, dtype=x.dtype)
            if context.shape[0] != x.shape[0] or context.shape[2] != self.context_dim:
                raise ValueError(
                    f"MultiHeadAttention: context must be (B={x.shape[0]}, M, context_dim={self.context_dim}), "
                    f"got shape {context.shape}"
                )
        source = x if context is None else context
        q = split_heads(self.to_q(x), self.heads)  # (B, N, dim) -> (B, h, N, dim/h)
        k = split_heads(self.to_k(source), self.heads)  # (B, M, dim) -> (B, h, M, dim/h)
        v = split_heads(self.to_v(source), self.heads)
        if self.recorded_probabilities is not None:
            self.recorded_probabilities.append(attention_probabilities(q, k, self.attention.causal))
        out = merge_heads(self.attention(q, k, v))  # (B, h, N, dim/h) -> (B, N, dim)
        self.save_for_backward(context is not None)
        return self.to_out(out)

    def backward(self, grad_out):
        (cross,) = self.saved()
        dout = split_heads(self.to_out.backward(grad_out), self.heads)  # (B, N, dim) -> (B, h, N, d)
        dq, dk, dv = self.attention.backward(dout)
        dx = self.to_q.backward(merge_heads(dq))
        dsource = self.to_k.backward(merge_heads(dk)) + self.to_v.backward(merge_heads(dv))
        if cross:
            return dx, dsource
        return dx + dsource

    def extra_repr(self):
        return f"dim={self.dim}, heads={self.heads}, context_dim={self.context_dim}"
