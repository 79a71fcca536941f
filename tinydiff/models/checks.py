"""Checks of model configs: every constructor argument is checked for its type, its range and
its consistency with the others before a single weight is allocated, and every message names
the model, the argument, what was expected and what came:

    UNet2DModel: norm_num_groups: expected an integer >= 1, got 0

A config read from a file goes through the same checks (tinydiff.pipelines.checkpoint adds the
file's name), so a corrupt config.json is caught here too. Numbers given as strings ("32") and
bools where integers belong (True is an int in Python) are refused, not converted: a file that
says "32" was written by something that does not know what it is writing.

Sizes are bounded before allocating: a model of more than MAX_PARAMETERS parameters, or whose
single image's feature map or attention matrix exceeds MAX_ACTIVATION numbers, is refused with
its estimated size, instead of ending in a MemoryError (or hours of swapping) later.
"""

import math
import numbers

import numpy as np

from tinydiff.nn.checks import check_positive_int

# 10^9 float32 parameters are 4 GB, far beyond what trains on a laptop CPU; tinydiff's own
# models have 10^5 to 10^7.
MAX_PARAMETERS = 10**9
# one image's largest intermediate array (a feature map, or an attention matrix): 2^28 float32
# numbers are 1 GiB
MAX_ACTIVATION = 2**28


def config_int(value, name, owner, minimum=1):
    """An integer >= minimum (not a bool, not a string, not a float), as a Python int."""
    return check_positive_int(value, f"{owner}: {name}", minimum)


def config_optional_int(value, name, owner, minimum=1):
    """None, or an integer >= minimum."""
    return None if value is None else config_int(value, name, owner, minimum)


def config_number(value, name, owner, minimum=None, maximum=None, positive=False):
    """A finite real number (int or float, not a bool or string) in [minimum, maximum], and
    > 0 if positive; returned as a Python int or float (as it came, for the config's JSON)."""
    expected = "a finite number" + (" > 0" if positive else "")
    if minimum is not None and maximum is not None:
        expected += f" in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected += f" >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name}: expected {expected}, got {value!r}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if (not math.isfinite(value) or (positive and value <= 0)
            or (minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        raise ValueError(f"{owner}: {name}: expected {expected}, got {value!r}")
    return value


def config_bool(value, name, owner):
    """True or False (not 0/1, not "true")."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name}: expected true or false, got {value!r}")
    return bool(value)


def config_sequence(value, name, owner, length=None):
    """A non-empty list or tuple (of the given length), as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{owner}: {name}: expected a list, got {value!r}")
    if not value:
        raise ValueError(f"{owner}: {name}: expected a non-empty list, got {list(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{owner}: {name}: expected {length} entries, got {len(value)}: {list(value)}")
    return tuple(value)


def config_ints(value, name, owner, minimum=1, length=None):
    """A non-empty list of integers >= minimum, as a tuple of Python ints."""
    values = config_sequence(value, name, owner, length)
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{owner}: {name}: expected integers >= {minimum}, got {list(values)}")
        if v < minimum:
            raise ValueError(f"{owner}: {name}: expected integers >= {minimum}, got {list(values)}")
    return tuple(int(v) for v in values)


def config_names(value, name, owner, allowed, length=None):
    """A non-empty list of names, each one of `allowed`, as a tuple."""
    values = config_sequence(value, name, owner, length)
    bad = [v for v in values if not isinstance(v, str) or v not in allowed]
    if bad:
        raise ValueError(f"{owner}: {name}: {bad} not supported; choose from {sorted(allowed)}")
    return values


def config_levels(c, owner, down_allowed, up_allowed):
    """Check a config's resolution levels in place: block_out_channels (whole numbers >= 1),
    down_block_types and up_block_types (one allowed name per level) as tuples of equal length.
    Returns the channels."""
    channels = c["block_out_channels"] = config_ints(c["block_out_channels"], "block_out_channels", owner)
    n = len(channels)
    down = config_sequence(c["down_block_types"], "down_block_types", owner)
    up = config_sequence(c["up_block_types"], "up_block_types", owner)
    if len(down) != n or len(up) != n:
        raise ValueError(
            f"{owner}: down_block_types, up_block_types and block_out_channels must have the same length "
            f"(one entry per resolution level), got {len(down)}, {len(up)}, {n}")
    c["down_block_types"] = config_names(down, "down_block_types", owner, down_allowed)
    c["up_block_types"] = config_names(up, "up_block_types", owner, up_allowed)
    return channels


def config_floats(value, name, owner, length):
    """A list of `length` finite numbers, as a list of Python floats (JSON-friendly)."""
    values = config_sequence(value, name, owner, length)
    return [float(config_number(v, f"{name}[{i}]", owner)) for i, v in enumerate(values)]


def check_divisible(values, what, divisor, divisor_name, owner):
    """Every entry of `values` (described by `what`) divisible by `divisor` (GroupNorm
    groups, attention heads)."""
    bad = [v for v in values if v % divisor]
    if bad:
        raise ValueError(f"{owner}: {what} must be divisible by {divisor_name}={divisor}, got {list(values)}")


def check_sample_size(sample_size, n_levels, owner):
    """sample_size halves evenly at every level after the first: divisible by 2^(n_levels - 1)."""
    if sample_size % 2 ** (n_levels - 1):
        raise ValueError(f"{owner}: sample_size={sample_size} must be divisible by {2 ** (n_levels - 1)} "
                         f"({n_levels} levels, each after the first halving the resolution)")


def check_model_size(owner, parameters, parameter_hint, activation=0, activation_hint=""):
    """Refuse a model of more than MAX_PARAMETERS parameters (a lower-bound estimate is
    enough), or whose largest per-image array exceeds MAX_ACTIVATION numbers; the hints name
    the arguments that set each."""
    if parameters > MAX_PARAMETERS:
        raise ValueError(
            f"{owner}: the config describes at least {parameters:.3g} parameters ({4 * parameters / 1e9:.3g} GB "
            f"of float32); tinydiff builds at most {MAX_PARAMETERS:.0e}: check {parameter_hint}")
    if activation > MAX_ACTIVATION:
        raise ValueError(
            f"{owner}: one image's largest intermediate array would hold {activation:.3g} numbers "
            f"({4 * activation / 2**30:.3g} GiB of float32); tinydiff allows at most 2^28 (1 GiB): "
            f"check {activation_hint}")
