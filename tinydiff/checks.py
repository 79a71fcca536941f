"""Argument checks shared across packages that sit on NumPy alone (data, nn's layers), so that
each rule lives once: every message names the argument, what was expected and what came.

This module imports NumPy only; any layer of tinydiff may import it.
"""

import numpy as np


def check_int(value, name, minimum=0):
    """An integer (a bool is refused) >= minimum, returned as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)
