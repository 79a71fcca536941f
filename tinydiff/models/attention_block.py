"""Self-attention over the pixels of a feature map (diffusers' Attention with group norm and
a residual connection, as used inside AttnDownBlock2D / UNetMidBlock2D / AttnUpBlock2D):

    tokens = group_norm(x) seen as (B, H*W, C)
    out    = (x + multi_head_attention(tokens) seen as (B, C, H, W)) / rescale_output_factor
"""

from tinydiff.nn import GroupNorm, MultiHeadAttention


class SpatialSelfAttention(MultiHeadAttention):
    """forward(x (B, C, H, W)) -> (B, C, H, W). Heads = C / head_dim.

    Parameter names are diffusers' (group_norm, to_q, to_k, to_v, to_out.0)."""

    def __init__(self, channels, head_dim, groups=32, eps=1e-5, rescale_output_factor=1.0, rng=None):
        if channels % head_dim:
            raise ValueError(
                f"SpatialSelfAttention: channels={channels} must be divisible by head_dim={head_dim}"
            )
        super().__init__(channels, channels // head_dim, rng=rng)
        self.group_norm = GroupNorm(groups, channels, eps)
        self.rescale_output_factor = float(rescale_output_factor)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x.reshape(B, C, H * W))  # (B, C, H, W) -> (B, C, HW)
        out = super().forward(h.transpose(0, 2, 1))  # (B, HW, C)
        out = out.transpose(0, 2, 1).reshape(B, C, H, W)  # (B, HW, C) -> (B, C, H, W)
        return (out + x) / self.rescale_output_factor

    def backward(self, grad_out):
        B, C, H, W = grad_out.shape
        g = grad_out / self.rescale_output_factor
        dtokens = super().backward(g.reshape(B, C, H * W).transpose(0, 2, 1))  # (B, HW, C)
        dh = self.group_norm.backward(dtokens.transpose(0, 2, 1))  # (B, C, HW)
        return dh.reshape(B, C, H, W) + g
