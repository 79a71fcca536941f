"""Argument checks shared by the data sets: every message names the argument, what was
expected and what came."""

import numpy as np

from tinydiff.checks import check_int


def check_rng(rng, name="rng"):
    """Randomness only ever arrives as an explicit numpy Generator (no global state)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name}: expected a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def check_seed(seed):
    """A seed is a non-negative integer; it keys every image's own random stream."""
    return check_int(seed, "seed", minimum=0)


def check_indices(indices):
    """Image indices of an endless data set: non-negative integers, as a 1-D int64 array."""
    idx = np.asarray(indices)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TypeError(
            f"indices: expected a 1-D sequence of non-negative integers, got an array of "
            f"shape {idx.shape} and dtype {idx.dtype}"
        )
    idx = idx.astype(np.int64)
    if idx.size and idx.min() < 0:
        raise ValueError(f"indices: expected non-negative integers, got minimum {idx.min()}")
    return idx


def slice_to_indices(key, name):
    """`dataset[a:b]` on an endless data set: a slice needs an explicit stop."""
    if not isinstance(key, slice):
        raise TypeError(
            f"{name}[...]: expected a slice such as {name}[0:64]; use {name}.get(indices) "
            f"for a list of indices, got {type(key).__name__}"
        )
    if key.stop is None:
        raise ValueError(f"{name}[...]: the data set is endless, so a slice needs a stop")
    start = 0 if key.start is None else key.start
    step = 1 if key.step is None else key.step
    if start < 0 or key.stop < 0 or step <= 0:
        raise ValueError(
            f"{name}[...]: expected non-negative start/stop and a positive step, got {key}"
        )
    return np.arange(start, key.stop, step, dtype=np.int64)


def to_signed_unit(pixels):
    """uint8 pixels 0..255 -> float32 in [-1, 1] (the range diffusion models train in)."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
