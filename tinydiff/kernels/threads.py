"""Run a nogil Numba loop on numba.get_num_threads() plain threads.

Why not prange: with Numba's OpenMP threading layer, worker threads keep spinning for
milliseconds after each parallel region. In a network, NumPy's multi-threaded BLAS (the
convolutions) runs right after Numba kernels (norms, attention), and the spinning workers then
compete with the BLAS threads for the same cores; on 2 cores a convolution whose im2col ran in
a prange loop was about three times slower than with a serial im2col. Plain threads started per
call (tens of microseconds) sleep as soon as their part is done.
"""

import threading

import numba

# LLVM fast-math flags for the kernels' loops: reassociation (so sums vectorise), contraction
# into fused multiply-adds, reciprocal approximations and signed-zero freedom -- but not
# "no NaNs / no infs": a NaN in the input must come out as NaN (and a loss check then names it),
# not be assumed away into undefined results. With error_model="numpy", x / 0 gives inf/NaN as
# in NumPy instead of raising ZeroDivisionError from inside a kernel.
FAST_MATH = {"reassoc", "contract", "arcp", "nsz"}


def split_run(n_items, run_part):
    """Call run_part(start, stop) for contiguous parts of range(n_items), one per thread.

    Uses numba.get_num_threads() threads (so NUMBA_NUM_THREADS is respected), the calling
    thread taking the first part; run_part must release the GIL (a nogil Numba function) for the
    parts to run at once. An exception raised in any part is re-raised here.
    """
    n_parts = max(1, min(numba.get_num_threads(), n_items))
    bounds = [n_items * i // n_parts for i in range(n_parts + 1)]
    errors = []

    def guarded(start, stop):
        try:
            run_part(start, stop)
        except BaseException as error:  # handed to the caller below
            errors.append(error)

    helpers = [threading.Thread(target=guarded, args=(bounds[i], bounds[i + 1]))
               for i in range(1, n_parts)]
    for helper in helpers:
        helper.start()
    guarded(bounds[0], bounds[1])
    for helper in helpers:
        helper.join()
    if errors:
        raise errors[0]
