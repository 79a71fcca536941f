"""Slow, obviously-correct NumPy twins of the Numba kernels, written for reading.

Every function here follows its definition line by line (a loop over kernel taps, an einsum per
equation), so a student can check the fast kernels in conv.py, attention.py and norm.py against
them. The tests hold the fast kernels to these, and these to independent computations (finite
differences, adjoint identities, naive softmax).

Shapes: B batch, C input channels, O output channels, H/W input height/width, Ho/Wo output
height/width, kH/kW kernel height/width, Hd heads, N query tokens, M key tokens, D head width,
G groups.
"""

import numpy as np


# ----------------------------------------------------------------------------------------------
# conv2d (cross-correlation, as in PyTorch):
#   y[b, o, i, j] = bias[o] + sum_{c, p, q} w[o, c, p, q] * xpad[b, c, i*s + p, j*s + q]
# ----------------------------------------------------------------------------------------------

def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution along one axis: (size + 2*pad - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_forward_ref(x, w, b, stride, padding):
    """2-D convolution (cross-correlation) forward, one kernel tap at a time.

    Parameters
    ----------
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, kH, kW)
    b : ndarray of shape (O,) or None
    stride, padding : int

    Returns
    -------
    y : ndarray, shape (B, O, Ho, Wo)
    """
    B, C, H, W = x.shape
    O, _, kH, kW = w.shape
    Ho = conv_output_size(H, kH, stride, padding)
    Wo = conv_output_size(W, kW, stride, padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((B, O, Ho, Wo), dtype=x.dtype)
    for p in range(kH):
        for q in range(kW):
            # the input pixels that tap (p, q) sees for every output position
            patch = xpad[:, :, p:p + stride * Ho:stride, q:q + stride * Wo:stride]  # (B, C, Ho, Wo)
            y += np.einsum("oc,bchw->bohw", w[:, :, p, q], patch)
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward_input_ref(dy, w, input_hw, stride, padding):
    """Gradient of conv2d w.r.t. its input: every tap scatters dy back to the pixels it read.

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    w : ndarray, shape (O, C, kH, kW)
    input_hw : tuple (H, W) of the forward input
    stride, padding : int

    Returns
    -------
    dx : ndarray, shape (B, C, H, W)
    """
    B, O, Ho, Wo = dy.shape
    _, C, kH, kW = w.shape
    H, W = input_hw
    dxpad = np.zeros((B, C, H + 2 * padding, W + 2 * padding), dtype=dy.dtype)
    for p in range(kH):
        for q in range(kW):
            dxpad[:, :, p:p + stride * Ho:stride, q:q + stride * Wo:stride] += np.einsum(
                "oc,bohw->bchw", w[:, :, p, q], dy)
    # gradient that landed on padding belongs to no input pixel
    return dxpad[:, :, padding:padding + H, padding:padding + W].copy()


def conv2d_backward_weight_ref(dy, x, kernel_hw, stride, padding):
    """Gradient of conv2d w.r.t. weight and bias.

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    x : ndarray, shape (B, C, H, W)
    kernel_hw : tuple (kH, kW)
    stride, padding : int

    Returns
    -------
    dw : ndarray, shape (O, C, kH, kW)
    db : ndarray, shape (O,) -- dy summed over batch and positions
    """
    B, O, Ho, Wo = dy.shape
    C = x.shape[1]
    kH, kW = kernel_hw
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dw = np.zeros((O, C, kH, kW), dtype=dy.dtype)
    for p in range(kH):
        for q in range(kW):
            patch = xpad[:, :, p:p + stride * Ho:stride, q:q + stride * Wo:stride]  # (B, C, Ho, Wo)
            dw[:, :, p, q] = np.einsum("bohw,bchw->oc", dy, patch)
    db = dy.sum(axis=(0, 2, 3))
    return dw, db


# ----------------------------------------------------------------------------------------------
# Scaled dot-product attention (Vaswani et al. 2017, eq. 1):
#   S = Q K^T / sqrt(D),  P = softmax(S) row-wise,  out = P V
# lse = logsumexp(S) per query row lets backward rebuild P = exp(S - lse) without storing it
# (the trick of FlashAttention, Dao et al. 2022).
# ----------------------------------------------------------------------------------------------

def conv2d_backward_ref(dy, x, w, stride, padding):
    """Both gradients of conv2d at once: (dx, dw, db), as the two functions above give them."""
    dx = conv2d_backward_input_ref(dy, w, x.shape[2:], stride, padding)
    dw, db = conv2d_backward_weight_ref(dy, x, w.shape[2:], stride, padding)
    return dx, dw, db


def attention_forward_ref(q, k, v):
    """Softmax attention forward with a max-shifted (stable) logsumexp.

    Parameters
    ----------
    q : ndarray, shape (B, Hd, N, D)
    k, v : ndarray, shape (B, Hd, M, D)

    Returns
    -------
    out : ndarray, shape (B, Hd, N, D)
    lse : ndarray, shape (B, Hd, N) -- logsumexp over keys of the scaled logits
    """
    scale = 1.0 / np.sqrt(q.shape[-1])
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * q.dtype.type(scale)  # (B, Hd, N, M)
    # subtracting the row max keeps exp() in [0, 1]: finite for logits of any size
    row_max = s.max(axis=-1, keepdims=True)
    lse = row_max[..., 0] + np.log(np.exp(s - row_max).sum(axis=-1))  # (B, Hd, N)
    p = np.exp(s - lse[..., None])
    out = np.einsum("bhnm,bhmd->bhnd", p, v)
    return out, lse


def attention_backward_ref(dout, q, k, v, out, lse):
    """Softmax attention backward from the saved logsumexp.

    With P = softmax(S): dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
    dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D). rowsum(dO * O) equals rowsum(P * dP).

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
    scale = q.dtype.type(1.0 / np.sqrt(q.shape[-1]))
    s = np.einsum("bhnd,bhmd->bhnm", q, k) * scale  # (B, Hd, N, M)
    p = np.exp(s - lse[..., None])
    dv = np.einsum("bhnm,bhnd->bhmd", p, dout)
    dp = np.einsum("bhnd,bhmd->bhnm", dout, v)
    delta = (dout * out).sum(axis=-1)  # (B, Hd, N)
    ds = p * (dp - delta[..., None])
    dq = np.einsum("bhnm,bhmd->bhnd", ds, k) * scale
    dk = np.einsum("bhnm,bhnd->bhmd", ds, q) * scale
    return dq, dk, dv


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


def silu_forward_ref(x):
    """y = x * sigmoid(x) = x / (1 + exp(-x)), element by element."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x << 0 gives x / inf = -0: right
        return x / (1.0 + np.exp(-x))


def silu_backward_ref(dy, x):
    """dL/dx = dy * (s + x s (1 - s)) with s = sigmoid(x)."""
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-x))
    return dy * (s + x * s * (1.0 - s))


# ----------------------------------------------------------------------------------------------
# nearest-neighbour 2x upsampling: y[b, c, 2i + r, 2j + s] = x[b, c, i, j], r, s in {0, 1}
# ----------------------------------------------------------------------------------------------

def upsample_nearest2x_ref(x):
    """(B, C, H, W) -> (B, C, 2H, 2W): x broadcast over a new axis after H and after W."""
    B, C, H, W = x.shape
    y = np.broadcast_to(x[:, :, :, None, :, None], (B, C, H, 2, W, 2))
    return y.reshape(B, C, 2 * H, 2 * W)  # (B, C, H, 2, W, 2) -> (B, C, 2H, 2W)


def upsample_nearest2x_backward_ref(dy):
    """(B, C, 2H, 2W) -> (B, C, H, W): each input pixel gets the sum of its 2x2 block, rows in
    pairs first, then columns in pairs."""
    rows = dy[:, :, 0::2, :] + dy[:, :, 1::2, :]  # (B, C, H, 2W)
    return rows[:, :, :, 0::2] + rows[:, :, :, 1::2]  # -> (B, C, H, W)
