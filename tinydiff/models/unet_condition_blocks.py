"""The cross-attention blocks of UNet2DConditionModel, with diffusers' structure and names:
CrossAttnDownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D.

Each is its plain counterpart in tinydiff.models.unet_blocks (the same resnets, downsampler or
upsampler and skip-connection conventions) with a Transformer2DModel after every resnet, whose
cross-attention reads encoder_hidden_states (Rombach et al. 2022, sec. 3.3). Their backward
also returns the gradient to encoder_hidden_states, summed over the block's transformers.

As in diffusers' UNet2DConditionModel, the config's attention_head_dim is the number of heads
of each transformer (a historical misnomer diffusers keeps for its configs' sake); each head
is out_channels / heads wide.
"""

import numpy as np

from tinydiff.models.transformer_2d import Transformer2DModel
from tinydiff.models.unet_blocks import DownBlock2D, UNetMidBlock2D, UpBlock2D
from tinydiff.nn import ModuleList


def transformers(count, channels, num_attention_heads, cross_attention_dim, transformer_layers, groups,
                 use_linear_projection, rng):
    """`count` Transformer2DModels over `channels`, each of `transformer_layers` blocks."""
    if channels % num_attention_heads:
        raise ValueError(f"cross-attention block: channels={channels} must be divisible by "
                         f"num_attention_heads={num_attention_heads}")
    return ModuleList([
        Transformer2DModel(num_attention_heads, channels // num_attention_heads, channels,
                           num_layers=transformer_layers, norm_num_groups=groups,
                           cross_attention_dim=cross_attention_dim, use_linear_projection=use_linear_projection,
                           rng=rng)
        for _ in range(count)
    ])


class CrossAttnDownBlock2D(DownBlock2D):
    """forward(h (B, C_in, H, W), temb (B, T_emb), encoder_hidden_states (B, M, D_ctx))
    -> (h_out, skips): resnet -> transformer per layer, then the optional downsampler; each
    layer's output is a skip. backward(dh_out, dskips) -> (dh, dtemb, d encoder_hidden_states)."""

    has_cross_attention = True

    def __init__(self, in_channels, out_channels, temb_channels, num_layers=1, add_downsample=True, groups=32,
                 eps=1e-5, dropout=0.0, num_attention_heads=1, cross_attention_dim=1280,
                 transformer_layers_per_block=1, use_linear_projection=False, rng=None):
        super().__init__(in_channels, out_channels, temb_channels, num_layers=num_layers,
                         add_downsample=add_downsample, groups=groups, eps=eps, dropout=dropout, rng=rng)
        self.attentions = transformers(num_layers, out_channels, num_attention_heads, cross_attention_dim,
                                       transformer_layers_per_block, groups, use_linear_projection, rng)

    def layers(self):
        for resnet, attention in zip(self.resnets, self.attentions):
            yield resnet, attention
        if self.downsamplers is not None:
            yield self.downsamplers[0], None

    def forward(self, h, temb, encoder_hidden_states):
        skips = []
        for layer, attention in self.layers():
            if attention is None:  # the downsampler
                h = layer(h)
            else:
                h = attention(layer(h, temb), encoder_hidden_states)
            skips.append(h)
        return h, skips

    def backward(self, grad_out, grad_skips):
        g, dtemb, dcontext = grad_out, 0.0, 0.0
        for (layer, attention), dskip in reversed(list(zip(self.layers(), grad_skips))):
            if dskip is not None:
                g = g + dskip
            if attention is None:
                g = layer.backward(g)
                continue
            g, dc = attention.backward(g)
            g, dt = layer.backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc
        return g, dtemb, dcontext


class UNetMidBlock2DCrossAttn(UNetMidBlock2D):
    """resnets.0 -> (attentions.i -> resnets.i+1) for i < num_layers, at the lowest resolution.
    forward(h, temb, encoder_hidden_states) -> h; backward(dh) -> (dh, dtemb, d encoder_hidden_states)."""

    has_cross_attention = True

    def __init__(self, channels, temb_channels, num_layers=1, groups=32, eps=1e-5, dropout=0.0,
                 num_attention_heads=1, cross_attention_dim=1280, transformer_layers_per_block=1,
                 use_linear_projection=False, output_scale_factor=1.0, rng=None):
        super().__init__(channels, temb_channels, num_layers=num_layers, groups=groups, eps=eps, dropout=dropout,
                         add_attention=False, output_scale_factor=output_scale_factor, rng=rng)
        self.attentions = transformers(num_layers, channels, num_attention_heads, cross_attention_dim,
                                       transformer_layers_per_block, groups, use_linear_projection, rng)

    def forward(self, h, temb, encoder_hidden_states):
        h = self.resnets[0](h, temb)
        for attention, resnet in zip(self.attentions, self.resnets[1:]):
            h = resnet(attention(h, encoder_hidden_states), temb)
        return h

    def backward(self, grad_out):
        g, dtemb, dcontext = grad_out, 0.0, 0.0
        for i in reversed(range(len(self.attentions))):
            g, dt = self.resnets[i + 1].backward(g)
            g, dc = self.attentions[i].backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc
        g, dt = self.resnets[0].backward(g)
        return g, dtemb + dt, dcontext


class CrossAttnUpBlock2D(UpBlock2D):
    """forward(h, skips, temb, encoder_hidden_states): per layer, concatenate the next skip
    (from the end of `skips`), resnet, transformer; then the optional upsampler.
    backward(dh) -> (dh, dskips in the order of `skips`, dtemb, d encoder_hidden_states)."""

    has_cross_attention = True

    def __init__(self, in_channels, prev_output_channels, out_channels, temb_channels, num_layers=2,
                 add_upsample=True, groups=32, eps=1e-5, dropout=0.0, num_attention_heads=1,
                 cross_attention_dim=1280, transformer_layers_per_block=1, use_linear_projection=False, rng=None):
        super().__init__(in_channels, prev_output_channels, out_channels, temb_channels, num_layers=num_layers,
                         add_upsample=add_upsample, groups=groups, eps=eps, dropout=dropout, rng=rng)
        self.attentions = transformers(num_layers, out_channels, num_attention_heads, cross_attention_dim,
                                       transformer_layers_per_block, groups, use_linear_projection, rng)

    def forward(self, h, skips, temb, encoder_hidden_states):
        h_channels = []
        for i, (resnet, attention) in enumerate(zip(self.resnets, self.attentions)):
            skip = skips[len(skips) - 1 - i]
            h_channels.append(h.shape[1])
            h = resnet(np.concatenate([h, skip], axis=1), temb)  # (B, C_h + C_skip, H, W)
            h = attention(h, encoder_hidden_states)
        self.save_for_backward(h_channels)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h

    def backward(self, grad_out):
        (h_channels,) = self.saved()
        g = grad_out if self.upsamplers is None else self.upsamplers[0].backward(grad_out)
        n = len(self.resnets)
        dtemb, dcontext, dskips = 0.0, 0.0, [None] * n
        for i in reversed(range(n)):
            g, dc = self.attentions[i].backward(g)
            dcat, dt = self.resnets[i].backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc
            g, dskips[n - 1 - i] = dcat[:, : h_channels[i]], dcat[:, h_channels[i]:]
        return g, dskips, dtemb, dcontext


CROSS_DOWN_BLOCKS = {"CrossAttnDownBlock2D": CrossAttnDownBlock2D}
CROSS_UP_BLOCKS = {"CrossAttnUpBlock2D": CrossAttnUpBlock2D}
