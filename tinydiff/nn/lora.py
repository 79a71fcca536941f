"""LoRA: low-rank adapters on Linear and Conv2d layers (Hu et al. 2021).

Notation (Hu et al. 2021, sec. 4.1):
    W0      the frozen base weight, (D_out, D_in) (a Conv2d's (O, C, kH, kW))
    A       (r, D_in), drawn from N(0, (1/r)^2) (diffusers' "gaussian" init)
    B       (D_out, r), zero at the start, so the adapted layer starts exactly at the base
    alpha   a constant; the update is scaled by alpha / r (alpha = r: scale 1)

    h = W0 x + b + (alpha / r) B A x                                    Hu et al. 2021, eq. 3

Several adapters k may sit on one layer, each with its weight w_k (diffusers' set_adapters),
and the whole low-rank part may be scaled by s at call time (diffusers' LoRA "scale"):

    h = W0 x + b + s * sum_k w_k (alpha_k / r_k) B_k A_k x

On a Conv2d, A is a convolution with the base layer's kernel, stride and padding into r
channels and B a 1x1 convolution back to O channels (as PEFT does), so for a 3x3 layer
B A is the rank-r weight (O, r) @ (r, C*3*3) reshaped to (O, C, 3, 3).

Only A and B train: the base layer's parameters are frozen (requires_grad=False), so its
backward computes dx alone (no dW product, no cached input).
The model-walking functions (add_lora, set_adapters, fuse_lora, ...) are in nn/lora_model.py.
"""

import numpy as np

from tinydiff.nn.checks import check_float_array, check_positive_int
from tinydiff.nn.conv import Conv2d, conv2d_backward, conv2d_forward
from tinydiff.nn.linear import Linear, linear_backward, linear_forward
from tinydiff.nn.module import Module, needs_grads


# ---- functional core: the low-rank path --------------------------------------------------
def lora_linear_forward(x, a, b, scale):
    """x (..., D_in), a (r, D_in), b (D_out, r) -> (delta (..., D_out), cache);
    delta = scale * B A x (the low-rank term of Hu et al. 2021, eq. 3)."""
    x2 = x.reshape(-1, x.shape[-1])  # (..., D_in) -> (M, D_in)
    h = x2 @ a.T  # (M, r)
    delta = scale * (h @ b.T)  # (M, D_out)
    return delta.reshape(x.shape[:-1] + (b.shape[0],)), (x2, h, a, b, scale)


def lora_linear_backward(ddelta, cache):
    """ddelta (..., D_out) -> (dx (..., D_in), da (r, D_in), db (D_out, r)).

    With h = A x and delta = s B h:  dB = s ddelta h^T,  dh = s B^T ddelta,
    dA = dh x^T,  dx = A^T dh (summed over the M = prod(...) rows)."""
    x2, h, a, b, scale = cache
    d2 = ddelta.reshape(-1, ddelta.shape[-1])  # (..., D_out) -> (M, D_out)
    db = scale * (d2.T @ h)  # (D_out, r)
    dh = scale * (d2 @ b)  # (M, r)
    da = dh.T @ x2  # (r, D_in)
    dx = dh @ a  # (M, D_in)
    return dx.reshape(ddelta.shape[:-1] + (a.shape[1],)), da, db


def lora_conv_forward(x, a, b, scale, stride, padding):
    """x (B, C, H, W), a (r, C, kH, kW), b (O, r, 1, 1) -> (delta (B, O, Ho, Wo), cache);
    delta = scale * conv1x1(conv(x, A), B)."""
    h, conv_cache = conv2d_forward(x, a, None, stride, padding)  # (B, r, Ho, Wo)
    delta = scale * np.einsum("or,brhw->bohw", b[:, :, 0, 0], h, optimize=True)
    return delta, (conv_cache, h, b, scale)


def lora_conv_backward(ddelta, cache):
    """ddelta (B, O, Ho, Wo) -> (dx (B, C, H, W), da (r, C, kH, kW), db (O, r, 1, 1)):
    the 1x1 product by hand, then the convolution's own backward for A."""
    conv_cache, h, b, scale = cache
    db = scale * np.einsum("bohw,brhw->or", ddelta, h, optimize=True)[:, :, None, None]
    dh = scale * np.einsum("or,bohw->brhw", b[:, :, 0, 0], ddelta, optimize=True)  # (B, r, Ho, Wo)
    dx, da, _ = conv2d_backward(dh, conv_cache, (True, False))
    return dx, da, db


def lora_delta_weight(a, b):
    """B A as a weight of the base layer's shape: (D_out, r) @ (r, D_in), or for a Conv2d
    (O, r, 1, 1) and (r, C, kH, kW) -> (O, C, kH, kW)."""
    if a.ndim == 2:
        return b @ a
    return (b[:, :, 0, 0] @ a.reshape(a.shape[0], -1)).reshape((b.shape[0],) + a.shape[1:])


# ---- modules -----------------------------------------------------------------------------
class AdapterDict(Module):
    """Children named by adapter ("default", "sks", ...), as PEFT's lora_A / lora_B ModuleDicts,
    so that parameter names read `to_q.lora_A.default.weight`."""

    def __getitem__(self, name):
        return getattr(self, name)

    def __contains__(self, name):
        return isinstance(vars(self).get(name), Module)

    def keys(self):
        return [name for name, _ in self.named_children()]

    def add(self, name, module):
        setattr(self, name, module)

    def remove(self, name):
        delattr(self, name)


class LoRALayer(Module):
    """What LoRALinear and LoRAConv2d share: the base layer's weight and bias (the same
    Parameter objects, so `to_q.weight` keeps its name), the adapters and their weights.

    Attributes
    ----------
    lora_A, lora_B : AdapterDict of Linear / Conv2d
        Per adapter: A (r, D_in) and B (D_out, r) as the weights of bias-free layers (their
        forward is not used; the functional core above computes the low-rank path).
    ranks, alphas : dict adapter name -> int / float
    targets : dict adapter name -> tuple of str, the target_modules that chose this layer
    active : dict adapter name -> weight w_k (set_adapters); adapters not in it are off
    fused : list of adapter names merged into weight (fuse_lora); skipped by forward
    scale : float
        The call-time multiplier s of every unfused adapter (diffusers' LoRA "scale").
    """

    def __init__(self, base):
        super().__init__()
        self.training = base.training
        self.weight = base.weight
        self.bias = base.bias
        self.lora_A = AdapterDict()
        self.lora_B = AdapterDict()
        self.ranks, self.alphas, self.active, self.targets = {}, {}, {}, {}
        self.fused = []
        self.scale = 1.0
        self._original = {"layer": base, "weight": None}  # a dict: not walked as a child

    @property
    def base_layer(self):
        """The wrapped Linear / Conv2d (unload_lora puts it back in the model)."""
        return self._original["layer"]

    def adapter_scale(self, name):
        """w_k * alpha_k / r_k for an active adapter (without the call-time scale s)."""
        return self.active[name] * self.alphas[name] / self.ranks[name]

    def add_adapter(self, name, a_layer, b_layer, rank, alpha, rng):
        """Register adapter `name` with A ~ N(0, (1/r)^2) and B = 0 (Hu et al. 2021, sec. 4.1)."""
        if name in self.lora_A:
            raise ValueError(f"adapter_name: {name!r} is already on this layer")
        a_layer.weight.data[...] = rng.standard_normal(a_layer.weight.shape) / rank
        b_layer.weight.data[...] = 0.0
        a_layer.to(self.weight.dtype)
        b_layer.to(self.weight.dtype)
        self.lora_A.add(name, a_layer)
        self.lora_B.add(name, b_layer)
        self.ranks[name], self.alphas[name] = int(rank), float(alpha)

    def remove_adapter(self, name):
        if name in self.fused:
            raise ValueError(f"adapter {name!r} is fused into the weights; unfuse_lora first")
        self.lora_A.remove(name)
        self.lora_B.remove(name)
        for table in (self.ranks, self.alphas, self.active, self.targets):
            table.pop(name, None)

    def running(self):
        """(name, A, B, s * w_k * alpha_k / r_k) of the adapters forward applies."""
        return [(n, self.lora_A[n].weight, self.lora_B[n].weight, self.scale * self.adapter_scale(n))
                for n in self.active if n not in self.fused]

    def forward(self, x):
        """W0 x + b + s * sum_k w_k (alpha_k / r_k) B_k A_k x (Hu et al. 2021, eq. 3)."""
        self.check_input(x)
        b = self.bias.data if self.bias is not None else None
        y, base_cache = self.base_forward(x, b)
        caches = []
        for name, a, b_k, scale in self.running():
            delta, cache = self.lora_forward(x, a.data, b_k.data, scale)
            y += delta
            caches.append((a, b_k, cache))
        self.save_for_backward(base_cache, caches)
        return y

    def backward(self, grad_out):
        """dx = W0^T dy + sum_k (low-rank dx); dA_k, dB_k into lora_A/lora_B .grad (and the
        base's dW, db only if they are not frozen)."""
        base_cache, caches = self.saved()
        needs = needs_grads((self.weight, self.bias))
        dx, dw, db = self.base_backward(grad_out, base_cache, needs)
        for param, grad, need in zip((self.weight, self.bias), (dw, db), needs):
            if need:
                param.grad += grad
        for a, b_k, cache in caches:
            dx_k, da, db_k = self.lora_backward(grad_out, cache)
            dx += dx_k
            if a.requires_grad:
                a.grad += da
            if b_k.requires_grad:
                b_k.grad += db_k
        return dx

    def delta_weight(self, name, lora_scale=1.0):
        """lora_scale * w_k * (alpha_k / r_k) * B_k A_k, shaped like weight."""
        a, b = self.lora_A[name].weight.data, self.lora_B[name].weight.data
        return (lora_scale * self.adapter_scale(name)) * lora_delta_weight(a, b)

    def fuse(self, names, lora_scale):
        """W <- W0 + sum over names of delta_weight; W0 is kept to restore bit for bit."""
        if self._original["weight"] is None:
            self._original["weight"] = self.weight.data.copy()
        for name in names:
            if name in self.fused:
                continue
            self.weight.data += self.delta_weight(name, lora_scale).astype(self.weight.dtype)
            self.fused.append(name)

    def unfuse(self):
        """Back to the weight before the first fuse (exactly: the saved copy)."""
        if self._original["weight"] is not None:
            self.weight.data[...] = self._original["weight"]
        self._original["weight"] = None
        self.fused = []

    def cast_buffers(self, dtype):
        if self._original["weight"] is not None:
            self._original["weight"] = self._original["weight"].astype(dtype)

    def extra_repr(self):
        adapters = ", ".join(f"{n}: r={self.ranks[n]} alpha={self.alphas[n]:g}" for n in self.ranks)
        return f"{self.base_layer.extra_repr()}; adapters {{{adapters}}}"


class LoRALinear(LoRALayer):
    """A Linear layer y = x W0^T + b with LoRA adapters (see the module docstring).

    Reference: lora_linear_forward / lora_linear_backward above, NumPy products."""

    def __init__(self, base):
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear: base must be a Linear, got {type(base).__name__}")
        super().__init__(base)
        self.in_features, self.out_features = base.in_features, base.out_features

    def new_adapter(self, name, rank, alpha, rng):
        self.add_adapter(name, Linear(self.in_features, rank, bias=False),
                         Linear(rank, self.out_features, bias=False), rank, alpha, rng)

    def check_input(self, x):
        check_float_array(x, "x", min_ndim=1, dtype=self.weight.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"LoRALinear: x's last dimension must be in_features={self.in_features}, "
                             f"got shape {x.shape}")

    def base_forward(self, x, b):
        return linear_forward(x, self.weight.data, b, self.weight.requires_grad)

    def base_backward(self, dy, cache, needs):
        return linear_backward(dy, cache, needs)

    def lora_forward(self, x, a, b, scale):
        return lora_linear_forward(x, a, b, scale)

    def lora_backward(self, ddelta, cache):
        return lora_linear_backward(ddelta, cache)


class LoRAConv2d(LoRALayer):
    """A Conv2d (1x1 or 3x3, any stride and padding) with LoRA adapters: A a convolution with
    the base's kernel, stride and padding into r channels, B a 1x1 convolution (PEFT's layout).

    Reference: lora_conv_forward / lora_conv_backward above (conv2d_forward/backward for A)."""

    def __init__(self, base):
        if not isinstance(base, Conv2d):
            raise TypeError(f"LoRAConv2d: base must be a Conv2d, got {type(base).__name__}")
        if base.kernel_size not in ((1, 1), (3, 3)):
            raise ValueError(f"LoRAConv2d: only 1x1 and 3x3 convolutions take adapters, got "
                             f"kernel_size {base.kernel_size}")
        super().__init__(base)
        self.in_channels, self.out_channels = base.in_channels, base.out_channels
        self.kernel_size, self.stride, self.padding = base.kernel_size, base.stride, base.padding

    def new_adapter(self, name, rank, alpha, rng):
        a = Conv2d(self.in_channels, rank, self.kernel_size, self.stride, self.padding, bias=False)
        self.add_adapter(name, a, Conv2d(rank, self.out_channels, 1, bias=False), rank, alpha, rng)

    def check_input(self, x):
        check_float_array(x, "x", ndim=4, dtype=self.weight.dtype)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"LoRAConv2d: x must have in_channels={self.in_channels} channels "
                             f"(axis 1), got shape {x.shape}")

    def base_forward(self, x, b):
        return conv2d_forward(x, self.weight.data, b, self.stride, self.padding,
                              self.weight.requires_grad)

    def base_backward(self, dy, cache, needs):
        return conv2d_backward(dy, cache, needs)

    def lora_forward(self, x, a, b, scale):
        return lora_conv_forward(x, a, b, scale, self.stride, self.padding)

    def lora_backward(self, ddelta, cache):
        return lora_conv_backward(ddelta, cache)


def wrap_for_lora(layer):
    """A LoRALinear / LoRAConv2d around `layer` (returned as is if it is one already)."""
    if isinstance(layer, LoRALayer):
        return layer
    if isinstance(layer, Linear):
        return LoRALinear(layer)
    if isinstance(layer, Conv2d):
        return LoRAConv2d(layer)
    raise TypeError(f"LoRA adapters go on Linear and Conv2d layers, got {type(layer).__name__}")


def check_rank(rank):
    return check_positive_int(rank, "rank")
