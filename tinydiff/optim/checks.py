"""Checks shared by the optimisers: what a parameter list and a hyperparameter must be.

An optimiser needs nothing of a parameter but `.data` (the values, updated in place) and
`.grad` (an array of the same shape and dtype, filled by backward) — tinydiff.nn.Parameter.
"""

import math

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_params(params, owner, need_grad=True):
    """The trainable parameters as a list; each must have float `.data` and (if need_grad) a
    `.grad` of the same shape.

    Accepts any iterable of parameters (e.g. model.parameters()); rejects a Module itself,
    (name, parameter) pairs, duplicates and an empty list, naming what came instead. Frozen
    parameters (requires_grad=False, e.g. the base weights under LoRA adapters) are left out:
    optimisers, EMA and clipping keep no state for them. A list of only frozen ones is an error.
    """
    if hasattr(params, "parameters") and callable(params.parameters):
        raise TypeError(f"{owner}: expected an iterable of parameters, got a "
                        f"{type(params).__name__}; pass model.parameters()")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{owner}: expected an iterable of parameters, got "
                        f"{type(params).__name__}") from None
    if not params:
        raise ValueError(f"{owner}: expected at least one parameter, got an empty iterable")
    if not any(getattr(p, "requires_grad", True) for p in params):
        raise ValueError(f"{owner}: all {len(params)} parameters are frozen (requires_grad=False); "
                         f"pass the trainable ones, e.g. lora_parameters(model)")
    seen = set()
    for i, p in enumerate(params):
        if isinstance(p, tuple):
            raise TypeError(f"{owner}: parameter {i} is a tuple (a (name, parameter) pair?); "
                            f"pass model.parameters(), not named_parameters()")
        data = getattr(p, "data", None)
        if not isinstance(data, np.ndarray) or data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{owner}: parameter {i} needs .data as a float32/float64 array, "
                            f"got {type(p).__name__} with .data {_describe(data)}")
        if need_grad and getattr(p, "requires_grad", True):
            check_grad(p, i, owner)
        if id(p) in seen:
            raise ValueError(f"{owner}: parameter {i} appears twice in the list")
        seen.add(id(p))
    return [p for p in params if getattr(p, "requires_grad", True)]


def check_grad(p, i, owner):
    grad = getattr(p, "grad", None)
    if not isinstance(grad, np.ndarray) or grad.shape != p.data.shape:
        raise ValueError(f"{owner}: parameter {i} needs .grad of shape {p.data.shape} like its "
                         f".data, got {_describe(grad)}")
    return grad


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return type(x).__name__


def check_number(value, name, low=None, high=None, high_open=False):
    """A finite real number in [low, high] (or [low, high) with high_open); returns float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    below = low is not None and value < low
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bracket = ")" if high_open or high is None else "]"
        raise ValueError(f"{name}: expected a finite number in [{lo}, {hi}{bracket}, got {value}")
    return value


def check_count(value, name, owner):
    """A step or update count read back from a state dict: an integer >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 0:
        raise ValueError(f"{owner}.load_state_dict: {name} must be an integer >= 0, "
                         f"got {value!r}")
    return int(value)


def check_state_arrays(state, prefix, params, owner):
    """The arrays `prefix.0`, `prefix.1`, ... of a state dict, one per parameter, same shapes."""
    keys = sorted((k for k in state if k.startswith(prefix + ".")),
                  key=lambda k: int(k.rsplit(".", 1)[1]) if k.rsplit(".", 1)[1].isdigit() else -1)
    expected = [f"{prefix}.{i}" for i in range(len(params))]
    if keys != expected:
        raise ValueError(f"{owner}.load_state_dict: expected the arrays {prefix}.0 .. "
                         f"{prefix}.{len(params) - 1} for {len(params)} parameters, got "
                         f"{keys[:4]}{' ...' if len(keys) > 4 else ''} ({len(keys)} arrays)")
    arrays = []
    for key, p in zip(expected, params):
        value = np.asarray(state[key])
        if value.shape != p.data.shape:
            raise ValueError(f"{owner}.load_state_dict: {key} has shape {value.shape}, the "
                             f"parameter has shape {p.data.shape}")
        arrays.append(value.astype(p.data.dtype, copy=True))
    return arrays


def check_keys(state, required, owner):
    if not isinstance(state, dict):
        raise TypeError(f"{owner}.load_state_dict: expected a dict, got {type(state).__name__}")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"{owner}.load_state_dict: missing keys {missing}; got "
                         f"{sorted(state)[:8]}")
