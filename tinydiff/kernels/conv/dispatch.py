"""Which algorithm a convolution takes, and the four functions the layers call.

    3x3, stride 1, padding 1, >= 8 channels in and out    winograd.py   Winograd F(2x2, 3x3)
    1x1, stride 1, padding 0                              pointwise.py  one product per image
    anything else                                         im2col.py     im2col + products

Each returns the same arrays as its NumPy twin in tinydiff.kernels.reference
(conv2d_forward_ref, conv2d_backward_input_ref, conv2d_backward_weight_ref, conv2d_backward_ref).
"""

import contextlib

import numpy as np

from tinydiff.kernels.conv import batch, im2col, pointwise, winograd
from tinydiff.kernels.reference import conv_output_hw

# 3x3, stride-1, padding-1 convolutions with at least this many input and output channels take
# Winograd F(2x2, 3x3) instead of im2col (all of the UNet's but the first and last, and the
# stride-2 downsamplers): with fewer, the products are too thin for the 2.25x fewer FLOPs to pay
# for the transforms.
WINOGRAD_MIN_CHANNELS = 8
_winograd_on = True


@contextlib.contextmanager
def winograd_enabled(enabled):
    """Within the block, 3x3 stride-1 padding-1 convolutions use Winograd (True, the default)
    or im2col (False); benchmarks compare the two this way."""
    global _winograd_on
    before, _winograd_on = _winograd_on, bool(enabled)
    try:
        yield
    finally:
        _winograd_on = before


def algorithm(kernel_hw, stride, padding, n_c, n_o):
    """"winograd", "pointwise" or "im2col": the algorithm for this geometry and these channels."""
    if (_winograd_on and tuple(kernel_hw) == (3, 3) and stride == 1 and padding == 1
            and min(n_c, n_o) >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    if tuple(kernel_hw) == (1, 1) and stride == 1 and padding == 0:
        return "pointwise"
    return "im2col"


def describe_path(kernel_hw, stride, padding, n_c=64, n_o=64):
    """Which fast path conv2d_* takes for this geometry and these channel counts, in words
    (benchmarks and `tinydiff info` print it)."""
    threads = batch.split_threads()
    way = f"batch split over {threads} threads, each: " if threads > 1 else "serial: "
    chosen = algorithm(kernel_hw, stride, padding, n_c, n_o)
    if chosen == "winograd":
        return ("Winograd F(2x2,3x3): " + way + "Numba tile transforms, 16 BLAS sgemms per "
                f"chunk of images (im2col below {WINOGRAD_MIN_CHANNELS} channels)")
    if chosen == "pointwise":
        if threads > 1:
            return ("pointwise: no im2col; " + way
                    + "single-threaded BLAS sgemm per image (y, dx, dW)")
        return "pointwise: no im2col; BLAS sgemm per image (y, dx), one over the batch (dW)"
    if threads > 1:
        return (way + f"Numba im2col/col2im in {batch.SPLIT_CHUNK_BYTES >> 10} KB chunks, "
                "single-threaded BLAS sgemm per image (y, dcols), per chunk or per image (dW)")
    return (f"serial Numba im2col/col2im in {batch.CHUNK_BYTES >> 20} MB chunks; "
            "BLAS sgemm per image (y, dcols), per chunk or per image (dW)")


def winograd_weights(w, stride, padding):
    """The transformed filters U = G w G^T (16, O, C) when a convolution with weight w takes
    Winograd, else None. A layer computes them once per forward and passes them to
    conv2d_forward and conv2d_backward (winograd_weights=...), which would each compute them
    again otherwise."""
    if algorithm(w.shape[2:], stride, padding, w.shape[1], w.shape[0]) == "winograd":
        return winograd.filter_transform(w)
    return None


def conv2d_forward(x, w, b, stride, padding, winograd_weights=None):
    """Fast conv2d forward, y (B, O, Ho, Wo) from x (B, C, H, W), w (O, C, kH, kW) and b (O,) or
    None; the arguments and result of reference.conv2d_forward_ref, which documents them.

    winograd_weights : ndarray of shape (16, O, C), optional
        winograd_weights(w, stride, padding) of this w, if the caller has it (else computed
        here); used only on the Winograd path.
    """
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    n_b, n_c = x.shape[:2]
    n_o = w.shape[0]
    h_out, w_out = conv_output_hw(x.shape[2:], w.shape[2:], stride, padding)
    chosen = algorithm(w.shape[2:], stride, padding, n_c, n_o)
    if chosen == "winograd":
        u = winograd.filter_transform(w) if winograd_weights is None else winograd_weights
        bias = np.zeros(n_o, dtype=x.dtype) if b is None else b
        return winograd.forward(x, u, bias)  # the bias is added as y is written
    if chosen == "pointwise":
        y = pointwise.forward(x, w)  # (B, O, H*W)
    else:
        y = im2col.forward(x, w, stride, padding, h_out, w_out)  # (B, O, Ho*Wo)
    if b is not None:
        y += np.ascontiguousarray(b)[None, :, None]
    return y.reshape(n_b, n_o, h_out, w_out)


def conv2d_backward_input(dy, w, input_hw, stride, padding, winograd_weights=None):
    """Fast gradient of conv2d w.r.t. its input, dx (B, C, H, W) from dy (B, O, Ho, Wo) and
    w (O, C, kH, kW); the arguments and result of reference.conv2d_backward_input_ref.
    winograd_weights: as for conv2d_forward (a frozen layer's backward passes its forward's)."""
    dy, w = np.ascontiguousarray(dy), np.ascontiguousarray(w)
    chosen = algorithm(w.shape[2:], stride, padding, w.shape[1], w.shape[0])
    if chosen == "winograd":
        return winograd.backward_input(dy, winograd.filter_transform(w) if winograd_weights is None
                                       else winograd_weights)
    if chosen == "pointwise":
        return pointwise.backward_input(dy, w)
    return im2col.backward_input(dy, w, input_hw, stride, padding)


def conv2d_backward_weight(dy, x, kernel_hw, stride, padding):
    """Fast gradient of conv2d w.r.t. weight and bias, (dw (O, C, kH, kW), db (O,)) from
    dy (B, O, Ho, Wo) and x (B, C, H, W); the arguments and result of
    reference.conv2d_backward_weight_ref."""
    dy, x = np.ascontiguousarray(dy), np.ascontiguousarray(x)
    chosen = algorithm(kernel_hw, stride, padding, x.shape[1], dy.shape[1])
    if chosen == "winograd":
        return winograd.backward_weight(dy, x)  # db from the same pass over dy
    db = dy.sum(axis=(0, 2, 3))
    if chosen == "pointwise":
        return pointwise.backward_weight(dy, x), db
    return im2col.backward_weight(dy, x, kernel_hw, stride, padding), db


def conv2d_backward(dy, x, w, stride, padding, winograd_weights=None):
    """Both gradients of conv2d in one call: (dx, dw, db), equal to conv2d_backward_input's and
    conv2d_backward_weight's. Layers call this: on the Winograd path each chunk's transformed
    output gradient dM then serves both products (one transform fewer per convolution).

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    x : ndarray, shape (B, C, H, W)
    w : ndarray, shape (O, C, kH, kW)
    stride, padding : int
    winograd_weights : ndarray of shape (16, O, C), optional
        As for conv2d_forward.
    """
    if algorithm(w.shape[2:], stride, padding, x.shape[1], w.shape[0]) != "winograd":
        dx = conv2d_backward_input(dy, w, x.shape[2:], stride, padding)
        return (dx,) + conv2d_backward_weight(dy, x, w.shape[2:], stride, padding)
    u = winograd.filter_transform(w) if winograd_weights is None else winograd_weights
    return winograd.backward(np.ascontiguousarray(dy), np.ascontiguousarray(x), u)
