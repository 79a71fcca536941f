"""conv2d forward and backward: Numba im2col/col2im around BLAS matrix products.

How it works. A convolution is a matrix product once every input window is laid out as a
column (im2col): with cols[b] of shape (C*kH*kW, Ho*Wo),

    forward          y[b]  = W2 @ cols[b]              W2 = w.reshape(O, C*kH*kW)
    backward input   dcols[b] = W2^T @ dy[b],  then col2im scatters dcols back onto dx
    backward weight  dW2   = dY2 @ COLS^T              one product over all B*Ho*Wo columns

im2col and col2im are parallel Numba loops over (image, channel) planes: each plane is written by
exactly one thread, so col2im's scatter-add needs no atomics. The products run in NumPy's BLAS
(np.matmul) outside Numba, which is already multi-threaded; calling BLAS from inside a prange
loop would put BLAS threads on top of Numba threads on the same cores. A 1x1, stride-1,
unpadded convolution needs no im2col at all: the input already is the column matrix.

What bounds it. The products are ~97% of the FLOPs and run at BLAS sgemm speed; im2col/col2im
move C*kH*kW*B*Ho*Wo elements (75 MB for 32 channels at 32x32, B=64, float32) and are bound by
memory bandwidth. Thin products (few channels: O or C*kH*kW below ~64) run well below peak
because each column is reused only O times.
"""

import numba
import numpy as np
from numba import prange


def _output_hw(input_hw, kernel_hw, stride, padding):
    (h, w), (k_h, k_w) = input_hw, kernel_hw
    return (h + 2 * padding - k_h) // stride + 1, (w + 2 * padding - k_w) // stride + 1


def _is_pointwise(kernel_hw, stride, padding):
    return tuple(kernel_hw) == (1, 1) and stride == 1 and padding == 0


@numba.njit(cache=True)
def _valid_range(q, stride, padding, size, n_out):
    """Output indices j in [lo, hi) whose input index j*stride + q - padding lies in [0, size)."""
    lo = max(0, -((q - padding) // stride))  # ceil((padding - q) / stride)
    hi = min(n_out, (size - 1 + padding - q) // stride + 1)
    return lo, max(lo, hi)


@numba.njit(parallel=True, cache=True)
def _im2col(x, k_h, k_w, stride, padding, h_out, w_out, cols):
    """Fill cols[b, (c*kH + p)*kW + q, i*Wo + j] = xpad[b, c, i*stride + p, j*stride + q].

    x: (B, C, H, W); cols: (B, C*kH*kW, Ho*Wo), any strides (a transposed view is fine).
    """
    n_b, n_c, h_in, w_in = x.shape
    for bc in prange(n_b * n_c):
        b = bc // n_c
        c = bc % n_c
        for p in range(k_h):
            i_lo, i_hi = _valid_range(p, stride, padding, h_in, h_out)
            for q in range(k_w):
                row = (c * k_h + p) * k_w + q
                j_lo, j_hi = _valid_range(q, stride, padding, w_in, w_out)
                for i in range(h_out):
                    base = i * w_out
                    if i < i_lo or i >= i_hi:
                        for j in range(w_out):
                            cols[b, row, base + j] = 0
                        continue
                    h_src = i * stride + p - padding
                    for j in range(j_lo):
                        cols[b, row, base + j] = 0
                    for j in range(j_lo, j_hi):
                        cols[b, row, base + j] = x[b, c, h_src, j * stride + q - padding]
                    for j in range(j_hi, w_out):
                        cols[b, row, base + j] = 0


@numba.njit(parallel=True, cache=True)
def _col2im(dcols, k_h, k_w, stride, padding, h_out, w_out, dx):
    """Adjoint of _im2col: dx[b, c, h, w] += every dcols entry that im2col copied from it.

    dcols: (B, C*kH*kW, Ho*Wo); dx: (B, C, H, W), zero on entry.
    """
    n_b, n_c, h_in, w_in = dx.shape
    for bc in prange(n_b * n_c):
        b = bc // n_c
        c = bc % n_c
        for p in range(k_h):
            i_lo, i_hi = _valid_range(p, stride, padding, h_in, h_out)
            for q in range(k_w):
                row = (c * k_h + p) * k_w + q
                j_lo, j_hi = _valid_range(q, stride, padding, w_in, w_out)
                for i in range(i_lo, i_hi):
                    h_dst = i * stride + p - padding
                    base = i * w_out
                    for j in range(j_lo, j_hi):
                        dx[b, c, h_dst, j * stride + q - padding] += dcols[b, row, base + j]


def _columns(x, kernel_hw, stride, padding, out_hw, batch_major=True):
    """im2col of x: (B, C*kH*kW, Ho*Wo) if batch_major, else laid out as (C*kH*kW, B, Ho*Wo)."""
    n_b, n_c = x.shape[:2]
    k_h, k_w = kernel_hw
    rows, cols_per_image = n_c * k_h * k_w, out_hw[0] * out_hw[1]
    if batch_major:
        cols = np.empty((n_b, rows, cols_per_image), dtype=x.dtype)
        _im2col(x, k_h, k_w, stride, padding, out_hw[0], out_hw[1], cols)
        return cols
    cols = np.empty((rows, n_b, cols_per_image), dtype=x.dtype)
    _im2col(x, k_h, k_w, stride, padding, out_hw[0], out_hw[1], cols.transpose(1, 0, 2))
    return cols


def conv2d_forward(x, w, b, stride, padding):
    """Fast conv2d forward; same contract as reference.conv2d_forward_ref.

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
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    n_b = x.shape[0]
    n_o = w.shape[0]
    h_out, w_out = _output_hw(x.shape[2:], w.shape[2:], stride, padding)
    if _is_pointwise(w.shape[2:], stride, padding):
        cols = x.reshape(n_b, x.shape[1], -1)  # (B, C, H, W) -> (B, C, H*W)
    else:
        cols = _columns(x, w.shape[2:], stride, padding, (h_out, w_out))
    y = np.matmul(w.reshape(n_o, -1), cols)  # (O, C*kH*kW) @ (B, C*kH*kW, Ho*Wo) -> (B, O, Ho*Wo)
    if b is not None:
        y += np.ascontiguousarray(b)[None, :, None]
    return y.reshape(n_b, n_o, h_out, w_out)


def conv2d_backward_input(dy, w, input_hw, stride, padding):
    """Fast gradient of conv2d w.r.t. its input; same contract as the reference.

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
    dy = np.ascontiguousarray(dy)
    w = np.ascontiguousarray(w)
    n_b, n_o, h_out, w_out = dy.shape
    n_c, k_h, k_w = w.shape[1:]
    h_in, w_in = input_hw
    dy3 = dy.reshape(n_b, n_o, h_out * w_out)  # (B, O, Ho, Wo) -> (B, O, Ho*Wo)
    dcols = np.matmul(w.reshape(n_o, -1).T, dy3)  # (C*kH*kW, O) @ (B, O, Ho*Wo) -> (B, C*kH*kW, Ho*Wo)
    if _is_pointwise((k_h, k_w), stride, padding):
        return dcols.reshape(n_b, n_c, h_in, w_in)
    dx = np.zeros((n_b, n_c, h_in, w_in), dtype=dy.dtype)
    _col2im(dcols, k_h, k_w, stride, padding, h_out, w_out, dx)
    return dx


def conv2d_backward_weight(dy, x, kernel_hw, stride, padding):
    """Fast gradient of conv2d w.r.t. weight and bias; same contract as the reference.

    Parameters
    ----------
    dy : ndarray, shape (B, O, Ho, Wo)
    x : ndarray, shape (B, C, H, W)
    kernel_hw : tuple (kH, kW)
    stride, padding : int

    Returns
    -------
    dw : ndarray, shape (O, C, kH, kW)
    db : ndarray, shape (O,)
    """
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    n_b, n_o, h_out, w_out = dy.shape
    n_c = x.shape[1]
    k_h, k_w = kernel_hw
    # one product over all B*Ho*Wo columns: the batch becomes part of the reduction
    dy2 = dy.reshape(n_b, n_o, -1).transpose(1, 0, 2).reshape(n_o, -1)  # (B, O, Ho, Wo) -> (O, B*Ho*Wo)
    if _is_pointwise(kernel_hw, stride, padding):
        cols2 = x.reshape(n_b, n_c, -1).transpose(1, 0, 2).reshape(n_c, -1)  # -> (C, B*H*W)
    else:
        cols2 = _columns(x, kernel_hw, stride, padding, (h_out, w_out), batch_major=False)
        cols2 = cols2.reshape(n_c * k_h * k_w, -1)  # (C*kH*kW, B, Ho*Wo) -> (C*kH*kW, B*Ho*Wo)
    dw = (dy2 @ cols2.T).reshape(n_o, n_c, k_h, k_w)
    db = dy2.sum(axis=1)
    return dw, db
