"""Input checks shared by the layers: every message names the argument, what was expected
and what came, so that a student sees at once which call is wrong."""

import numpy as np

from tinydiff.checks import check_int

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(x):
    """'array of shape (2, 3) and dtype float32' — how errors show a received value."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__}"


def check_float_array(x, name, ndim=None, min_ndim=None, dtype=None):
    """Check that `x` is a float32/float64 ndarray of the given rank (and dtype).

    Raises TypeError for a non-array, a non-float dtype, or a dtype other than `dtype`
    (a layer computes in its parameters' dtype, as in PyTorch); ValueError for a wrong rank.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {describe(x)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a float32 or float64 array, got dtype {x.dtype} "
            f"(convert with x.astype(np.float32))"
        )
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {np.dtype(dtype)} to match the layer's parameters, got "
            f"{x.dtype} (cast the input, or the module with .to({x.dtype}))"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got {describe(x)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got {describe(x)}")
    return x


def check_positive_int(value, name, minimum=1):
    """An integer (not a bool) >= minimum, returned as int: tinydiff.checks.check_int, from 1."""
    return check_int(value, name, minimum)


def check_pair(value, name, minimum=1):
    """An int or a pair of ints, each >= minimum, returned as a tuple of two ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
        return tuple(check_positive_int(v, name, minimum) for v in value)
    v = check_positive_int(value, name, minimum)
    return (v, v)
