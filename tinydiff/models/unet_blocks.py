"""The blocks of UNet2DModel, with diffusers' structure and parameter names.

A down block runs its resnets (each followed by attention in the Attn variant) and then
optionally halves the resolution; every intermediate output is also handed to the up path as
a skip connection. An up block concatenates one skip per resnet onto its input channels.
Backward walks each block in reverse; a down block's backward receives the gradients that
its skip outputs got from the up path, an up block's backward returns them.

The cross-attention blocks (tinydiff.models.unet_condition_blocks) reuse run / run_backward
with a Transformer2DModel as each layer's attention and encoder_hidden_states as `context`; the
video UNet's blocks (tinydiff.models.motion_blocks) reuse them too, overriding only attend (what
follows each resnet) to add a motion module.
"""

import numpy as np

from tinydiff.models.attention_block import SpatialSelfAttention
from tinydiff.models.resnet import ResnetBlock2D
from tinydiff.nn import Downsample2x, Linear, Module, ModuleList, SiLU, Upsample2x


class TimestepEmbedding(Module):
    """linear_1 -> SiLU -> linear_2, lifting the sinusoidal features to the embedding width."""

    def __init__(self, in_channels, time_embed_dim, rng=None):
        super().__init__()
        self.linear_1 = Linear(in_channels, time_embed_dim, rng=rng)
        self.act = SiLU()
        self.linear_2 = Linear(time_embed_dim, time_embed_dim, rng=rng)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))

    def backward(self, grad_out):
        return self.linear_1.backward(self.act.backward(self.linear_2.backward(grad_out)))


class LayeredBlock(Module):
    """What the down and up blocks share: what follows each resnet.

    attend(i, h, context) is h after resnet i: unchanged, through attentions[i]'s
    self-attention, or, in a block with has_cross_attention, through a Transformer2DModel that
    also reads context (encoder_hidden_states). The video UNet's blocks
    (tinydiff.models.motion_blocks) override it to add a motion module after it."""

    has_cross_attention = False

    def attend(self, i, h, context):
        if self.attentions is None:
            return h
        return self.attentions[i](h, context) if self.has_cross_attention else self.attentions[i](h)

    def attend_backward(self, i, grad_out):
        """attend's backward: (dh, d context), the latter 0.0 without cross-attention."""
        if self.attentions is None:
            return grad_out, 0.0
        if self.has_cross_attention:
            return self.attentions[i].backward(grad_out)
        return self.attentions[i].backward(grad_out), 0.0


class DownBlock2D(LayeredBlock):
    """forward(h (B, C_in, H, W), temb) -> (h_out, skips): skips are the output of each resnet
    (and of the downsampler, when there is one); h_out is the last of them."""

    has_attention = False

    def __init__(self, in_channels, out_channels, temb_channels, num_layers=1, add_downsample=True,
                 groups=32, eps=1e-5, dropout=0.0, attention_head_dim=8, rng=None):
        super().__init__()
        self.resnets = ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels,
                          groups, eps, dropout, rng=rng)
            for i in range(num_layers)
        ])
        self.attentions = ModuleList([
            SpatialSelfAttention(out_channels, attention_head_dim, groups, eps, rng=rng)
            for _ in range(num_layers)
        ]) if self.has_attention else None
        self.downsamplers = ModuleList([Downsample2x(out_channels, rng=rng)]) if add_downsample else None

    def layers(self):
        """The modules that produce each skip, in forward order, each with the index i of
        attend(i, ...) after it (None after the downsampler)."""
        for i, resnet in enumerate(self.resnets):
            yield (resnet, i)
        if self.downsamplers is not None:
            yield (self.downsamplers[0], None)

    def forward(self, h, temb):
        return self.run(h, temb, None)

    def backward(self, grad_out, grad_skips):
        """grad_out: gradient of h_out; grad_skips: one gradient per skip (None if unused).
        Returns (dh, dtemb)."""
        g, dtemb, _ = self.run_backward(grad_out, grad_skips)
        return g, dtemb

    def run(self, h, temb, context):
        """forward, with the attentions reading context when the block has cross-attention."""
        skips = []
        for layer, i in self.layers():
            h = layer(h) if i is None else self.attend(i, layer(h, temb), context)
            skips.append(h)
        return h, skips

    def run_backward(self, grad_out, grad_skips):
        """backward, also returning d context: (dh, dtemb, dcontext)."""
        g, dtemb, dcontext = grad_out, 0.0, 0.0
        for (layer, i), dskip in reversed(list(zip(self.layers(), grad_skips))):
            if dskip is not None:
                g = g + dskip
            if i is None:
                g = layer.backward(g)
                continue
            g, dc = self.attend_backward(i, g)
            g, dt = layer.backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc
        return g, dtemb, dcontext


class AttnDownBlock2D(DownBlock2D):
    has_attention = True


class UNetMidBlock2D(Module):
    """resnet -> (attention -> resnet) x num_layers, at the lowest resolution."""

    has_cross_attention = False

    def __init__(self, channels, temb_channels, num_layers=1, groups=32, eps=1e-5, dropout=0.0,
                 attention_head_dim=8, add_attention=True, output_scale_factor=1.0, rng=None):
        super().__init__()
        self.add_attention = add_attention
        self.attentions = ModuleList([
            SpatialSelfAttention(channels, attention_head_dim, groups, eps, output_scale_factor, rng=rng)
            for _ in range(num_layers if add_attention else 0)
        ])
        self.resnets = ModuleList([
            ResnetBlock2D(channels, channels, temb_channels, groups, eps, dropout, output_scale_factor, rng=rng)
            for _ in range(num_layers + 1)
        ])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        for i, resnet in enumerate(self.resnets[1:]):
            if self.add_attention:
                h = self.attentions[i](h)
            h = resnet(h, temb)
        return h

    def backward(self, grad_out):
        g, dtemb = grad_out, 0.0
        for i in reversed(range(1, len(self.resnets))):
            g, dt = self.resnets[i].backward(g)
            dtemb = dtemb + dt
            if self.add_attention:
                g = self.attentions[i - 1].backward(g)
        g, dt = self.resnets[0].backward(g)
        return g, dtemb + dt


class UpBlock2D(LayeredBlock):
    """forward(h, skips, temb): each resnet first concatenates the next skip (taken from the
    end of `skips`) onto h's channels; then optionally doubles the resolution."""

    has_attention = False

    def __init__(self, in_channels, prev_output_channels, out_channels, temb_channels, num_layers=2,
                 add_upsample=True, groups=32, eps=1e-5, dropout=0.0, attention_head_dim=8, rng=None):
        super().__init__()
        resnets = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            h_channels = prev_output_channels if i == 0 else out_channels
            resnets.append(ResnetBlock2D(h_channels + skip_channels, out_channels, temb_channels,
                                         groups, eps, dropout, rng=rng))
        self.resnets = ModuleList(resnets)
        self.attentions = ModuleList([
            SpatialSelfAttention(out_channels, attention_head_dim, groups, eps, rng=rng)
            for _ in range(num_layers)
        ]) if self.has_attention else None
        self.upsamplers = (
            ModuleList([Upsample2x(out_channels, use_conv=True, rng=rng)]) if add_upsample else None
        )

    def forward(self, h, skips, temb):
        return self.run(h, skips, temb, None)

    def backward(self, grad_out):
        """Returns (dh, dskips in the order of `skips`, dtemb)."""
        g, dskips, dtemb, _ = self.run_backward(grad_out)
        return g, dskips, dtemb

    def run(self, h, skips, temb, context):
        """forward, with the attentions reading context when the block has cross-attention."""
        h_channels = []
        for i, resnet in enumerate(self.resnets):
            skip = skips[len(skips) - 1 - i]
            h_channels.append(h.shape[1])
            h = resnet(np.concatenate([h, skip], axis=1), temb)  # (B, C_h + C_skip, H, W)
            h = self.attend(i, h, context)
        self.save_for_backward(h_channels)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h)
        return h

    def run_backward(self, grad_out):
        """backward, also returning d context: (dh, dskips, dtemb, dcontext)."""
        (h_channels,) = self.saved()
        g = grad_out if self.upsamplers is None else self.upsamplers[0].backward(grad_out)
        n = len(self.resnets)
        dtemb, dcontext, dskips = 0.0, 0.0, [None] * n
        for i in reversed(range(n)):
            g, dc = self.attend_backward(i, g)
            dcat, dt = self.resnets[i].backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc
            g, dskips[n - 1 - i] = dcat[:, : h_channels[i]], dcat[:, h_channels[i]:]
        return g, dskips, dtemb, dcontext


class AttnUpBlock2D(UpBlock2D):
    has_attention = True


DOWN_BLOCKS = {"DownBlock2D": DownBlock2D, "AttnDownBlock2D": AttnDownBlock2D}
UP_BLOCKS = {"UpBlock2D": UpBlock2D, "AttnUpBlock2D": AttnUpBlock2D}
