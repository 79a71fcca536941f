"""Group norm forward and backward, written from Wu & He 2018's definition.

Shapes: B batch, C channels, G groups, any trailing spatial dims.
"""

import numpy as np

from tinydiff.kernels.reference.activation import silu_backward_ref, silu_forward_ref


# ----------------------------------------------------------------------------------------------
# Group normalisation (Wu & He 2018, eq. 1-2): channels split into G groups; each (sample, group)
# is normalised by its own mean and variance, then scaled and shifted per channel.
# ----------------------------------------------------------------------------------------------

def group_norm_forward_ref(x, weight, bias, num_groups, eps):
    """Group norm forward.

    Parameters
    ----------
    x : ndarray, shape (B, C, ...) -- any number of trailing spatial dims, including none
    weight, bias : ndarray, shape (C,)
    num_groups : int, divides C
    eps : float

    Returns
    -------
    y : ndarray, shape of x
    mean, rstd : ndarray, shape (B, G) -- rstd = 1 / sqrt(var + eps), var biased
    """
    B, C = x.shape[:2]
    G = num_groups
    xg = x.reshape(B, G, -1)  # (B, C, ...) -> (B, G, C/G * spatial)
    mean = xg.mean(axis=-1)
    var = ((xg - mean[..., None]) ** 2).mean(axis=-1)
    rstd = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat = ((xg - mean[..., None]) * rstd[..., None]).reshape(x.shape)
    channel = (1, C) + (1,) * (x.ndim - 2)  # broadcast (C,) over batch and spatial dims
    y = xhat * weight.reshape(channel) + bias.reshape(channel)
    return y, mean, rstd


def group_norm_backward_ref(dy, x, weight, mean, rstd, num_groups):
    """Group norm backward.

    With xhat = (x - mean) * rstd and g = dy * weight, per group of n elements:
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).

    Parameters
    ----------
    dy, x : ndarray, shape (B, C, ...)
    weight : ndarray, shape (C,)
    mean, rstd : ndarray, shape (B, G)
    num_groups : int

    Returns
    -------
    dx : ndarray, shape of x
    dweight, dbias : ndarray, shape (C,)
    """
    B, C = x.shape[:2]
    G = num_groups
    channel = (1, C) + (1,) * (x.ndim - 2)
    reduce_axes = (0,) + tuple(range(2, x.ndim))  # batch and spatial dims
    xhat = ((x.reshape(B, G, -1) - mean[..., None]) * rstd[..., None]).reshape(x.shape)
    dweight = (dy * xhat).sum(axis=reduce_axes)
    dbias = dy.sum(axis=reduce_axes)
    g = (dy * weight.reshape(channel)).reshape(B, G, -1)  # (B, C, ...) -> (B, G, C/G * spatial)
    xhat_g = xhat.reshape(B, G, -1)
    dx = rstd[..., None] * (g - g.mean(axis=-1, keepdims=True)
                            - xhat_g * (g * xhat_g).mean(axis=-1, keepdims=True))
    return dx.reshape(x.shape), dweight, dbias


# ----------------------------------------------------------------------------------------------
# Group norm followed by SiLU, z = silu(group_norm(x)): what every ResnetBlock2D does twice, and
# what kernels/norm_silu.py fuses into one pass per sample. Here it is the two steps in turn.
# ----------------------------------------------------------------------------------------------

def group_norm_silu_forward_ref(x, weight, bias, num_groups, eps):
    """z = silu(group_norm(x)) -> (z, y, mean, rstd); y = group_norm(x), kept for backward.

    Arguments as group_norm_forward_ref's; z and y have the shape of x.
    """
    y, mean, rstd = group_norm_forward_ref(x, weight, bias, num_groups, eps)
    return silu_forward_ref(y), y, mean, rstd


def group_norm_silu_backward_ref(dz, y, x, weight, mean, rstd, num_groups):
    """Gradients of z = silu(group_norm(x)) -> (dx, dweight, dbias): the chain rule, SiLU's
    derivative at y first, then group norm's backward."""
    dy = silu_backward_ref(dz, y)
    return group_norm_backward_ref(dy, x, weight, mean, rstd, num_groups)
