"""The transformer that Stable Diffusion's UNet runs over a feature map's pixels, with
diffusers' structure and names (Transformer2DModel, BasicTransformerBlock):

    Transformer2DModel:    x (B, C, H, W) -> norm -> proj_in -> tokens (B, HW, D)
                           -> transformer_blocks.0, 1, ... -> proj_out -> + x
    BasicTransformerBlock: h = h + attn1(norm1(h))                          self-attention
                           h = h + attn2(norm2(h), encoder_hidden_states)   cross-attention
                           h = h + ff(norm3(h))                             GEGLU feed-forward

The cross-attention is how text steers the image (Rombach et al. 2022, sec. 3.3): queries come
from the pixels, keys and values from the text encoder's tokens,
softmax(Q K^T / sqrt(d)) V with Q = W_Q h, K = W_K tau(y), V = W_V tau(y). Every token is
attended to, padding included, as Stable Diffusion does (no mask).

proj_in / proj_out are 1x1 convolutions (Stable Diffusion 1.x) or, with
use_linear_projection=True, Linear layers on the tokens (Stable Diffusion 2). The attention
projections have no bias (diffusers' attention_bias=False) except to_out.0.
"""

import numpy as np

from tinydiff.nn import Conv2d, GroupNorm, LayerNorm, Linear, Module, ModuleList, MultiHeadAttention
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.feedforward import FeedForward


class BasicTransformerBlock(Module):
    """forward(h (B, N, dim), encoder_hidden_states (B, M, cross_attention_dim)) -> (B, N, dim);
    backward(dout) -> (dh, d encoder_hidden_states).

    dim = num_attention_heads * attention_head_dim; LayerNorms with eps norm_eps."""

    def __init__(self, dim, num_attention_heads, attention_head_dim, cross_attention_dim, dropout=0.0,
                 norm_eps=1e-5, rng=None):
        super().__init__()
        if dim != num_attention_heads * attention_head_dim:
            raise ValueError(f"BasicTransformerBlock: dim={dim} must be num_attention_heads * attention_head_dim = "
                             f"{num_attention_heads} * {attention_head_dim}")
        self.norm1 = LayerNorm(dim, norm_eps)
        self.attn1 = MultiHeadAttention(dim, num_attention_heads, bias=False, dropout=dropout, rng=rng)
        self.norm2 = LayerNorm(dim, norm_eps)
        # Rombach et al. 2022, sec. 3.3: queries from the pixels, keys and values from the text
        self.attn2 = MultiHeadAttention(dim, num_attention_heads, context_dim=cross_attention_dim, bias=False,
                                        dropout=dropout, rng=rng)
        self.norm3 = LayerNorm(dim, norm_eps)
        self.ff = FeedForward(dim, dropout=dropout, rng=rng)

    def forward(self, h, encoder_hidden_states):
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), encoder_hidden_states)
        return h + self.ff(self.norm3(h))

    def backward(self, grad_out):
        g = grad_out + self.norm3.backward(self.ff.backward(grad_out))
        dnorm2, dcontext = self.attn2.backward(g)
        g = g + self.norm2.backward(dnorm2)
        g = g + self.norm1.backward(self.attn1.backward(g))
        return g, dcontext


class Transformer2DModel(Module):
    """forward(x (B, C, H, W), encoder_hidden_states (B, M, cross_attention_dim)) -> (B, C, H, W);
    backward(dout) -> (dx, d encoder_hidden_states).

    Parameters (diffusers' names)
    ----------
    num_attention_heads, attention_head_dim : int
        Heads and the width of each; their product is the token width D (inner_dim).
    in_channels : int
        C.
    num_layers : int
        How many BasicTransformerBlocks.
    norm_num_groups : int
        Groups of the GroupNorm on the input (eps 1e-6, as diffusers).
    cross_attention_dim : int
        Width of encoder_hidden_states' tokens.
    use_linear_projection : bool
        proj_in / proj_out as Linear layers on the tokens instead of 1x1 convolutions.
    """

    def __init__(self, num_attention_heads, attention_head_dim, in_channels, num_layers=1, dropout=0.0,
                 norm_num_groups=32, cross_attention_dim=None, use_linear_projection=False, rng=None):
        super().__init__()
        if cross_attention_dim is None:
            raise ValueError("Transformer2DModel: cross_attention_dim is required (the width of encoder_hidden_states)")
        inner_dim = num_attention_heads * attention_head_dim
        self.in_channels, self.inner_dim = in_channels, inner_dim
        self.use_linear_projection = bool(use_linear_projection)
        self.norm = GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        if self.use_linear_projection:
            self.proj_in = Linear(in_channels, inner_dim, rng=rng)
        else:
            self.proj_in = Conv2d(in_channels, inner_dim, 1, rng=rng)
        self.transformer_blocks = ModuleList([
            BasicTransformerBlock(inner_dim, num_attention_heads, attention_head_dim, cross_attention_dim,
                                  dropout=dropout, rng=rng)
            for _ in range(num_layers)
        ])
        if self.use_linear_projection:
            self.proj_out = Linear(inner_dim, in_channels, rng=rng)
        else:
            self.proj_out = Conv2d(inner_dim, in_channels, 1, rng=rng)

    def forward(self, x, encoder_hidden_states):
        check_float_array(x, "x", ndim=4, dtype=self.norm.weight.dtype)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"Transformer2DModel: x must be (B, C={self.in_channels}, H, W), got shape {x.shape}")
        B, C, H, W = x.shape
        h = self.norm(x)
        if self.use_linear_projection:
            h = self.proj_in(to_tokens(h))  # (B, C, H, W) -> (B, HW, C) -> (B, HW, D)
        else:
            h = to_tokens(self.proj_in(h))  # (B, C, H, W) -> (B, D, H, W) -> (B, HW, D)
        for block in self.transformer_blocks:
            h = block(h, encoder_hidden_states)
        if self.use_linear_projection:
            h = to_image(self.proj_out(h), H, W)  # (B, HW, D) -> (B, HW, C) -> (B, C, H, W)
        else:
            h = self.proj_out(to_image(h, H, W))  # (B, HW, D) -> (B, D, H, W) -> (B, C, H, W)
        self.save_for_backward(H, W)
        return h + x

    def backward(self, grad_out):
        H, W = self.saved()
        if self.use_linear_projection:
            g = self.proj_out.backward(to_tokens(grad_out))
        else:
            g = to_tokens(self.proj_out.backward(grad_out))
        dcontext = 0.0
        for block in reversed(list(self.transformer_blocks)):
            g, dc = block.backward(g)
            dcontext = dcontext + dc
        if self.use_linear_projection:
            g = to_image(self.proj_in.backward(g), H, W)
        else:
            g = self.proj_in.backward(to_image(g, H, W))
        return self.norm.backward(g) + grad_out, dcontext


def to_tokens(x):
    """(B, C, H, W) -> (B, HW, C), one token per pixel (contiguous)."""
    B, C, H, W = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(B, H * W, C)


def to_image(tokens, H, W):
    """(B, HW, C) -> (B, C, H, W) (contiguous), the inverse of to_tokens."""
    B, N, C = tokens.shape
    return np.ascontiguousarray(tokens.reshape(B, H, W, C).transpose(0, 3, 1, 2))
