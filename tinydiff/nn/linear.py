"""Linear layer: y = x W^T + b, with W of shape (out, in) as in PyTorch."""

import numpy as np

from tinydiff.nn.checks import check_float_array, check_positive_int
from tinydiff.nn.init import generator, uniform_fan_in
from tinydiff.nn.module import Module, Parameter


def linear_forward(x, w, b, keep_input=True):
    """x (..., D_in), w (D_out, D_in), b (D_out,) or None -> (y (..., D_out), cache).

    keep_input=False (a frozen weight): the cache drops x, which only dW needs."""
    # one product over all leading dims: x @ w.T on a 3-D x is a separate small product per
    # leading index (5x slower for attention's (64, 16, 128) tokens)
    y = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(x.shape[:-1] + (w.shape[0],))
    if b is not None:
        y += b
    return y, (x if keep_input else None, w)


def linear_backward(dy, cache, needs=(True, True)):
    """dy (..., D_out) -> (dx (..., D_in), dw (D_out, D_in), db (D_out,)).

    needs = (want dw, want db): a gradient not wanted is not computed and comes back None
    (a frozen weight saves the (D_out, M) x (M, D_in) product and its array)."""
    x, w = cache
    dy2 = dy.reshape(-1, dy.shape[-1])  # (..., D_out) -> (M, D_out)
    dx = (dy2 @ w).reshape(dy.shape[:-1] + (w.shape[1],))
    dw = dy2.T @ x.reshape(-1, x.shape[-1]) if needs[0] else None  # x (..., D_in) -> (M, D_in)
    db = dy2.sum(axis=0) if needs[1] else None
    return dx, dw, db


class Linear(Module):
    """Fully connected layer.

    Reference: linear_forward and linear_backward above, NumPy products (no fast kernel: the
    same code runs on both kernel backends).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Without bias the module has no `bias` parameter at all.
    rng : numpy.random.Generator, optional
        Draws the initial weights (PyTorch's U(-1/sqrt(in), 1/sqrt(in))).
    """

    def __init__(self, in_features, out_features, bias=True, rng=None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        rng = generator(rng)
        self.weight = Parameter(uniform_fan_in(rng, (out_features, in_features), in_features))
        self.bias = Parameter(uniform_fan_in(rng, (out_features,), in_features)) if bias else None

    def forward(self, x):
        """x (..., in_features) -> (..., out_features)."""
        check_float_array(x, "x", min_ndim=1, dtype=self.weight.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: x's last dimension must be in_features={self.in_features}, got shape {x.shape}"
            )
        b = self.bias.data if self.bias is not None else None
        return self.forward_with(linear_forward, x, self.weight.data, b, self.weight.requires_grad)

    def backward(self, grad_out):
        """dx; dW and db (linear_backward) are added into weight.grad and bias.grad (each
        skipped, not computed, when that parameter is frozen)."""
        return self.backward_with(linear_backward, grad_out, (self.weight, self.bias))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
