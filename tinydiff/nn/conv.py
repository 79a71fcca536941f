"""2-D convolution (cross-correlation, as in every deep-learning library) and the two
resampling layers built from it: Downsample2x (strided 3x3 conv) and Upsample2x (nearest).

The arithmetic lives in tinydiff.kernels (Numba, held to the NumPy references in
tinydiff.kernels.reference, which `tinydiff.kernels.use("reference")` runs instead); this file
checks input, keeps the cache and accumulates parameter gradients.
"""

from tinydiff import kernels
from tinydiff.nn.checks import check_float_array, check_pair, check_positive_int
from tinydiff.nn.init import generator, uniform_fan_in
from tinydiff.nn.module import Module, Parameter


def conv2d_forward(x, w, b, stride, padding, keep_input=True):
    """x (B, C, H, W), w (O, C, kH, kW), b (O,) or None -> (y (B, O, Ho, Wo), cache).

    Reference: tinydiff.kernels.reference.conv2d_forward_ref. Fast: tinydiff.kernels.conv2d_forward
    (kernels/conv/), which also takes w's Winograd-transformed filters: on the fast backend the
    cache keeps them for backward (None off that path, and on the reference backend).
    keep_input=False (a frozen weight): the cache drops x, which only dW needs."""
    kept = x if keep_input else None
    if kernels.current_backend() == "reference":
        y = kernels.conv2d_forward_ref(x, w, b, stride, padding)
        return y, (kept, x.shape[2:], w, stride, padding, None)
    u = kernels.conv.winograd_weights(w, stride, padding)
    y = kernels.conv2d_forward(x, w, b, stride, padding, winograd_weights=u)
    return y, (kept, x.shape[2:], w, stride, padding, u)


def conv2d_backward(dy, cache, needs=(True, True)):
    """dy (B, O, Ho, Wo) -> (dx (B, C, H, W), dw (O, C, kH, kW), db (O,)).

    needs = (want dw, want db). Without dw (a frozen weight) only the input gradient's kernel
    runs (conv2d_backward_input: no dW pass over x at all) and db, if wanted, is a sum of dy;
    a gradient not wanted comes back None.

    Reference: tinydiff.kernels.reference.conv2d_backward_ref (conv2d_backward_input_ref).
    Fast: tinydiff.kernels.conv2d_backward (conv2d_backward_input)."""
    x, input_hw, w, stride, padding, u = cache
    reference = kernels.current_backend() == "reference"
    if needs[0]:
        backward = kernels.conv2d_backward_ref if reference else kernels.conv2d_backward
        dx, dw, db = (backward(dy, x, w, stride, padding) if reference
                      else backward(dy, x, w, stride, padding, winograd_weights=u))
        return dx, dw, db if needs[1] else None
    dx = (kernels.conv2d_backward_input_ref(dy, w, input_hw, stride, padding) if reference
          else kernels.conv2d_backward_input(dy, w, input_hw, stride, padding, winograd_weights=u))
    return dx, None, dy.sum(axis=(0, 2, 3)) if needs[1] else None


class Conv2d(Module):
    """2-D convolution with weight (C_out, C_in, kH, kW), as in PyTorch.

    Reference: tinydiff.kernels.reference.conv2d_forward_ref and conv2d_backward_ref (the fast
    path: kernels/conv/, im2col, 1x1 products or Winograd F(2x2, 3x3) by shape).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
        Odd or even.
    stride : int, >= 1
    padding : int, >= 0
        Zero padding on every side.
    bias : bool
        Without bias the module has no `bias` parameter at all.
    rng : numpy.random.Generator, optional
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, rng=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.stride = check_positive_int(stride, "stride")
        self.padding = check_positive_int(padding, "padding", minimum=0)
        rng = generator(rng)
        fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        shape = (out_channels, in_channels) + self.kernel_size
        self.weight = Parameter(uniform_fan_in(rng, shape, fan_in))
        self.bias = Parameter(uniform_fan_in(rng, (out_channels,), fan_in)) if bias else None

    def forward(self, x):
        """x (B, C_in, H, W) -> (B, C_out, Ho, Wo)."""
        check_float_array(x, "x", ndim=4, dtype=self.weight.dtype)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d: x must have in_channels={self.in_channels} channels (axis 1), got shape {x.shape}"
            )
        padded = (x.shape[2] + 2 * self.padding, x.shape[3] + 2 * self.padding)
        if padded[0] < self.kernel_size[0] or padded[1] < self.kernel_size[1]:
            raise ValueError(
                f"Conv2d: kernel_size {self.kernel_size} is larger than the padded input {padded} "
                f"(x of shape {x.shape}, padding={self.padding})"
            )
        b = self.bias.data if self.bias is not None else None
        return self.forward_with(conv2d_forward, x, self.weight.data, b, self.stride, self.padding,
                                 self.weight.requires_grad)

    def backward(self, grad_out):
        """dx; dW and db (conv2d_backward) are added into weight.grad and bias.grad (each
        skipped, not computed, when that parameter is frozen)."""
        return self.backward_with(conv2d_backward, grad_out, (self.weight, self.bias))

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class Downsample2x(Module):
    """Halve H and W with a 3x3 convolution of stride 2 and padding 1 (diffusers' Downsample2D
    with use_conv=True; the child is named `conv` so parameter names match).

    Reference: tinydiff.kernels.reference.conv2d_forward_ref, as for Conv2d."""

    def __init__(self, channels, out_channels=None, rng=None):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.conv = Conv2d(channels, out_channels, 3, stride=2, padding=1, rng=rng)

    def forward(self, x):
        """x (B, C, H, W) -> (B, C_out, ceil(H/2), ceil(W/2))."""
        return self.conv(x)

    def backward(self, grad_out):
        return self.conv.backward(grad_out)


class Upsample2x(Module):
    """Double H and W by nearest-neighbour copying, optionally followed by a 3x3 convolution
    (diffusers' Upsample2D; with use_conv=True the child is named `conv`).

    Reference: tinydiff.kernels.reference.upsample_nearest2x_ref and
    upsample_nearest2x_backward_ref (fast: kernels/resample.py)."""

    def __init__(self, channels=None, use_conv=False, out_channels=None, rng=None):
        super().__init__()
        if use_conv:
            if channels is None:
                raise ValueError("Upsample2x: use_conv=True needs channels")
            out_channels = channels if out_channels is None else out_channels
            self.conv = Conv2d(channels, out_channels, 3, padding=1, rng=rng)
        else:
            self.conv = None

    def forward(self, x):
        """x (B, C, H, W) -> (B, C_out, 2H, 2W)."""
        check_float_array(x, "x", ndim=4, dtype=self.param_dtype())
        self.save_for_backward(x.shape)
        y = kernels.pick(kernels.upsample_nearest2x, kernels.upsample_nearest2x_ref)(x)
        if self.conv is not None:
            y = self.conv(y)
        return y

    def backward(self, grad_out):
        self.saved()  # only to insist that forward ran in training mode
        if self.conv is not None:
            grad_out = self.conv.backward(grad_out)
        return kernels.pick(kernels.upsample_nearest2x_backward,
                            kernels.upsample_nearest2x_backward_ref)(grad_out)
