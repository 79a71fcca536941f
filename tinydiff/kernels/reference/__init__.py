"""Slow, obviously-correct NumPy twins of the Numba kernels, written for reading.

Every function here follows its definition line by line (a loop over kernel taps, an einsum per
equation), so a student can check the fast kernels against them. The tests hold the fast kernels
to these, and these to independent computations (finite differences, adjoint identities, naive
softmax). `tinydiff.kernels.use("reference")` runs every layer on them.

    conv.py        conv2d and its two gradients                 (fast: kernels/conv/)
    winograd.py    Winograd F(2x2, 3x3) from the paper's matrices (fast: kernels/conv/winograd*.py)
    attention.py   scaled dot-product attention                 (fast: kernels/attention.py)
    norm.py        group norm, and group norm followed by SiLU  (fast: kernels/norm*.py)
    activation.py  SiLU                                          (fast: kernels/activation.py)
    resample.py    nearest-neighbour 2x upsampling              (fast: kernels/resample.py)
"""

from tinydiff.kernels.reference.activation import silu_backward_ref, silu_forward_ref
from tinydiff.kernels.reference.attention import attention_backward_ref, attention_forward_ref
from tinydiff.kernels.reference.conv import (conv2d_backward_input_ref, conv2d_backward_ref,
                                             conv2d_backward_weight_ref, conv2d_forward_ref,
                                             conv_output_hw, conv_output_size)
from tinydiff.kernels.reference.norm import (group_norm_backward_ref, group_norm_forward_ref,
                                             group_norm_silu_backward_ref,
                                             group_norm_silu_forward_ref)
from tinydiff.kernels.reference.resample import (upsample_nearest2x_backward_ref,
                                                 upsample_nearest2x_ref)
from tinydiff.kernels.reference.winograd import (winograd_conv2d_backward_ref,
                                                 winograd_conv2d_forward_ref,
                                                 winograd_filter_transform_ref,
                                                 winograd_input_transform_ref,
                                                 winograd_output_transform_ref,
                                                 winograd_tiles_adjoint_ref, winograd_tiles_ref)

__all__ = [
    "conv_output_hw", "conv_output_size", "conv2d_forward_ref", "conv2d_backward_input_ref",
    "conv2d_backward_weight_ref", "conv2d_backward_ref",
    "winograd_tiles_ref", "winograd_tiles_adjoint_ref", "winograd_filter_transform_ref",
    "winograd_input_transform_ref", "winograd_output_transform_ref",
    "winograd_conv2d_forward_ref", "winograd_conv2d_backward_ref",
    "attention_forward_ref", "attention_backward_ref",
    "group_norm_forward_ref", "group_norm_backward_ref",
    "group_norm_silu_forward_ref", "group_norm_silu_backward_ref",
    "silu_forward_ref", "silu_backward_ref",
    "upsample_nearest2x_ref", "upsample_nearest2x_backward_ref",
]
