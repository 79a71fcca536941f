"""Group norm forward and backward (Wu & He 2018): Numba loops over (sample, group).

How it works. x is viewed as (B, C, S) with S the product of the trailing dims. The samples are
shared out over numba.get_num_threads() threads (threads/pool.py says why not prange); each
(sample, group) pair owns C/G contiguous channel rows.
Forward: one pass for the mean, one for the variance (two passes avoid the cancellation of
E[x^2] - E[x]^2), one that writes y = (x - mean) * a_c + bias[c] with a_c = rstd * weight[c].
Backward: one pass gathers per-channel sums of dy and dy * (x - mean); from those come the group
means the gradient needs and, summed over the batch, dweight and dbias; a last pass writes
dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight, folded into
dx = dy * a_c + (x - mean) * u + v per group. Values are centred before any product so nothing
cancels when rstd is large; sums accumulate in float64 whatever the input dtype.

What bounds it. Two (forward) or three (backward) streaming passes over arrays that fit in the
L2/L3 caches at the sizes used here: memory bandwidth, and for small inputs the cost of starting
a thread (tens of microseconds).
"""

import math

import numba
import numpy as np

from tinydiff.kernels.fast_math import FAST_MATH
from tinydiff.kernels.threads import split_run


@numba.njit(cache=True, nogil=True)
def _sample_group(bg, n_groups, per_group):
    """The flat (sample, group) index bg -> (sample b, group g, the group's first channel c0)."""
    g = bg % n_groups
    return bg // n_groups, g, g * per_group


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _group_norm_forward(x, weight, bias, n_groups, eps, y, mean, rstd):
    """x, y: (B, C, S); weight/bias (C,); fills y, mean (B, G), rstd (B, G)."""
    n_b, n_c, n_s = x.shape
    per_group = n_c // n_groups
    count = per_group * n_s
    for bg in range(n_b * n_groups):
        b, g, c0 = _sample_group(bg, n_groups, per_group)
        total = 0.0
        for c in range(c0, c0 + per_group):
            for s in range(n_s):
                total += x[b, c, s]
        mu = total / count
        sq = 0.0
        for c in range(c0, c0 + per_group):
            for s in range(n_s):
                dev = x[b, c, s] - mu
                sq += dev * dev
        r = 1.0 / math.sqrt(sq / count + eps)
        mean[b, g] = mu
        rstd[b, g] = r
        # centre before scaling: folding mu into the shift would cancel badly when rstd is large
        mu_t = x.dtype.type(mu)
        for c in range(c0, c0 + per_group):
            a_t = x.dtype.type(r * weight[c])
            for s in range(n_s):
                y[b, c, s] = (x[b, c, s] - mu_t) * a_t + bias[c]


@numba.njit(cache=True, nogil=True, fastmath=FAST_MATH, error_model="numpy")
def _group_norm_backward(dy, x, weight, mean, rstd, n_groups, dx, sum_dy, sum_dy_xhat):
    """dy, x, dx: (B, C, S); fills dx and the per-(sample, channel) sums (B, C) of dy and
    dy * xhat, which the caller reduces over the batch into dbias and dweight."""
    n_b, n_c, n_s = x.shape
    per_group = n_c // n_groups
    count = per_group * n_s
    for bg in range(n_b * n_groups):
        b, g, c0 = _sample_group(bg, n_groups, per_group)
        mu = float(mean[b, g])
        r = float(rstd[b, g])
        mean_g = 0.0  # mean over the group of g = dy * weight
        mean_g_xhat = 0.0  # mean over the group of g * xhat
        for c in range(c0, c0 + per_group):
            s_dy = 0.0
            s_dy_centred = 0.0
            for s in range(n_s):
                s_dy += dy[b, c, s]
                s_dy_centred += dy[b, c, s] * (x[b, c, s] - mu)
            s_dy_xhat = s_dy_centred * r
            sum_dy[b, c] = s_dy
            sum_dy_xhat[b, c] = s_dy_xhat
            mean_g += weight[c] * s_dy
            mean_g_xhat += weight[c] * s_dy_xhat
        mean_g /= count
        mean_g_xhat /= count
        # dx = r * (dy * w_c - mean_g - (x - mu) * r * mean_g_xhat)
        u_t = x.dtype.type(-r * r * mean_g_xhat)
        offset_t = x.dtype.type(-r * mean_g)
        mu_t = x.dtype.type(mu)
        for c in range(c0, c0 + per_group):
            a_t = x.dtype.type(r * weight[c])
            for s in range(n_s):
                dx[b, c, s] = dy[b, c, s] * a_t + (x[b, c, s] - mu_t) * u_t + offset_t


def group_norm_forward(x, weight, bias, num_groups, eps):
    """Fast group norm forward, (y shaped as x, mean (B, G), rstd (B, G)) from x (B, C, ...)
    and weight, bias (C,); the arguments and results of reference.group_norm_forward_ref,
    which documents them."""
    x = np.ascontiguousarray(x)
    n_b, n_c = x.shape[:2]
    x3 = x.reshape(n_b, n_c, -1)  # (B, C, ...) -> (B, C, S)
    y = np.empty_like(x3)
    mean = np.empty((n_b, num_groups), dtype=x.dtype)
    rstd = np.empty((n_b, num_groups), dtype=x.dtype)
    weight, bias = np.ascontiguousarray(weight), np.ascontiguousarray(bias)
    split_run(n_b, lambda i, j: _group_norm_forward(x3[i:j], weight, bias, num_groups, float(eps),
                                                    y[i:j], mean[i:j], rstd[i:j]))
    return y.reshape(x.shape), mean, rstd


def group_norm_backward(dy, x, weight, mean, rstd, num_groups):
    """Fast group norm backward, (dx shaped as x, dweight (C,), dbias (C,)) from dy, x
    (B, C, ...), weight (C,) and forward's mean, rstd (B, G); the arguments and results of
    reference.group_norm_backward_ref, which documents them."""
    return backward_over_samples(_group_norm_backward, (dy,), x, weight, mean, rstd, num_groups)


def backward_over_samples(kernel, grads, x, weight, mean, rstd, num_groups):
    """Run a group norm backward kernel over the batch, split over threads, and reduce its
    per-(sample, channel) sums to (dx, dweight, dbias).

    kernel(*grads_3d, x, weight, mean, rstd, num_groups, dx, sum_dy, sum_dy_xhat) is called on
    slices of samples, with every array of `grads` (shaped like x) viewed as (B, C, S) and
    placed first; _group_norm_backward takes (dy,), norm_silu's kernel (dz, y).
    """
    x = np.ascontiguousarray(x)
    n_b, n_c = x.shape[:2]
    x3 = x.reshape(n_b, n_c, -1)  # (B, C, ...) -> (B, C, S)
    grads3 = [np.ascontiguousarray(g).reshape(n_b, n_c, -1) for g in grads]
    dx = np.empty_like(x3)
    sum_dy = np.empty((n_b, n_c))
    sum_dy_xhat = np.empty((n_b, n_c))
    weight = np.ascontiguousarray(weight)
    mean, rstd = np.ascontiguousarray(mean), np.ascontiguousarray(rstd)
    split_run(n_b, lambda i, j: kernel(*(g[i:j] for g in grads3), x3[i:j], weight, mean[i:j],
                                       rstd[i:j], num_groups, dx[i:j], sum_dy[i:j],
                                       sum_dy_xhat[i:j]))
    dweight = sum_dy_xhat.sum(axis=0).astype(x.dtype)
    dbias = sum_dy.sum(axis=0).astype(x.dtype)
    return dx.reshape(x.shape), dweight, dbias
