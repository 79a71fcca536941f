"""Argument checks shared by the schedules and schedulers.

Every public entry point of tinydiff.diffusion validates what it is given and raises a
ValueError/TypeError naming the argument, what was allowed and what came.
"""

import numbers

import numpy as np


def check_choice(name, value, allowed):
    """Raise ValueError unless `value` is one of the strings in `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_int(name, value, low, high=None):
    """Return `value` as int; raise unless it is an integer in [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, np.ndarray) and value.ndim == 0 and np.issubdtype(value.dtype, np.integer):
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f", {high}"
        bracket = "]" if high is not None else ", inf)"
        raise ValueError(f"{name} must be in [{low}{upper}{bracket}, got {value}")
    return value


def check_float(name, value, low=None, high=None, low_open=False, high_open=False):
    """Return `value` as float; raise unless it is a finite real number in the given range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or (value >= high if high_open else value > high)
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value}")
    return value


def as_float_array(name, value):
    """Return `value` as a floating NumPy array (float32 stays float32, ints become float64)."""
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def check_same_shape(name_a, a, name_b, b):
    """Raise ValueError unless the two arrays have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {a.shape}, got {b.shape}")


def check_timesteps_array(name, timesteps, num_train_timesteps, batch):
    """Return per-sample integer timesteps of shape (B,), each in [0, T-1].

    A scalar is broadcast to every sample of the batch.
    """
    t = np.asarray(timesteps)
    if not (np.issubdtype(t.dtype, np.integer) or (np.issubdtype(t.dtype, np.floating) and np.all(t == np.round(t)))):
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    t = t.astype(np.int64).reshape(-1)
    if t.size == 1:
        t = np.full(batch, t[0], dtype=np.int64)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},) (one per sample), got {np.shape(timesteps)}")
    if t.size and (t.min() < 0 or t.max() > num_train_timesteps - 1):
        raise ValueError(
            f"{name} must be in [0, {num_train_timesteps - 1}], got values in [{t.min()}, {t.max()}]"
        )
    return t


def check_generator(name, generator):
    """Raise TypeError unless `generator` is None or a numpy.random.Generator."""
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator or None, got {type(generator).__name__}")
    return generator
