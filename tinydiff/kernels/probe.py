"""A trivial parallel kernel, run once so Numba picks (and can report) its threading layer."""

import numba


@numba.njit(parallel=True, cache=True)
def start_threading_layer(x):
    """Sum x in a prange loop: the first parallel kernel run makes Numba choose its threading layer."""
    total = 0.0
    for i in numba.prange(x.shape[0]):
        total += x[i]
    return total
