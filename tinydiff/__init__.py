"""tinydiff: diffusion models from scratch in NumPy and Numba, made to teach.

Layers carry hand-written backward passes (tinydiff.nn), hot loops are Numba kernels held
to plain NumPy references (tinydiff.kernels), and the diffusion math mirrors diffusers'
schedulers (tinydiff.diffusion).
"""

import os
import sys

__version__ = "0.1.0"

# NumPy's OpenBLAS keeps each worker thread spinning for 2^28 CPU cycles (about 0.1 s) after a
# matrix product before it sleeps (OPENBLAS_THREAD_TIMEOUT, a power of two between 4 and 30,
# read once when the library loads). tinydiff alternates BLAS products (the convolutions) with
# its own Numba kernels thousands of times a second, and on a laptop's few cores the spinning
# workers hold the cores those kernels' threads need. Measured on 2 cores, a glyph UNet training
# step at batch 64 (medians of 10 steps in each of 3-7 fresh processes per setting): 0.92-0.95 s
# with 28, 0.80 s with 4 (every product then pays to wake its workers), 0.71 with 12, 0.64-0.71
# with 16, 0.70 with 20. 2^16 cycles (tens of microseconds) still covers back-to-back products.
# Only effective when tinydiff is imported before NumPy (the `tinydiff` command, the lessons
# and the benchmarks do); an OPENBLAS_THREAD_TIMEOUT already in the environment wins.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")


def blas_thread_timeout():
    """OPENBLAS_THREAD_TIMEOUT as this process's OpenBLAS read it, in words (`tinydiff info` and
    the benchmarks print it)."""
    value = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    if value is None:
        return "28, OpenBLAS's default (NumPy was imported before tinydiff)"
    return value
