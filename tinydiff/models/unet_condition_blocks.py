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

    def forward(self, h, temb, encoder_hidden_states):
        return self.run(h, temb, encoder_hidden_states)

    def backward(self, grad_out, grad_skips):
        return self.run_backward(grad_out, grad_skips)


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
        return self.run(h, skips, temb, encoder_hidden_states)

    def backward(self, grad_out):
        return self.run_backward(grad_out)


CROSS_DOWN_BLOCKS = {"CrossAttnDownBlock2D": CrossAttnDownBlock2D}
CROSS_UP_BLOCKS = {"CrossAttnUpBlock2D": CrossAttnUpBlock2D}
