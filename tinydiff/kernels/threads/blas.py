"""Set how many threads NumPy's BLAS uses, for the stretches where tinydiff runs its own.

Why. A convolution is im2col (a Numba loop) followed by a matrix product (BLAS). Left to
itself, the BLAS spreads every product over all cores while im2col runs on one, and products of
the thin shapes a small UNet has (32-128 rows) split poorly. conv.py therefore splits the batch
over its own threads instead, each running im2col and a single-threaded product for its images;
for that stretch the BLAS must use one thread per call, or the calls would share its pool.

How. threadpoolctl finds the BLAS libraries loaded in the process (NumPy's bundled OpenBLAS,
a system OpenBLAS, MKL, BLIS, FlexiBLAS) and sets their thread counts. Its controller is built
once, when this module is imported (it scans the loaded libraries: milliseconds), and reused;
it steers NumPy's BLAS, which the kernels call, and any other loaded by then (SciPy's own
OpenBLAS, when SciPy came first). The count is global to the process for these libraries, so
single_threaded() must be entered from one thread at a time. An OpenBLAS built on OpenMP sets
the count per thread, so tinydiff's helper threads would not see it: there, and where no BLAS
is found (macOS's Accelerate), available() is False and conv.py keeps its serial-im2col path
with the BLAS's own threads.

Cost. One block (read the count, set 1, set it back) takes 10-34 microseconds through
threadpoolctl, against 1-3 through OpenBLAS's functions called by hand with ctypes, which is
how tinydiff did it before; a 3x3 convolution at batch 64, 32 channels, 16x16 takes 5-12 ms, so
the block is 0.2-0.4% of it (benchmarks/bench_blas_threads.py, 2 cores, quiet to busy). A block
entered inside another changes nothing and skips threadpoolctl (1-6 microseconds): a DataParallel
process runs its whole forward and backward inside one, and every convolution in it enters its
own.
"""

import threading
from contextlib import contextmanager

import numpy as np  # noqa: F401 -- loads NumPy's BLAS, so that the controller below finds it
from threadpoolctl import ThreadpoolController

_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS"}

_BLAS = ThreadpoolController().select(user_api="blas")
# per-thread counts (see above) would leave tinydiff's helper threads on all cores
_PER_THREAD = any(lib["internal_api"] == "openblas" and lib.get("threading_layer") == "openmp"
                  for lib in _BLAS.info())
_inside = threading.local()  # .depth: the single_threaded() blocks this thread is in


def available():
    """True when NumPy's BLAS is one whose thread count tinydiff can set for the process."""
    return bool(_BLAS.lib_controllers) and not _PER_THREAD


def num_threads():
    """The BLAS's current thread count, or None when it cannot be set (available() is False)."""
    return _BLAS.info()[0]["num_threads"] if available() else None


@contextmanager
def single_threaded():
    """Within the block, each BLAS call runs on the thread that makes it; the previous count
    is restored on the way out, also after an exception."""
    depth = getattr(_inside, "depth", 0)
    _inside.depth = depth + 1
    try:
        if depth == 0 and available():
            with _BLAS.limit(limits=1):
                yield
        else:
            yield
    finally:
        _inside.depth = depth


def describe():
    """One line for `tinydiff info` and the benchmarks."""
    if not available():
        return "not controllable (threadpoolctl found no BLAS whose process-wide thread count it can set)"
    names = ", ".join(f"{_NAMES.get(lib['internal_api'], lib['internal_api'])} {lib['version'] or ''}".strip()
                      for lib in _BLAS.info())
    return f"{names}: {num_threads()} threads (1 inside tinydiff's batch-split convolutions)"
