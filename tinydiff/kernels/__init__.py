"""Compute kernels: slow NumPy references (kernels/reference/) and fast Numba versions beside them.

Every fast kernel takes the same arguments and returns the same arrays as its `_ref` twin; the
fused group_norm_silu_* pair (norm_silu.py) equals group_norm_* followed by silu_* to the bit.

The reference backend. `kernels.use("reference")` makes every layer run on the `_ref` twins,
`kernels.use("fast")` back on the Numba kernels (the default); `with kernels.use("reference"):`
does so for one block. A whole UNet then runs forward and backward on readable NumPy code, to
read it step by step or to compare it with the fast path. This switch (switch.py) is the one
piece of global state tinydiff keeps; `kernels.current_backend()` says which backend is on, and
DataParallel's worker processes follow it.
"""

from tinydiff.kernels.activation import silu_backward, silu_forward
from tinydiff.kernels.attention import attention_backward, attention_forward
from tinydiff.kernels.conv import (conv2d_backward, conv2d_backward_input, conv2d_backward_weight,
                                   conv2d_forward)
from tinydiff.kernels.norm import group_norm_backward, group_norm_forward
from tinydiff.kernels.norm_silu import group_norm_silu_backward, group_norm_silu_forward
from tinydiff.kernels.resample import upsample_nearest2x, upsample_nearest2x_backward
from tinydiff.kernels.reference import (attention_backward_ref, attention_forward_ref,
                                        conv2d_backward_input_ref, conv2d_backward_ref,
                                        conv2d_backward_weight_ref,
                                        conv2d_forward_ref, group_norm_backward_ref,
                                        group_norm_forward_ref, group_norm_silu_backward_ref,
                                        group_norm_silu_forward_ref, silu_backward_ref,
                                        silu_forward_ref, upsample_nearest2x_backward_ref,
                                        upsample_nearest2x_ref)
from tinydiff.kernels.switch import BACKENDS, current_backend, pick, use

__all__ = [
    "use", "current_backend", "pick", "BACKENDS",
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward",
    "attention_forward", "attention_backward",
    "group_norm_forward", "group_norm_backward", "silu_forward", "silu_backward",
    "group_norm_silu_forward", "group_norm_silu_backward",
    "upsample_nearest2x", "upsample_nearest2x_backward",
    "conv2d_forward_ref", "conv2d_backward_input_ref", "conv2d_backward_weight_ref",
    "conv2d_backward_ref",
    "attention_forward_ref", "attention_backward_ref",
    "group_norm_forward_ref", "group_norm_backward_ref", "silu_forward_ref", "silu_backward_ref",
    "group_norm_silu_forward_ref", "group_norm_silu_backward_ref",
    "upsample_nearest2x_ref", "upsample_nearest2x_backward_ref",
]
