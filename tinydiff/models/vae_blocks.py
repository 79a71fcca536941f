"""The encoder and decoder of AutoencoderKL (Rombach et al. 2022, sec. 3 and appendix G), in
diffusers' structure and parameter names, without any time embedding:

    Encoder: x -> conv_in -> DownEncoderBlock2D x L (resnets, then a downsampler except in the
             last) -> mid block (resnet, attention, resnet) -> conv_norm_out -> SiLU -> conv_out
    Decoder: z -> conv_in -> mid block -> UpDecoderBlock2D x L (layers_per_block + 1 resnets,
             then an upsampler except in the last) -> conv_norm_out -> SiLU -> conv_out

Every GroupNorm here uses eps = 1e-6 and the mid attention has a single head as wide as the
channels, as diffusers builds them for AutoencoderKL.
"""

import numpy as np

from tinydiff.models.attention_block import SpatialSelfAttention
from tinydiff.models.resnet import ResnetBlock2D
from tinydiff.nn import Conv2d, GroupNorm, Module, ModuleList, SiLU, Upsample2x

VAE_EPS = 1e-6  # diffusers' Encoder/Decoder pass resnet_eps=1e-6 and GroupNorm(eps=1e-6)


class EncoderDownsample(Module):
    """Halve H and W: pad one zero row at the bottom and one column at the right, then a 3x3
    convolution of stride 2 without padding (diffusers' Downsample2D with padding=0, as its
    VAE encoder uses; the symmetric padding=1 of the UNet's downsampler gives other pixels).

    forward(x (B, C, H, W)) -> (B, C, H/2, W/2) for even H, W."""

    def __init__(self, channels, rng=None):
        super().__init__()
        self.conv = Conv2d(channels, channels, 3, stride=2, padding=0, rng=rng)

    def forward(self, x):
        self.save_for_backward(x.shape)
        padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))  # (B, C, H, W) -> (B, C, H+1, W+1)
        return self.conv(padded)

    def backward(self, grad_out):
        (shape,) = self.saved()
        dpadded = self.conv.backward(grad_out)
        return dpadded[:, :, : shape[2], : shape[3]]  # drop the padding's gradient


class ResnetStack(Module):
    """num_layers resnets (no time embedding, no skips), then the resampler a subclass assigns
    under its diffusers name (RESAMPLER: "downsamplers" or "upsamplers"), a one-module
    ModuleList or None. forward(h (B, in_channels, H, W)) -> (B, out_channels, H', W')."""

    RESAMPLER = None

    def __init__(self, in_channels, out_channels, num_layers, groups, rng=None):
        super().__init__()
        self.resnets = ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, None, groups, VAE_EPS, rng=rng)
            for i in range(num_layers)
        ])

    def forward(self, h):
        for resnet in self.resnets:
            h = resnet(h)
        resampler = getattr(self, self.RESAMPLER)
        return h if resampler is None else resampler[0](h)

    def backward(self, grad_out):
        resampler = getattr(self, self.RESAMPLER)
        g = grad_out if resampler is None else resampler[0].backward(grad_out)
        for resnet in reversed(list(self.resnets)):
            g = resnet.backward(g)
        return g


class DownEncoderBlock2D(ResnetStack):
    """resnets, then optionally EncoderDownsample (H and W halved)."""

    RESAMPLER = "downsamplers"

    def __init__(self, in_channels, out_channels, num_layers, add_downsample, groups, rng=None):
        super().__init__(in_channels, out_channels, num_layers, groups, rng=rng)
        self.downsamplers = ModuleList([EncoderDownsample(out_channels, rng=rng)]) if add_downsample else None


class UpDecoderBlock2D(ResnetStack):
    """resnets, then optionally nearest 2x upsampling + conv (H and W doubled)."""

    RESAMPLER = "upsamplers"

    def __init__(self, in_channels, out_channels, num_layers, add_upsample, groups, rng=None):
        super().__init__(in_channels, out_channels, num_layers, groups, rng=rng)
        self.upsamplers = ModuleList([Upsample2x(out_channels, use_conv=True, rng=rng)]) if add_upsample else None


class VAEMidBlock2D(Module):
    """resnet -> attention (optional) -> resnet at the lowest resolution; diffusers'
    UNetMidBlock2D with temb_channels=None (parameter names resnets.0, attentions.0, resnets.1)."""

    def __init__(self, channels, groups, add_attention=True, rng=None):
        super().__init__()
        self.add_attention = add_attention
        self.attentions = ModuleList(
            [SpatialSelfAttention(channels, channels, groups, VAE_EPS, rng=rng)] if add_attention else [])
        self.resnets = ModuleList([ResnetBlock2D(channels, channels, None, groups, VAE_EPS, rng=rng)
                                   for _ in range(2)])

    def forward(self, h):
        h = self.resnets[0](h)
        if self.add_attention:
            h = self.attentions[0](h)
        return self.resnets[1](h)

    def backward(self, grad_out):
        g = self.resnets[1].backward(grad_out)
        if self.add_attention:
            g = self.attentions[0].backward(g)
        return self.resnets[0].backward(g)


class Encoder(Module):
    """forward(x (B, C_in, H, W)) -> moments (B, 2 * latent_channels, H / 2^(L-1), W / 2^(L-1))."""

    def __init__(self, in_channels, latent_channels, block_out_channels, layers_per_block, groups,
                 mid_block_add_attention, rng=None):
        super().__init__()
        channels = block_out_channels
        self.conv_in = Conv2d(in_channels, channels[0], 3, padding=1, rng=rng)
        blocks, out_ch = [], channels[0]
        for i, ch in enumerate(channels):
            in_ch, out_ch = out_ch, ch
            blocks.append(DownEncoderBlock2D(in_ch, out_ch, layers_per_block, i < len(channels) - 1, groups, rng=rng))
        self.down_blocks = ModuleList(blocks)
        self.mid_block = VAEMidBlock2D(channels[-1], groups, mid_block_add_attention, rng=rng)
        self.conv_norm_out = GroupNorm(groups, channels[-1], VAE_EPS)
        self.conv_act = SiLU()
        self.conv_out = Conv2d(channels[-1], 2 * latent_channels, 3, padding=1, rng=rng)  # mean and logvar

    def forward(self, x):
        h = self.conv_in(x)
        for block in self.down_blocks:
            h = block(h)
        h = self.mid_block(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))

    def backward(self, grad_out):
        g = self.conv_norm_out.backward(self.conv_act.backward(self.conv_out.backward(grad_out)))
        g = self.mid_block.backward(g)
        for block in reversed(list(self.down_blocks)):
            g = block.backward(g)
        return self.conv_in.backward(g)


class Decoder(Module):
    """forward(z (B, latent_channels, h, w)) -> (B, C_out, h * 2^(L-1), w * 2^(L-1))."""

    def __init__(self, latent_channels, out_channels, block_out_channels, layers_per_block, groups,
                 mid_block_add_attention, rng=None):
        super().__init__()
        channels = block_out_channels[::-1]
        self.conv_in = Conv2d(latent_channels, channels[0], 3, padding=1, rng=rng)
        self.mid_block = VAEMidBlock2D(channels[0], groups, mid_block_add_attention, rng=rng)
        blocks, out_ch = [], channels[0]
        for i, ch in enumerate(channels):
            in_ch, out_ch = out_ch, ch
            blocks.append(UpDecoderBlock2D(in_ch, out_ch, layers_per_block + 1, i < len(channels) - 1, groups, rng=rng))
        self.up_blocks = ModuleList(blocks)
        self.conv_norm_out = GroupNorm(groups, channels[-1], VAE_EPS)
        self.conv_act = SiLU()
        self.conv_out = Conv2d(channels[-1], out_channels, 3, padding=1, rng=rng)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            h = block(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))

    def backward(self, grad_out):
        g = self.conv_norm_out.backward(self.conv_act.backward(self.conv_out.backward(grad_out)))
        for block in reversed(list(self.up_blocks)):
            g = block.backward(g)
        return self.conv_in.backward(self.mid_block.backward(g))
