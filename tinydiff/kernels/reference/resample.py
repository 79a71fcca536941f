"""Nearest-neighbour 2x upsampling and its gradient."""

import numpy as np


# ----------------------------------------------------------------------------------------------
# nearest-neighbour 2x upsampling: y[b, c, 2i + r, 2j + s] = x[b, c, i, j], r, s in {0, 1}
# ----------------------------------------------------------------------------------------------

def upsample_nearest2x_ref(x):
    """(B, C, H, W) -> (B, C, 2H, 2W): x broadcast over a new axis after H and after W."""
    B, C, H, W = x.shape
    y = np.broadcast_to(x[:, :, :, None, :, None], (B, C, H, 2, W, 2))
    return y.reshape(B, C, 2 * H, 2 * W)  # (B, C, H, 2, W, 2) -> (B, C, 2H, 2W)


def upsample_nearest2x_backward_ref(dy):
    """(B, C, 2H, 2W) -> (B, C, H, W): each input pixel gets the sum of its 2x2 block, rows in
    pairs first, then columns in pairs."""
    rows = dy[:, :, 0::2, :] + dy[:, :, 1::2, :]  # (B, C, H, 2W)
    return rows[:, :, :, 0::2] + rows[:, :, :, 1::2]  # -> (B, C, H, W)
