"""Set how many threads NumPy's OpenBLAS uses, for the stretches where tinydiff runs its own.

Why. A convolution is im2col (a Numba loop) followed by a matrix product (BLAS). Left to
itself, OpenBLAS spreads every product over all cores while im2col runs on one, and products of
the thin shapes a small UNet has (32-128 rows) split poorly. conv.py therefore splits the batch
over its own threads instead, each running im2col and a single-threaded product for its images;
for that stretch OpenBLAS must use one thread per call, or the calls would share its pool.

How. NumPy's wheels bundle OpenBLAS as a shared library ("scipy-openblas", symbols with a
scipy_ prefix and a 64_ suffix); other builds link a system OpenBLAS with the plain names. The
library is found among NumPy's bundled libraries and, on Linux, among the libraries the process
has loaded, and its set/get functions are called through ctypes. The setting is global to the
process (openblas_set_num_threads_local, despite its name, also sets the global count in
OpenBLAS's pthreads builds), so single_threaded() must be entered from one thread at a time.
Where no OpenBLAS is found (NumPy on Accelerate or MKL), available() is False and conv.py keeps
its serial-im2col path with the BLAS's own threads.
"""

import ctypes
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# (setter, getter) name pairs, NumPy's bundled build first
_SYMBOLS = [
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
]


def _candidate_paths():
    """Shared libraries that may be NumPy's OpenBLAS: bundled ones first, then loaded ones."""
    here = Path(np.__file__).resolve().parent
    for folder in (here.parent / "numpy.libs", here / ".dylibs"):  # Linux/Windows wheels, macOS wheels
        if folder.is_dir():
            yield from sorted(p for p in folder.iterdir() if "openblas" in p.name.lower())
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/maps") as maps:
                loaded = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        except OSError:
            loaded = set()
        yield from (Path(p) for p in sorted(loaded))


def _find():
    """(set, get) ctypes functions of NumPy's OpenBLAS, or None."""
    for path in _candidate_paths():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


_CONTROL = _find()


def available():
    """True when NumPy's BLAS is an OpenBLAS whose thread count tinydiff can set."""
    return _CONTROL is not None


def num_threads():
    """OpenBLAS's current thread count, or None when it cannot be read."""
    return None if _CONTROL is None else int(_CONTROL[1]())


@contextmanager
def single_threaded():
    """Within the block, each BLAS call runs on the thread that makes it; the previous count
    is restored on the way out, also after an exception."""
    if _CONTROL is None:
        yield
        return
    setter, getter = _CONTROL
    previous = getter()
    setter(1)
    try:
        yield
    finally:
        setter(previous)


def describe():
    """One line for `tinydiff info` and the benchmarks."""
    if _CONTROL is None:
        return "not controllable (NumPy's BLAS is not an OpenBLAS found by tinydiff)"
    return f"OpenBLAS, {num_threads()} threads (1 inside tinydiff's batch-split convolutions)"
