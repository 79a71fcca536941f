"""The transformer's feed-forward layer with a GELU-gated linear unit (Shazeer 2020, "GLU
Variants Improve Transformer", sec. 2), as in diffusers' GEGLU and FeedForward:

    GEGLU(x)       = a * gelu(gate),  [a, gate] = proj(x) split in two halves of the last axis
    FeedForward(x) = net.2(dropout(GEGLU(x)))          (net.0 = GEGLU, net.1 = the dropout)

gelu is the exact one, x * Phi(x) with the erf (PyTorch's default, which diffusers uses).
Parameter names are diffusers': ff.net.0.proj.weight, ff.net.2.weight...
"""

import numpy as np

from tinydiff.nn.activation import GELU, Dropout
from tinydiff.nn.checks import check_positive_int
from tinydiff.nn.linear import Linear
from tinydiff.nn.module import Module, Sequential


class GEGLU(Module):
    """forward(x (..., dim_in)) -> (..., dim_out); backward(dout) -> dx.

    Reference: this class's NumPy code on top of Linear and GELU (no fast kernel)."""

    def __init__(self, dim_in, dim_out, bias=True, rng=None):
        super().__init__()
        self.dim_out = check_positive_int(dim_out, "dim_out")
        self.proj = Linear(dim_in, 2 * dim_out, bias=bias, rng=rng)
        self.gelu = GELU()

    def forward(self, x):
        h = self.proj(x)  # (..., dim_in) -> (..., 2 dim_out)
        a, gate = h[..., :self.dim_out], h[..., self.dim_out:]  # each (..., dim_out)
        gelu_gate = self.gelu(gate)
        self.save_for_backward(a, gelu_gate)
        return a * gelu_gate  # Shazeer 2020, sec. 2: GEGLU(x) = (x W) * GELU(x V)

    def backward(self, grad_out):
        a, gelu_gate = self.saved()
        dgate = self.gelu.backward(grad_out * a)
        return self.proj.backward(np.concatenate([grad_out * gelu_gate, dgate], axis=-1))  # (..., 2 dim_out)

    def extra_repr(self):
        return f"dim_out={self.dim_out}"


class FeedForward(Module):
    """net.0 GEGLU(dim -> inner_dim), net.1 Dropout, net.2 Linear(inner_dim -> dim_out).

    forward(x (..., dim)) -> (..., dim_out); backward(dout) -> dx. inner_dim defaults to
    mult * dim (4 dim, as diffusers)."""

    def __init__(self, dim, dim_out=None, mult=4, dropout=0.0, inner_dim=None, bias=True, rng=None):
        super().__init__()
        dim = check_positive_int(dim, "dim")
        inner_dim = int(dim * mult) if inner_dim is None else check_positive_int(inner_dim, "inner_dim")
        dim_out = dim if dim_out is None else dim_out
        self.net = Sequential([
            GEGLU(dim, inner_dim, bias=bias, rng=rng),
            Dropout(dropout, rng=rng),
            Linear(inner_dim, dim_out, bias=bias, rng=rng),
        ])

    def forward(self, x):
        return self.net(x)

    def backward(self, grad_out):
        return self.net.backward(grad_out)
