"""The threads the kernels run on: tinydiff's own helper threads and the BLAS's.

pool.py   split_run / share_out: a nogil Numba loop split over numba.get_num_threads() plain
          helper threads that sleep between calls (why not prange: see there); serial() keeps
          a process to one core (a DataParallel worker)
blas.py   single_threaded(): NumPy's BLAS on one thread per call while tinydiff's threads each
          make their own products (the batch-split convolutions), through threadpoolctl

Performance machinery, not diffusion: a student reading a kernel needs only to know that
split_run(n, part) calls part(start, stop) on contiguous pieces of range(n), at once.
"""

from tinydiff.kernels.threads import blas
from tinydiff.kernels.threads.pool import serial, share_out, split_run

__all__ = ["blas", "serial", "share_out", "split_run"]
