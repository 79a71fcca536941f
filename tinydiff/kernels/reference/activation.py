"""SiLU, x * sigmoid(x), and its derivative, element by element."""

import numpy as np


def silu_forward_ref(x):
    """y = x * sigmoid(x) = x / (1 + exp(-x)), element by element."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x << 0 gives x / inf = -0: right
        return x / (1.0 + np.exp(-x))


def silu_backward_ref(dy, x):
    """dL/dx = dy * (s + x s (1 - s)) with s = sigmoid(x)."""
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-x))
    return dy * (s + x * s * (1.0 - s))
