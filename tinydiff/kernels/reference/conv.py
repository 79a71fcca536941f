"""conv2d (cross-correlation, as in PyTorch) and its two gradients, one kernel tap at a time.

Shapes: B batch, C input channels, O output channels, H/W input height/width, Ho/Wo output
height/width, kH/kW kernel height/width.
"""

import numpy as np


# ----------------------------------------------------------------------------------------------
# conv2d (cross-correlation, as in PyTorch):
#   y[b, o, i, j] = bias[o] + sum_{c, p, q} w[o, c, p, q] * xpad[b, c, i*s + p, j*s + q]
# ----------------------------------------------------------------------------------------------

def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution along one axis: (size + 2*pad - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_output_hw(input_hw, kernel_hw, stride, padding):
    """(Ho, Wo) of a 2-D convolution of an input (H, W) with a kernel (kH, kW)."""
    return tuple(conv_output_size(n, k, stride, padding) for n, k in zip(input_hw, kernel_hw))


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
        (Ho, Wo) = conv_output_hw((H, W), (kH, kW), stride, padding)
    """
    B = x.shape[0]
    O, _, kH, kW = w.shape
    Ho, Wo = conv_output_hw(x.shape[2:], w.shape[2:], stride, padding)
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


def conv2d_backward_ref(dy, x, w, stride, padding):
    """Both gradients of conv2d at once: (dx, dw, db), as the two functions above give them."""
    dx = conv2d_backward_input_ref(dy, w, x.shape[2:], stride, padding)
    dw, db = conv2d_backward_weight_ref(dy, x, w.shape[2:], stride, padding)
    return dx, dw, db
