"""conv2d forward and backward, fast: one file per algorithm behind a short dispatcher.

    dispatch.py             picks the algorithm for a geometry; the functions the layers call
    im2col.py               any kernel, stride, padding: im2col/col2im around BLAS products
    pointwise.py            1x1, stride 1, no padding: one product per image
    winograd.py             3x3, stride 1, padding 1: Winograd F(2x2, 3x3), chunk by chunk
    winograd_transforms.py  the Winograd transforms B^T d B, A^T M A, G g G^T in Numba
    batch.py                how all three run over the batch: split over threads, or serial

Reference: tinydiff.kernels.reference (conv2d_forward_ref and its backward twins,
winograd_conv2d_forward_ref).
"""

from tinydiff.kernels.conv.dispatch import (conv2d_backward, conv2d_backward_input,
                                            conv2d_backward_weight, conv2d_forward, describe_path,
                                            winograd_enabled, winograd_weights)

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward",
           "winograd_weights", "winograd_enabled", "describe_path"]
