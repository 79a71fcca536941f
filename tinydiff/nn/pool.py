"""Pooling: the mean over all spatial positions (global average pooling, Lin et al. 2014)."""

from tinydiff.nn.checks import check_float_array
from tinydiff.nn.module import Module


class GlobalAvgPool2d(Module):
    """forward(x (B, C, H, W)) -> (B, C), the mean over H and W;
    backward spreads each gradient evenly over the H * W positions it averaged.

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends)."""

    def forward(self, x):
        check_float_array(x, "x", ndim=4)
        self.save_for_backward(x.shape)
        return x.mean(axis=(2, 3))

    def backward(self, grad_out):
        (shape,) = self.saved()
        B, C, H, W = shape
        return (grad_out / (H * W))[:, :, None, None].repeat(H, axis=2).repeat(W, axis=3)  # (B, C) -> (B, C, H, W)
