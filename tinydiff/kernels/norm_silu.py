"""Group norm followed by SiLU, z = silu(group_norm(x)), one sample at a time.

Every residual block of a diffusion UNet normalises and then applies SiLU, twice (diffusers'
ResnetBlock2D: norm1 -> SiLU -> conv1, norm2 -> SiLU -> conv2). Run as two layers, the pair
streams the whole batch through memory five times forward (the norm's three passes, SiLU's read
and write) and seven times backward (SiLU writes dy, which the norm's backward reads twice).
Here each sample is done start to finish while it is in the core's cache: the norm's loops
(norm.py) write y for one sample, SiLU (activation.py) turns that y into z right away; backward,
SiLU's gradient dy of one sample goes to a small scratch array that the norm's backward then
reads. The arithmetic is that of the two kernels, called as they are, so the results equal the
two layers' to the bit (the tests check it). y is kept for backward, as the SiLU layer keeps it.

float32 only (the models' dtype); group_norm_silu_forward / _backward fall back to the two
separate kernels for other dtypes (the float64 gradient checks).
"""

import numba
import numpy as np

from tinydiff.kernels.activation import _silu_backward_f32, _silu_forward_f32, silu_backward, silu_forward
from tinydiff.kernels.norm import (_group_norm_backward, _group_norm_forward, backward_over_samples,
                                   group_norm_backward, group_norm_forward)
from tinydiff.kernels.threads import split_run


@numba.njit(cache=True, nogil=True)
def _forward_f32(x, weight, bias, n_groups, eps, y, z, mean, rstd):
    """x, y, z: (n, C, S); fills y = group_norm(x), z = silu(y), mean and rstd (n, G)."""
    n_b, n_c, n_s = x.shape
    for b in range(n_b):
        _group_norm_forward(x[b:b + 1], weight, bias, n_groups, eps, y[b:b + 1], mean[b:b + 1],
                            rstd[b:b + 1])
        _silu_forward_f32(y[b].reshape(n_c * n_s), z[b].reshape(n_c * n_s))


@numba.njit(cache=True, nogil=True)
def _backward_f32(dz, y, x, weight, mean, rstd, n_groups, dx, sum_dy, sum_dy_xhat):
    """dz, y, x, dx: (n, C, S); fills dx and the per-(sample, channel) sums (n, C) that
    norm._group_norm_backward fills, from dy = dz * silu'(y) one sample at a time."""
    n_b, n_c, n_s = x.shape
    dy = np.empty((1, n_c, n_s), dtype=x.dtype)  # one sample's dy, in cache
    for b in range(n_b):
        _silu_backward_f32(dz[b].reshape(n_c * n_s), y[b].reshape(n_c * n_s),
                           dy[0].reshape(n_c * n_s))
        _group_norm_backward(dy, x[b:b + 1], weight, mean[b:b + 1], rstd[b:b + 1], n_groups,
                             dx[b:b + 1], sum_dy[b:b + 1], sum_dy_xhat[b:b + 1])


def group_norm_silu_forward(x, weight, bias, num_groups, eps):
    """z = silu(group_norm(x)) -> (z, y, mean, rstd); y = group_norm(x) is kept for backward.

    Same arguments as norm.group_norm_forward; z and y have the shape of x.
    """
    if x.dtype != np.float32:
        y, mean, rstd = group_norm_forward(x, weight, bias, num_groups, eps)
        return silu_forward(y), y, mean, rstd
    x = np.ascontiguousarray(x)
    n_b, n_c = x.shape[:2]
    x3 = x.reshape(n_b, n_c, -1)  # (B, C, ...) -> (B, C, S)
    y, z = np.empty_like(x3), np.empty_like(x3)
    mean = np.empty((n_b, num_groups), dtype=x.dtype)
    rstd = np.empty((n_b, num_groups), dtype=x.dtype)
    weight, bias = np.ascontiguousarray(weight), np.ascontiguousarray(bias)
    split_run(n_b, lambda i, j: _forward_f32(x3[i:j], weight, bias, num_groups, float(eps),
                                             y[i:j], z[i:j], mean[i:j], rstd[i:j]))
    return z.reshape(x.shape), y.reshape(x.shape), mean, rstd


def group_norm_silu_backward(dz, y, x, weight, mean, rstd, num_groups):
    """Gradients of z = silu(group_norm(x)) -> (dx, dweight, dbias), as
    norm.group_norm_backward(activation.silu_backward(dz, y), x, ...) gives them."""
    if x.dtype != np.float32:
        return group_norm_backward(silu_backward(dz, y), x, weight, mean, rstd, num_groups)
    dz = np.asarray(dz, dtype=x.dtype)  # as silu_backward takes it
    return backward_over_samples(_backward_f32, (dz, y), x, weight, mean, rstd, num_groups)
