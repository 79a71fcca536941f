"""Normalisation layers: GroupNorm (Wu & He 2018) and LayerNorm (Ba et al. 2016).

Both compute y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance,
over different sets of elements: GroupNorm over each group of C/G channels and all spatial
positions of one sample, LayerNorm over the trailing `normalized_shape` dimensions.
"""

import numpy as np

from tinydiff import kernels
from tinydiff.nn.checks import check_float_array, check_positive_int
from tinydiff.nn.module import Module, Parameter


def group_norm_forward(x, weight, bias, num_groups, eps):
    """x (B, C, *spatial) -> (y, cache); the statistics are per (sample, group).

    Reference: tinydiff.kernels.reference.group_norm_forward_ref (fast: kernels/norm.py)."""
    forward = kernels.pick(kernels.group_norm_forward, kernels.group_norm_forward_ref)
    y, mean, rstd = forward(x, weight, bias, num_groups, eps)
    return y, (x, weight, mean, rstd, num_groups)


def group_norm_backward(dy, cache):
    """dy (B, C, *spatial) -> (dx, dweight (C,), dbias (C,)).

    Reference: tinydiff.kernels.reference.group_norm_backward_ref."""
    x, weight, mean, rstd, num_groups = cache
    backward = kernels.pick(kernels.group_norm_backward, kernels.group_norm_backward_ref)
    return backward(dy, x, weight, mean, rstd, num_groups)


class GroupNorm(Module):
    """Normalise each group of num_channels / num_groups channels of each sample.

    Parameters `weight` (C,) starts at ones, `bias` (C,) at zeros. With silu=True the layer
    outputs silu(group_norm(x)) in one fused kernel (tinydiff.kernels.norm_silu; the same numbers
    as a SiLU layer after it, in less time); the parameters are the same either way.

    Reference: tinydiff.kernels.reference.group_norm_forward_ref and group_norm_backward_ref;
    with silu=True, group_norm_silu_forward_ref and group_norm_silu_backward_ref.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, silu=False):
        super().__init__()
        self.num_groups = check_positive_int(num_groups, "num_groups")
        self.num_channels = check_positive_int(num_channels, "num_channels")
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels={num_channels} must be divisible by num_groups={num_groups}"
            )
        if not eps > 0:
            raise ValueError(f"GroupNorm: eps must be > 0, got {eps}")
        self.eps = float(eps)
        self.silu = bool(silu)
        self.weight = Parameter(np.ones(num_channels, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_channels, dtype=np.float32))

    def forward(self, x):
        """x (B, C, *spatial) -> same shape."""
        check_float_array(x, "x", min_ndim=2, dtype=self.weight.dtype)
        if x.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm: x must have num_channels={self.num_channels} channels (axis 1), got shape {x.shape}"
            )
        if self.silu:
            forward = kernels.pick(kernels.group_norm_silu_forward,
                                   kernels.group_norm_silu_forward_ref)
            z, y, mean, rstd = forward(x, self.weight.data, self.bias.data, self.num_groups,
                                       self.eps)
            self.save_for_backward((y, x, self.weight.data, mean, rstd, self.num_groups))
            return z
        y, cache = group_norm_forward(x, self.weight.data, self.bias.data, self.num_groups, self.eps)
        self.save_for_backward(cache)
        return y

    def backward(self, grad_out):
        (cache,) = self.saved()
        if self.silu:
            backward = kernels.pick(kernels.group_norm_silu_backward,
                                    kernels.group_norm_silu_backward_ref)
            dx, dweight, dbias = backward(grad_out, *cache)
        else:
            dx, dweight, dbias = group_norm_backward(grad_out, cache)
        # the fused kernels produce dweight, dbias (C values each) in the pass that gives dx;
        # a frozen parameter only skips storing them
        if self.weight.requires_grad:
            self.weight.grad += dweight
        if self.bias.requires_grad:
            self.bias.grad += dbias
        return dx

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}" + (", silu=True" if self.silu else "")


def layer_norm_forward(x, weight, bias, eps):
    """x (..., *S) normalised over the trailing dims S = weight.shape -> (y, cache)."""
    axes = tuple(range(x.ndim - weight.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * weight + bias, (xhat, rstd, weight, axes)


def layer_norm_backward(dy, cache, needs=(True, True)):
    """With xhat = (x - mean) * rstd over n elements (Ba et al. 2016):
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), where g = dy * weight.
    needs = (want dweight, want dbias); one not wanted is not computed and comes back None."""
    xhat, rstd, weight, axes = cache
    lead = tuple(range(xhat.ndim - weight.ndim))
    dweight = (dy * xhat).sum(axis=lead) if needs[0] else None
    dbias = dy.sum(axis=lead) if needs[1] else None
    g = dy * weight
    dx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, dweight, dbias


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` dimensions (an int or a tuple).

    Reference: layer_norm_forward and layer_norm_backward above, in NumPy (no fast kernel: the
    same code runs on both kernel backends)."""

    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(
            check_positive_int(n, "normalized_shape") for n in normalized_shape
        )
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps}")
        self.eps = float(eps)
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))

    def forward(self, x):
        """x (..., *normalized_shape) -> same shape."""
        check_float_array(x, "x", min_ndim=len(self.normalized_shape), dtype=self.weight.dtype)
        if x.shape[x.ndim - len(self.normalized_shape):] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: x's trailing dimensions must be normalized_shape={self.normalized_shape}, "
                f"got shape {x.shape}"
            )
        return self.forward_with(layer_norm_forward, x, self.weight.data, self.bias.data, self.eps)

    def backward(self, grad_out):
        """dx; dweight and dbias (layer_norm_backward) are added into weight.grad and bias.grad."""
        return self.backward_with(layer_norm_backward, grad_out, (self.weight, self.bias))

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
