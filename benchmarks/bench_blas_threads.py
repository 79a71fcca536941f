"""What it costs to set the BLAS's thread count around a batch-split convolution.

tinydiff's convolutions set NumPy's BLAS to one thread while their own threads each make a
product, and restore the count after (tinydiff/kernels/threads/blas.py); a UNet forward pass in
one process does that about 30 times. This script times one such block (read the count, set 1,
set it back) four ways, in microseconds per block, best of 5 rounds:

- ctypes: OpenBLAS's own get/set functions, found in NumPy's bundled libraries and called
  through ctypes by hand (how tinydiff did it before threadpoolctl; kept here as the baseline)
- limit(): threadpoolctl's `with controller.limit(limits=1)` on a controller built once (what
  tinydiff's blas.single_threaded() does)
- lib controllers: threadpoolctl's per-library get_num_threads / set_num_threads, which skip
  limit()'s reading of every library's info
- single_threaded(): tinydiff's block as the kernels enter it, and a block inside another
  (a DataParallel process runs its whole step inside one)

and, for scale, one batch-split 3x3 convolution forward at batch 64, 32 channels, 16x16.

    python benchmarks/bench_blas_threads.py
"""

import ctypes
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- the process settings first (tinydiff/runtime/process_settings.py)
import numpy as np
from threadpoolctl import ThreadpoolController

from tinydiff.kernels import conv2d_forward
from tinydiff.kernels.threads import blas

# (setter, getter) names: NumPy's bundled scipy-openblas first, then a plain OpenBLAS
_SYMBOLS = [("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("openblas_set_num_threads", "openblas_get_num_threads")]


def ctypes_openblas():
    """(set, get) of NumPy's bundled OpenBLAS through ctypes, or None (the old way)."""
    here = Path(np.__file__).resolve().parent
    for folder in (here.parent / "numpy.libs", here / ".dylibs"):
        for path in sorted(folder.glob("*openblas*")) if folder.is_dir() else []:
            lib = ctypes.CDLL(str(path))
            for set_name, get_name in _SYMBOLS:
                setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


def per_call_us(block, calls=20000, rounds=5):
    """Best of `rounds` of the mean time of one block() over `calls` calls, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            block()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def main():
    controller = ThreadpoolController().select(user_api="blas")
    libs = controller.lib_controllers
    print(f"BLAS: {blas.describe()}")
    ways = {}
    found = ctypes_openblas()
    if found is not None:
        setter, getter = found

        def by_ctypes():
            previous = getter()
            setter(1)
            setter(previous)
        ways["ctypes (before threadpoolctl)"] = by_ctypes

    def by_limit():
        with controller.limit(limits=1):
            pass
    ways["threadpoolctl limit()"] = by_limit

    def by_lib_controllers():
        previous = [lib.get_num_threads() for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        for lib, count in zip(libs, previous):
            lib.set_num_threads(count)
    ways["threadpoolctl lib controllers"] = by_lib_controllers

    def by_tinydiff():
        with blas.single_threaded():
            pass
    ways["tinydiff single_threaded()"] = by_tinydiff

    def by_tinydiff_nested():
        with blas.single_threaded():
            pass
    ways["  the same, inside another"] = by_tinydiff_nested

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 16, 16)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    conv2d_forward(x, w, None, 1, 1)  # compiled and warm
    conv_us = per_call_us(lambda: conv2d_forward(x, w, None, 1, 1), calls=20, rounds=3)

    print(f"\n{'way':32s} {'us per block':>12s} {'% of one conv':>14s}")
    for name, block in ways.items():
        if block is by_tinydiff_nested:
            with blas.single_threaded():
                us = per_call_us(block)
        else:
            us = per_call_us(block)
        print(f"{name:32s} {us:12.2f} {100 * us / conv_us:13.2f}%")
    print(f"{'conv2d forward (64, 32, 16, 16)':32s} {conv_us:12.0f}")
    print(f"\nlibraries steered: {len(libs)} ({', '.join(lib.filepath.rsplit('/', 1)[-1] for lib in libs)})")


if __name__ == "__main__":
    main()
