"""conv2d with a 1x1 kernel, stride 1 and no padding: a matrix product per image, no im2col.

How it works. The input already is the column matrix: with x[b] viewed as (C, H*W) and w as
(O, C), y[b] = w @ x[b], dx[b] = w^T @ dy[b] and dw = sum over images of dy[b] @ x[b]^T. The
UNet's skip-connection shortcuts take this path. Split over threads (batch.py) where it can:
2-3x faster than the products in OpenBLAS's own threads, measured for those shortcuts on 2 cores.

What bounds it: the products alone, at what OpenBLAS reaches for these thin shapes.

Reference: tinydiff.kernels.reference.conv2d_forward_ref and its backward twins.
"""

import numpy as np

from tinydiff.kernels.conv import batch


def forward(x, w):
    """y (B, O, H*W) = w * x, without bias; x (B, C, H, W) and w (O, C, 1, 1) contiguous."""
    n_b, n_c = x.shape[:2]
    n_o = w.shape[0]
    w2 = w.reshape(n_o, n_c)  # (O, C, 1, 1) -> (O, C)
    x3 = x.reshape(n_b, n_c, -1)  # (B, C, H, W) -> (B, C, H*W)
    y = np.empty((n_b, n_o, x3.shape[2]), dtype=x.dtype)

    def run_images(first, stop, chunk_bytes):
        np.matmul(w2, x3[first:stop], out=y[first:stop])  # (O, C) @ (n, C, H*W) -> (n, O, H*W)
    batch.over_images(n_b, run_images)
    return y


def backward_input(dy, w):
    """dx (B, C, H, W) from dy (B, O, H, W) and w (O, C, 1, 1), both contiguous."""
    n_b, n_o, h, w_in = dy.shape
    n_c = w.shape[1]
    w2_t = w.reshape(n_o, n_c).T  # (O, C) -> (C, O), a view BLAS reads transposed
    dy3 = dy.reshape(n_b, n_o, h * w_in)  # (B, O, H, W) -> (B, O, H*W)
    dx = np.empty((n_b, n_c, h, w_in), dtype=dy.dtype)
    dx3 = dx.reshape(n_b, n_c, h * w_in)

    def run_images(first, stop, chunk_bytes):
        np.matmul(w2_t, dy3[first:stop], out=dx3[first:stop])  # (C, O) @ (n, O, H*W) -> (n, C, H*W)
    batch.over_images(n_b, run_images)
    return dx


def backward_weight(dy, x):
    """dw (O, C, 1, 1) from dy (B, O, H, W) and x (B, C, H, W), both contiguous."""
    n_b, n_o = dy.shape[:2]
    n_c = x.shape[1]
    dy3 = dy.reshape(n_b, n_o, -1)  # (B, O, H, W) -> (B, O, H*W)
    x3 = x.reshape(n_b, n_c, -1)  # (B, C, H, W) -> (B, C, H*W)
    if batch.takes_split(n_b):
        # per thread, the sum over its images of dy[b] @ x[b]^T
        dw = batch.summed_over_images(n_b, lambda first, stop, chunk_bytes: np.matmul(
            dy3[first:stop], x3[first:stop].transpose(0, 2, 1)).sum(axis=0))
    else:
        # the sum over images of dy[b] @ x[b]^T as one product: the batch joins the reduction
        dy2 = dy3.transpose(1, 0, 2).reshape(n_o, -1)  # (B, O, HW) -> (O, B*HW)
        x2 = x3.transpose(1, 0, 2).reshape(n_c, -1)  # (B, C, HW) -> (C, B*HW)
        dw = dy2 @ x2.T
    return dw.reshape(n_o, n_c, 1, 1)
