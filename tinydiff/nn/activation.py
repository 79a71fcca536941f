"""Element-wise layers: SiLU, GELU, QuickGELU, Dropout, Identity, ReLU, LeakyReLU, Tanh. None has
parameters."""

import math

import numpy as np
from scipy.special import erf

from tinydiff import kernels
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator
from tinydiff.nn.module import Module


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


class SiLU(Module):
    """SiLU / swish: y = x * sigmoid(x) (Elfwing et al. 2018; Ramachandran et al. 2017).

    The fused kernel (tinydiff.kernels.silu_forward/backward) caches only x: backward
    recomputes sigmoid(x) and uses d/dx [x s(x)] = s + x s (1 - s).

    Reference: tinydiff.kernels.reference.silu_forward_ref and silu_backward_ref."""

    def forward(self, x):
        check_float_array(x, "x")
        self.save_for_backward(x)
        return kernels.pick(kernels.silu_forward, kernels.silu_forward_ref)(x)

    def backward(self, grad_out):
        (x,) = self.saved()
        return kernels.pick(kernels.silu_backward, kernels.silu_backward_ref)(grad_out, x)


# Python floats, so float32 arrays stay float32 (NumPy scalars would promote them).
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715  # Hendrycks & Gimpel 2016, sec. 2


class GELU(Module):
    """GELU: y = x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016).

    approximate="none" (PyTorch's default) uses erf; "tanh" uses
    Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2, like PyTorch's approximate="tanh".

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends).
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        check_float_array(x, "x")
        if self.approximate == "tanh":
            inner = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x**3)
            t = np.tanh(inner)
            self.save_for_backward(x, t)
            return 0.5 * x * (1.0 + t)
        cdf = 0.5 * (1.0 + erf(x * math.sqrt(0.5)))
        self.save_for_backward(x, cdf)
        return x * cdf

    def backward(self, grad_out):
        x, aux = self.saved()
        if self.approximate == "tanh":
            t = aux
            dinner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_COEF * x**2)
            return grad_out * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)
        pdf = np.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
        return grad_out * (aux + x * pdf)  # d/dx [x Phi(x)] = Phi(x) + x phi(x)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Dropout(Module):
    """Zero each element with probability p in training mode and scale the rest by 1/(1-p)
    (inverted dropout, Srivastava et al. 2014), so eval mode is the identity.

    rng : numpy.random.Generator, optional — draws the masks (reproducible runs).

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends).
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = generator(rng)

    def forward(self, x):
        check_float_array(x, "x")
        if not self.training or self.p == 0.0:
            self.save_for_backward(None)
            return x
        keep = self.rng.random(x.shape) >= self.p
        scale = np.asarray(1.0 / (1.0 - self.p), dtype=x.dtype)
        mask = keep * scale  # already scaled: backward multiplies by the same array
        self.save_for_backward(mask.astype(x.dtype))
        return x * mask

    def backward(self, grad_out):
        (mask,) = self.saved()
        return grad_out if mask is None else grad_out * mask

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Module):
    """y = x."""

    def forward(self, x):
        self.save_for_backward(None)
        return x

    def backward(self, grad_out):
        self.saved()
        return grad_out


QUICK_GELU_COEF = 1.702  # Hendrycks & Gimpel 2016, sec. 2: Phi(x) ~ sigmoid(1.702 x)


class QuickGELU(Module):
    """quick_gelu, CLIP's hidden_act: y = x * sigmoid(1.702 x) (Hendrycks & Gimpel 2016, sec. 2's
    sigmoid approximation of GELU; Radford et al. 2021 trained CLIP with it), as transformers'
    QuickGELUActivation. With s = sigmoid(1.702 x): dy/dx = s + 1.702 x s (1 - s).

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends).
    """

    def forward(self, x):
        check_float_array(x, "x")
        s = sigmoid(QUICK_GELU_COEF * x)
        self.save_for_backward(x, s)
        return x * s

    def backward(self, grad_out):
        x, s = self.saved()
        return grad_out * (s + QUICK_GELU_COEF * x * s * (1.0 - s))


class ReLU(Module):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (PyTorch's choice at x = 0).

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends)."""

    def forward(self, x):
        check_float_array(x, "x")
        positive = x > 0
        self.save_for_backward(positive)
        return x * positive

    def backward(self, grad_out):
        (positive,) = self.saved()
        return grad_out * positive


class LeakyReLU(Module):
    """y = x for x > 0, negative_slope * x otherwise (Maas et al. 2013). PyTorch's default slope is
    0.01; DCGAN's discriminator uses 0.2 (Radford et al. 2016, sec. 3), so that a fake sample's
    gradient does not vanish where a unit is off, and the generator keeps learning.

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        if not (isinstance(negative_slope, (int, float)) and math.isfinite(negative_slope)
                and negative_slope >= 0):
            raise ValueError(f"LeakyReLU: negative_slope must be a finite number >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        check_float_array(x, "x")
        slope = np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)  # dy/dx, kept for backward
        self.save_for_backward(slope)
        return x * slope

    def backward(self, grad_out):
        (slope,) = self.saved()
        return grad_out * slope

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """y = tanh(x); dy/dx = 1 - y^2, so backward needs only the output. DCGAN's generator ends in
    it (Radford et al. 2016, sec. 3), so samples lie in [-1, 1] like the data.

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends)."""

    def forward(self, x):
        check_float_array(x, "x")
        y = np.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad_out):
        (y,) = self.saved()
        return grad_out * (1.0 - y * y)
