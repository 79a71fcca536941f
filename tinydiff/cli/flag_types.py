"""Argparse `type=` functions of the `tinydiff` command line.

Each reads one flag's text and returns its value, or raises argparse.ArgumentTypeError with
what was expected and what came; argparse then prints one usage line naming the flag
(`tinydiff train: error: argument --lr: expected a number > 0, got nan`) and exits with 2.
Reading "nan" or "0,x" silently is what these exist to prevent: a bad flag must not cost a run.
"""

import argparse
import math


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text):
    """A whole number >= 1 (steps, batch size, image size)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def nonnegative_int(text):
    """A whole number >= 0 (warm-up steps, a seed, 0 meaning 'off')."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _finite(text):
    value = _number(text, float)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text):
    """A finite number > 0 (a learning rate)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def nonnegative_float(text):
    """A finite number >= 0 (a loss weight, 0 meaning 'off')."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def decay(text):
    """An EMA decay: a number in [0, 1)."""
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), e.g. 0.999, got {text!r}")
    return value


def drop_probability(text):
    """A probability in [0, 1) (condition dropout: 1 would never show the model a label)."""
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), e.g. 0.1, got {text!r}")
    return value


def unit_interval(text):
    """A number in [0, 1] (guidance rescale's phi)."""
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], e.g. 0.7, got {text!r}")
    return value


def int_list(text):
    """Comma-separated whole numbers >= 1, e.g. 32,64,64 -> (32, 64, 64)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers like 32,64,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers >= 1, got {text!r}")
    return values


def flag_list(text):
    """Comma-separated 0/1 flags, one per resolution level, e.g. 0,0,1 -> (0, 0, 1)."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or any(part not in ("0", "1") for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated 0s and 1s like 0,0,1, got {text!r}")
    return tuple(int(part) for part in parts)
