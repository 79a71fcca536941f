"""Initial weights, drawn from an explicit numpy Generator.

PyTorch's defaults, so a tinydiff layer starts where a PyTorch one would: Linear and Conv2d
draw weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5),
He et al. 2015), Embedding from N(0, 1).
"""

import numpy as np


def generator(rng):
    """The Generator to draw from: `rng` itself, or a fixed-seed one so that a layer built
    without one is still reproducible."""
    if rng is None:
        return np.random.default_rng(0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def uniform_fan_in(rng, shape, fan_in, dtype=np.float32):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
