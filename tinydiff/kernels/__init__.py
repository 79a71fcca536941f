"""Compute kernels: slow NumPy references (reference.py) and the fast Numba versions beside them."""

from tinydiff.kernels.reference import (attention_backward_ref, attention_forward_ref,
                                        conv2d_backward_input_ref, conv2d_backward_weight_ref,
                                        conv2d_forward_ref, group_norm_backward_ref,
                                        group_norm_forward_ref)

__all__ = [
    "conv2d_forward_ref", "conv2d_backward_input_ref", "conv2d_backward_weight_ref",
    "attention_forward_ref", "attention_backward_ref",
    "group_norm_forward_ref", "group_norm_backward_ref",
]
