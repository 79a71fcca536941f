"""count_macs against counts done by hand."""

import numpy as np

from tinydiff.metrics.cost import conv_macs_reference, count_macs
from tinydiff.models.attention_block import SpatialSelfAttention
from tinydiff.nn import Conv2d, Linear, Sequential, SiLU


def test_counts_match_hand_counts_and_patches_are_undone():
    model = Sequential([Conv2d(3, 8, 3, padding=1), SiLU(), Conv2d(8, 4, 3, stride=2, padding=1)])
    x = np.zeros((2, 3, 16, 16), np.float32)
    expected = 2 * (conv_macs_reference(3, 8, 3, 16, 16) + conv_macs_reference(8, 4, 3, 8, 8))
    assert count_macs(model, x) == expected
    assert count_macs(Linear(5, 7), np.zeros((3, 5), np.float32)) == 3 * 5 * 7
    attn = SpatialSelfAttention(8, 4, groups=2)
    tokens = 4 * 4
    # q, k, v and output projections (8 x 8 each per token), then per head (2 of width 4): N^2 (4 + 4)
    assert count_macs(attn, np.zeros((1, 8, 4, 4), np.float32)) == 4 * tokens * 64 + 2 * tokens**2 * 8
    assert Conv2d.forward.__qualname__ == "Conv2d.forward"  # restored after counting
