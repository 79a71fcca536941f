"""SiLU forward and backward, fused in one pass each.

How it works: one Numba loop over the flattened array computes sigmoid, the product and (in
backward) the derivative per element, where NumPy would make four or five full-size
temporaries; the array is split over numba.get_num_threads() plain threads (threads.py says
why not prange). Backward recomputes sigmoid from x rather than storing it, so the layer
caches only its input. Bound by memory bandwidth (one read, one write per element forward;
two reads, one write backward).
"""

import numba
import numpy as np

from tinydiff.kernels.threads import split_run

_MIN_PER_THREAD = 1 << 15  # below this many elements, starting a thread costs more than it saves


@numba.njit(cache=True, nogil=True)
def _silu_forward(x, y):
    for i in range(x.size):
        v = x[i]
        y[i] = v / (1.0 + np.exp(-v))  # x * sigmoid(x); exp(-v) = inf gives -0, never NaN


@numba.njit(cache=True, nogil=True)
def _silu_backward(dy, x, dx):
    for i in range(x.size):
        v = x[i]
        s = 1.0 / (1.0 + np.exp(-v))
        dx[i] = dy[i] * (s + v * s * (1.0 - s))  # d/dx [x s(x)] = s + x s (1 - s)


def run_split(n, part):
    if n < 2 * _MIN_PER_THREAD:
        part(0, n)
    else:
        split_run(n, part)


def silu_forward(x):
    """x (any shape) -> x * sigmoid(x), same dtype."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(x)
    run_split(x.size, lambda i, j: _silu_forward(x[i:j], y[i:j]))
    return y.reshape(shape)


def silu_backward(dy, x):
    """dL/dx = dy * (s + x s (1 - s)), s = sigmoid(x)."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x).reshape(-1)
    dy = np.ascontiguousarray(dy, dtype=x.dtype).reshape(-1)
    dx = np.empty_like(x)
    run_split(x.size, lambda i, j: _silu_backward(dy[i:j], x[i:j], dx[i:j]))
    return dx.reshape(shape)
