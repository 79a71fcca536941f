"""Nearest-neighbour 2x upsampling (diffusers' Upsample2D before its convolution) and its gradient.

Forward every pixel is copied into a 2x2 block; backward each input pixel gets the sum of its
block's gradient. NumPy can do both in one line (reference/resample.py), but through strided views with
an innermost axis of length 2, which it walks element by element: at batch 64, for 64 channels
at 8x8 -> 16x16 on 2 cores, 3.4 ms forward and 0.7 ms backward, against 0.3 ms each for the loops
here, which LLVM vectorises (a pair of equal values is one interleaved store) and which split
the batch over the threads.
"""

import numba
import numpy as np

from tinydiff.kernels.threads import split_run


@numba.njit(cache=True, nogil=True)
def _upsample(x, y):
    """y[b, c, 2i + r, 2j + s] = x[b, c, i, j] for r, s in {0, 1}; x (n, C, H, W)."""
    n_b, n_c, h, w = x.shape
    for b in range(n_b):
        for c in range(n_c):
            for i in range(h):
                src, top, bottom = x[b, c, i], y[b, c, 2 * i], y[b, c, 2 * i + 1]
                for j in range(w):
                    top[2 * j] = src[j]
                    top[2 * j + 1] = src[j]
                for j in range(2 * w):
                    bottom[j] = top[j]


@numba.njit(cache=True, nogil=True)
def _upsample_backward(dy, dx):
    """dx[b, c, i, j] = (dy[2i, 2j] + dy[2i+1, 2j]) + (dy[2i, 2j+1] + dy[2i+1, 2j+1]): rows in
    pairs first, then columns, the order of reference.upsample_nearest2x_backward_ref (so the
    sums equal its to the bit)."""
    n_b, n_c, h, w = dx.shape
    for b in range(n_b):
        for c in range(n_c):
            for i in range(h):
                top, bottom, dst = dy[b, c, 2 * i], dy[b, c, 2 * i + 1], dx[b, c, i]
                for j in range(w):
                    dst[j] = (top[2 * j] + bottom[2 * j]) + (top[2 * j + 1] + bottom[2 * j + 1])


def upsample_nearest2x(x):
    """(B, C, H, W) -> (B, C, 2H, 2W), every pixel copied into a 2x2 block."""
    x = np.ascontiguousarray(x)
    n_b, n_c, h, w = x.shape
    y = np.empty((n_b, n_c, 2 * h, 2 * w), dtype=x.dtype)
    split_run(n_b, lambda i, j: _upsample(x[i:j], y[i:j]))
    return y


def upsample_nearest2x_backward(dy):
    """(B, C, 2H, 2W) -> (B, C, H, W): each input pixel gets the sum of its 2x2 block."""
    dy = np.ascontiguousarray(dy)
    n_b, n_c, h2, w2 = dy.shape
    if h2 % 2 or w2 % 2:
        raise ValueError(f"upsample_nearest2x_backward: dy must have even height and width, got shape {dy.shape}")
    dx = np.empty((n_b, n_c, h2 // 2, w2 // 2), dtype=dy.dtype)
    split_run(n_b, lambda i, j: _upsample_backward(dy[i:j], dx[i:j]))
    return dx
