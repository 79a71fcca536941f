"""What importing tinydiff does to the process, before NumPy loads: the one place that says it.

`import tinydiff` calls apply() once. It changes two things, both for speed only (no result
depends on them), and both are left alone when the user set them already:

1. OpenBLAS's idle threads sleep sooner (OPENBLAS_THREAD_TIMEOUT=16, when not set). NumPy's
   OpenBLAS keeps each worker thread spinning for 2^28 CPU cycles (about 0.1 s) after a matrix
   product before it sleeps (a power of two between 4 and 30, read once when the library loads).
   tinydiff alternates BLAS products (the convolutions) with its own Numba kernels thousands of
   times a second, and on a laptop's few cores the spinning workers hold the cores those
   kernels' threads need. Measured on 2 cores, a glyph UNet training step at batch 64 (medians
   of 10 steps in each of 3-7 fresh processes per setting): 0.92-0.95 s with 28, 0.80 s with 4
   (every product then pays to wake its workers), 0.71 with 12, 0.64-0.71 with 16, 0.70 with 20.
   2^16 cycles (tens of microseconds) still covers back-to-back products. Only effective when
   tinydiff is imported before NumPy (the `tinydiff` command, the lessons and the benchmarks
   do); an OPENBLAS_THREAD_TIMEOUT already in the environment wins.

2. Freed array memory stays with the process (Linux with glibc). glibc's malloc hands arrays
   above its mmap threshold (128 KiB, rising to the size of the largest freed one) fresh pages
   from the kernel, and gives freed memory beyond 2x that threshold back (trimming). A training
   step allocates and frees its activations, gradients and scratch arrays, 0.1-6 MB each at
   batch 64, hundreds of times a step, so every step the kernel maps and zero-fills the same
   memory again: about 10,000 page faults per glyph UNet step, 35-45 ms of system time on 2
   cores. Arrays up to 32 MiB (the most glibc allows) therefore come from malloc's own heap, and
   up to 1 GiB of freed memory stays with the process for the next step (mallopt
   M_MMAP_THRESHOLD and M_TRIM_THRESHOLD). Measured on 2 cores, glyph step at batch 64, 5 fresh
   processes each: no page faults at all during steps, median step 295 ms against 323 ms. The
   cost: memory freed after a peak is kept (up to 1 GiB) until the process ends. Left alone when
   TINYDIFF_MALLOC=default or any MALLOC_*_ variable or a GLIBC_TUNABLES setting of malloc is in
   the environment.

blas_thread_timeout() and malloc_setting() say, in words, what happened (`tinydiff info` and the
benchmarks print them). This module imports nothing but the standard library, so that it runs
before NumPy.
"""

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 2**30

_malloc_setting = None


def apply():
    """Apply both settings (see above). Called by `import tinydiff`; a second call does nothing."""
    global _malloc_setting
    if _malloc_setting is not None:
        return
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
    _malloc_setting = _tune_malloc()


def blas_thread_timeout():
    """OPENBLAS_THREAD_TIMEOUT as this process's OpenBLAS read it, in words."""
    value = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    if value is None:
        return "28, OpenBLAS's default (NumPy was imported before tinydiff)"
    return value


def malloc_setting():
    """How tinydiff set the C library's malloc, in words."""
    return _malloc_setting


def _tune_malloc():
    """Set glibc's mmap and trim thresholds (see above); the reason in words when they are not."""
    if os.environ.get("TINYDIFF_MALLOC") == "default":
        return "left at glibc's defaults (TINYDIFF_MALLOC=default)"
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ) or \
            "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "left as the environment sets it (MALLOC_*_ or GLIBC_TUNABLES)"
    if not sys.platform.startswith("linux"):
        return "the platform's default (not Linux)"
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # present in glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "the C library's default (not glibc)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        return "glibc's defaults (mallopt refused the thresholds)"
    return (f"arrays up to {MMAP_THRESHOLD_BYTES >> 20} MiB from the heap, up to "
            f"{TRIM_THRESHOLD_BYTES >> 30} GiB of freed memory kept for reuse (glibc mallopt)")
