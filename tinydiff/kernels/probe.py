"""A trivial parallel kernel, run once so Numba picks (and can report) its threading layer."""

import numba


@numba.njit(parallel=True, cache=True)
def parallel_sum(x):
    total = 0.0
    for i in numba.prange(x.shape[0]):
        total += x[i]
    return total
