"""Transposed 2-D convolution ("deconvolution", fractionally-strided convolution): the layer
DCGAN's generator grows images with (Radford et al. 2016, sec. 3).

What it computes: every input pixel x[b, c, h, w] stamps a copy of the filter w[c, :, :, :],
scaled by its value, onto the output at (s*h, s*w); overlapping stamps add up; then `padding`
rows and columns are cropped from every side. So the output side is

    H_out = (H - 1) * stride - 2 * padding + kH + output_padding           (PyTorch's formula)

It is the gradient of Conv2d with respect to its input, which is where its name comes from:
conv_transpose2d(dy, w) = d conv2d(x, w) / dx applied to dy, for the same stride and padding.
The tests check it against that identity, against finite differences and against PyTorch.

The arithmetic here is NumPy and readable (no Numba kernel): one matrix product of the flattened
filter with all input pixels, (C_out*kH*kW, C_in) @ (C_in, B*H*W), then kH*kW strided
slice-adds that place the stamps ("col2im"). The product is BLAS and the slice-adds move each
output element kH*kW/stride^2 times; at DCGAN's sizes (16x16, 4x4 filters) both are small next
to the discriminator's Conv2d, so a kernel would not pay for itself.
"""

import numpy as np

from tinydiff.nn.checks import check_float_array, check_pair, check_positive_int
from tinydiff.nn.init import generator, uniform_fan_in
from tinydiff.nn.module import Module, Parameter


def conv_transpose2d_output_size(size, kernel, stride, padding, output_padding):
    """H_out = (H - 1) * stride - 2 * padding + kernel + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def conv_transpose2d_forward(x, w, b, stride, padding, output_padding=0):
    """x (B, C_in, H, W), w (C_in, C_out, kH, kW), b (C_out,) or None
    -> (y (B, C_out, H_out, W_out), cache).

    Weight layout as PyTorch's ConvTranspose2d: input channels first. Channels go first inside
    (C, B, H, W), so each stamp below is one contiguous block."""
    batch, c_in, h, w_in = x.shape
    _, c_out, kh, kw = w.shape
    h_out = conv_transpose2d_output_size(h, kh, stride, padding, output_padding)
    w_out = conv_transpose2d_output_size(w_in, kw, stride, padding, output_padding)
    # 1. every filter tap times every pixel, one product:
    #    (C_out*kH*kW, C_in) @ (C_in, B*H*W) -> (C_out, kH, kW, B, H, W)
    x2 = x.transpose(1, 0, 2, 3).reshape(c_in, -1)  # (B, C_in, H, W) -> (C_in, B*H*W)
    stamps = (w.reshape(c_in, -1).T @ x2).reshape(c_out, kh, kw, batch, h, w_in)
    # 2. col2im: tap (i, j) of pixel (h, w) lands at (s*h + i, s*w + j) of the uncropped output
    full = np.zeros((c_out, batch, (h - 1) * stride + kh + output_padding,
                     (w_in - 1) * stride + kw + output_padding), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + stride * h:stride, j:j + stride * w_in:stride] += stamps[:, i, j]
    # 3. crop `padding` from every side (output_padding extends the bottom/right only)
    y = full[:, :, padding:padding + h_out, padding:padding + w_out].transpose(1, 0, 2, 3)  # -> (B, C_out, ., .)
    y = np.ascontiguousarray(y)
    if b is not None:
        y += b[None, :, None, None]
    return y, (x2, x.shape, w, stride, padding, output_padding)


def conv_transpose2d_backward(dy, cache, needs=(True, True)):
    """dy (B, C_out, H_out, W_out) -> (dx (B, C_in, H, W), dw (C_in, C_out, kH, kW), db (C_out,)).

    needs = (want dw, want db), as in linear_backward: a gradient not wanted (a frozen or
    missing parameter) is not computed and comes back None.

    Forward's three stages in reverse: un-crop (zero-pad dy back to the full size), im2col
    (gather, for each pixel and tap, the output element it was added to), then the product's
    two gradients. Gathering with stride s is exactly a strided Conv2d of dy: the gradient of a
    transposed convolution with respect to its input is an ordinary convolution."""
    x2, (batch, c_in, h, w_in), w, stride, padding, output_padding = cache
    _, c_out, kh, kw = w.shape
    full = np.zeros((c_out, batch, (h - 1) * stride + kh + output_padding,
                     (w_in - 1) * stride + kw + output_padding), dtype=dy.dtype)
    full[:, :, padding:padding + dy.shape[2], padding:padding + dy.shape[3]] = dy.transpose(1, 0, 2, 3)
    # d stamps[o, i, j, b, h, w] = full[o, b, s*h + i, s*w + j]
    dstamps = np.empty((c_out, kh, kw, batch, h, w_in), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dstamps[:, i, j] = full[:, :, i:i + stride * h:stride, j:j + stride * w_in:stride]
    dstamps = dstamps.reshape(c_out * kh * kw, -1)  # (C_out*kH*kW, B*H*W)
    dx = (w.reshape(c_in, -1) @ dstamps).reshape(c_in, batch, h, w_in).transpose(1, 0, 2, 3)  # -> (B, C_in, H, W)
    dw = (x2 @ dstamps.T).reshape(w.shape) if needs[0] else None  # (C_in, B*H*W) @ (B*H*W, C_out*kH*kW)
    db = dy.sum(axis=(0, 2, 3)) if needs[1] else None
    return np.ascontiguousarray(dx), dw, db


class ConvTranspose2d(Module):
    """Transposed 2-D convolution with weight (C_in, C_out, kH, kW), as PyTorch's ConvTranspose2d
    (groups=1, dilation=1).

    Reference: conv_transpose2d_forward and conv_transpose2d_backward above, in NumPy (no fast
    kernel: the same code runs on both kernel backends).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int, >= 1
    padding : int, >= 0
        Rows/columns cropped from every side of the stamped output.
    output_padding : int, 0 <= output_padding < stride
        Extra rows/columns on the bottom/right, to pick among the output sizes that a strided
        Conv2d maps to the same input size.
    bias : bool
    rng : numpy.random.Generator, optional
        PyTorch's default init: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
        fan_in = C_out * kH * kW. PyTorch computes fan_in from the weight's dimension 1, which for
        a transposed convolution is C_out, not C_in (the tests compare with torch's own draws).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, rng=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.stride = check_positive_int(stride, "stride")
        self.padding = check_positive_int(padding, "padding", minimum=0)
        self.output_padding = check_positive_int(output_padding, "output_padding", minimum=0)
        if self.output_padding >= self.stride:
            raise ValueError(f"ConvTranspose2d: output_padding must be smaller than stride={self.stride}, "
                             f"got {output_padding}")
        rng = generator(rng)
        fan_in = out_channels * self.kernel_size[0] * self.kernel_size[1]  # PyTorch: weight.size(1) * kH * kW
        shape = (in_channels, out_channels) + self.kernel_size
        self.weight = Parameter(uniform_fan_in(rng, shape, fan_in))
        self.bias = Parameter(uniform_fan_in(rng, (out_channels,), fan_in)) if bias else None

    def output_size(self, h, w):
        """(H_out, W_out) for an input of H x W."""
        return tuple(conv_transpose2d_output_size(n, k, self.stride, self.padding, self.output_padding)
                     for n, k in zip((h, w), self.kernel_size))

    def forward(self, x):
        """x (B, C_in, H, W) -> (B, C_out, H_out, W_out)."""
        check_float_array(x, "x", ndim=4, dtype=self.weight.dtype)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"ConvTranspose2d: x must have in_channels={self.in_channels} channels (axis 1), "
                             f"got shape {x.shape}")
        if min(self.output_size(x.shape[2], x.shape[3])) < 1:
            raise ValueError(f"ConvTranspose2d: padding={self.padding} crops away the whole output of an input "
                             f"of shape {x.shape}")
        b = self.bias.data if self.bias is not None else None
        return self.forward_with(conv_transpose2d_forward, x, self.weight.data, b, self.stride, self.padding,
                                 self.output_padding)

    def backward(self, grad_out):
        """dx; dW and db (conv_transpose2d_backward) are added into weight.grad and bias.grad."""
        return self.backward_with(conv_transpose2d_backward, grad_out, (self.weight, self.bias))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}, bias={self.bias is not None}")
