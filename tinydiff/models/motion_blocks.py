"""The temporal ("motion") layers of the video UNet, with diffusers' AnimateDiff structure and
names, and the UNet blocks that carry them.

Factorised space-time attention (Ho et al. 2022, "Video Diffusion Models", sec. 3): the 2-D
layers see each frame alone (the frames folded into the batch); a temporal attention after them
lets each pixel position look at itself in the other frames. AnimateDiff (Guo et al. 2023,
sec. 4.2) inserts such a motion module after every resnet / spatial transformer of a
pretrained text-to-image UNet, with its output projection initialised to zero, so the inflated
UNet starts exactly as the image model, frame by frame.

    AnimateDiffTransformer3D  x (B F, C, H, W) -> GroupNorm over each clip -> tokens: for each
                              (clip, pixel), its F frames (B H W, F, C) -> proj_in
                              -> TemporalTransformerBlock(s) -> proj_out (zero at init) -> + x
    TemporalTransformerBlock  h = h + attn1(norm1(h) + pe)    self-attention over the frames
                              h = h + attn2(norm2(h) + pe)    again (double_self_attention)
                              h = h + ff(norm3(h))            GEGLU feed-forward
                              pe: sinusoidal frame-position embeddings (Vaswani et al. 2017, sec. 3.5)

Notation: B clips, F frames, C channels, H x W pixels, D token width (= C here).
DownBlockMotion, CrossAttnDownBlockMotion, UNetMidBlockCrossAttnMotion, UpBlockMotion and
CrossAttnUpBlockMotion are the 2-D blocks of tinydiff.models.unet_blocks and
unet_condition_blocks (adopted: the same modules under the same names) plus `motion_modules`:
their attend(i, h, context) runs the 2-D block's own, then motion_modules[i]. Their context is
FramesContext(encoder_hidden_states (B F, M, D_ctx), num_frames).
"""

from collections import namedtuple

import numpy as np

from tinydiff.models.unet_blocks import DownBlock2D, LayeredBlock, UpBlock2D
from tinydiff.models.unet_condition_blocks import UNetMidBlock2DCrossAttn
from tinydiff.nn import GroupNorm, LayerNorm, Linear, Module, ModuleList, MultiHeadAttention
from tinydiff.nn.checks import check_float_array, check_positive_int
from tinydiff.nn.feedforward import FeedForward

FramesContext = namedtuple("FramesContext", ["encoder_hidden_states", "num_frames"])


def sinusoidal_positions(max_seq_length, dim):
    """(max_seq_length, dim) float64: pe[p, 2i] = sin(p w_i), pe[p, 2i+1] = cos(p w_i) with
    w_i = 10000^(-2i / dim) (Vaswani et al. 2017, sec. 3.5; diffusers' SinusoidalPositionalEmbedding)."""
    position = np.arange(max_seq_length, dtype=np.float64)[:, None]  # (L, 1)
    w = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-np.log(10000.0) / dim))  # (ceil(dim/2),)
    pe = np.zeros((max_seq_length, dim))
    pe[:, 0::2] = np.sin(position * w)
    pe[:, 1::2] = np.cos(position * w[: dim // 2])
    return pe


class SinusoidalPositionalEmbedding(Module):
    """forward(x (N, F, dim)) -> x + pe[:, :F]; backward(dout) -> dout. pe (1, max_seq_length, dim)
    is a fixed buffer, not a parameter (diffusers keeps it in the state dict as pos_embed.pe)."""

    def __init__(self, embed_dim, max_seq_length=32):
        super().__init__()
        self.max_seq_length = check_positive_int(max_seq_length, "max_seq_length")
        self.embed_dim = check_positive_int(embed_dim, "embed_dim")
        self.cast_buffers(np.float32)

    def cast_buffers(self, dtype):
        # from the float64 sinusoids, so that a float64 model holds them to float64's precision
        self.pe = sinusoidal_positions(self.max_seq_length, self.embed_dim)[None].astype(dtype)

    def forward(self, x):
        if x.shape[1] > self.max_seq_length:
            raise ValueError(f"SinusoidalPositionalEmbedding: {x.shape[1]} frames, more than the "
                             f"{self.max_seq_length} frame positions it has (motion_max_seq_length)")
        return x + self.pe[:, :x.shape[1]]

    def backward(self, grad_out):
        return grad_out

    def extra_repr(self):
        return f"max_seq_length={self.max_seq_length}"


class TemporalTransformerBlock(Module):
    """diffusers' BasicTransformerBlock with double_self_attention=True and sinusoidal
    positional embeddings (its configuration inside AnimateDiffTransformer3D): both attentions
    attend over the sequence itself, the frames of one pixel.

    forward(h (N, F, dim)) -> (N, F, dim) with F <= max_seq_length; backward(dout) -> dh."""

    def __init__(self, dim, num_attention_heads, max_seq_length=32, dropout=0.0, norm_eps=1e-5, rng=None):
        super().__init__()
        self.pos_embed = SinusoidalPositionalEmbedding(dim, max_seq_length)
        self.norm1 = LayerNorm(dim, norm_eps)
        self.attn1 = MultiHeadAttention(dim, num_attention_heads, bias=False, dropout=dropout, rng=rng)
        self.norm2 = LayerNorm(dim, norm_eps)
        self.attn2 = MultiHeadAttention(dim, num_attention_heads, bias=False, dropout=dropout, rng=rng)
        self.norm3 = LayerNorm(dim, norm_eps)
        self.ff = FeedForward(dim, dropout=dropout, rng=rng)

    def forward(self, h):
        # Guo et al. 2023, sec. 4.2: self-attention along the frame axis, frame positions added first
        h = h + self.attn1(self.pos_embed(self.norm1(h)))
        h = h + self.attn2(self.pos_embed(self.norm2(h)))
        return h + self.ff(self.norm3(h))

    def backward(self, grad_out):
        # pos_embed adds a constant: its backward is the identity, and it keeps no cache
        g = grad_out + self.norm3.backward(self.ff.backward(grad_out))
        g = g + self.norm2.backward(self.pos_embed.backward(self.attn2.backward(g)))
        return g + self.norm1.backward(self.pos_embed.backward(self.attn1.backward(g)))


class AnimateDiffTransformer3D(Module):
    """A motion module: temporal attention at every pixel of a feature map of frames.

    forward(x (B F, C, H, W), num_frames F) -> (B F, C, H, W), the frames of each clip
    consecutive (clip-major, as the video UNet folds them); backward(dout) -> dx.

    Parameters (diffusers' names)
    ----------
    num_attention_heads : int
        Heads; attention_head_dim = in_channels / heads (diffusers passes both).
    in_channels : int
        C; the token width is C too.
    num_layers : int
        TemporalTransformerBlocks.
    norm_num_groups : int
        Groups of the GroupNorm (eps 1e-6), whose statistics span all F frames of a clip.
    max_seq_length : int
        Frame positions (diffusers' num_positional_embeddings = motion_max_seq_length).
    zero_init : bool
        proj_out's weight and bias start at zero (Guo et al. 2023, sec. 4.2), so the module
        starts as the identity.
    """

    def __init__(self, num_attention_heads, in_channels, num_layers=1, norm_num_groups=32, max_seq_length=32,
                 dropout=0.0, zero_init=True, rng=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        if in_channels % check_positive_int(num_attention_heads, "num_attention_heads"):
            raise ValueError(f"AnimateDiffTransformer3D: in_channels={in_channels} must be divisible by "
                             f"num_attention_heads={num_attention_heads}")
        self.norm = GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        self.proj_in = Linear(in_channels, in_channels, rng=rng)
        self.transformer_blocks = ModuleList([
            TemporalTransformerBlock(in_channels, num_attention_heads, max_seq_length, dropout=dropout, rng=rng)
            for _ in range(check_positive_int(num_layers, "num_layers"))
        ])
        self.proj_out = Linear(in_channels, in_channels, rng=rng)
        if zero_init:
            self.proj_out.weight.data[...] = 0.0
            self.proj_out.bias.data[...] = 0.0

    def forward(self, x, num_frames):
        check_float_array(x, "x", ndim=4, dtype=self.norm.weight.dtype)
        F = check_positive_int(num_frames, "num_frames")
        BF, C, H, W = x.shape
        if C != self.in_channels or BF % F:
            raise ValueError(f"AnimateDiffTransformer3D: x must be (B * num_frames, C={self.in_channels}, H, W) "
                             f"with num_frames={F}, got shape {x.shape}")
        B = BF // F
        h = x.reshape(B, F, C, H, W).transpose(0, 2, 1, 3, 4)  # (B F, C, H, W) -> (B, C, F, H, W)
        h = self.norm(np.ascontiguousarray(h))  # group statistics over all frames of a clip
        h = h.transpose(0, 3, 4, 2, 1).reshape(B * H * W, F, C)  # (B, C, F, H, W) -> (B H W, F, C)
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h)
        h = self.proj_out(h)
        self.save_for_backward(B, F, H, W)
        h = h.reshape(B, H, W, F, C).transpose(0, 3, 4, 1, 2)  # (B H W, F, C) -> (B, F, C, H, W)
        return h.reshape(BF, C, H, W) + x

    def backward(self, grad_out):
        B, F, H, W = self.saved()
        C = self.in_channels
        g = grad_out.reshape(B, F, C, H, W).transpose(0, 3, 4, 1, 2).reshape(B * H * W, F, C)  # -> tokens
        g = self.proj_out.backward(g)
        for block in reversed(list(self.transformer_blocks)):
            g = block.backward(g)
        g = self.proj_in.backward(g)
        g = g.reshape(B, H, W, F, C).transpose(0, 4, 3, 1, 2)  # (B H W, F, C) -> (B, C, F, H, W)
        g = self.norm.backward(np.ascontiguousarray(g))
        return g.transpose(0, 2, 1, 3, 4).reshape(B * F, C, H, W) + grad_out  # -> (B F, C, H, W)


class MotionModules(Module):
    """`motion_modules`: layers_per_block AnimateDiffTransformer3D over in_channels, one per
    layer of a UNet block (MotionAdapter's down_blocks.i / mid_block / up_blocks.i)."""

    def __init__(self, in_channels, layers_per_block=2, transformer_layers_per_block=1, num_attention_heads=8,
                 norm_num_groups=32, max_seq_length=32, rng=None):
        super().__init__()
        self.motion_modules = ModuleList([
            AnimateDiffTransformer3D(num_attention_heads, in_channels, transformer_layers_per_block,
                                     norm_num_groups, max_seq_length, rng=rng)
            for _ in range(layers_per_block)
        ])


def adopt(block, source, motion_modules, count):
    """Make `block` hold the 2-D block `source`'s modules under their names (the same objects),
    then motion_modules (a ModuleList of `count` AnimateDiffTransformer3D)."""
    Module.__init__(block)
    vars(block).update(vars(source))
    if not isinstance(motion_modules, ModuleList) or len(motion_modules) != count:
        raise ValueError(f"{type(block).__name__}: motion_modules must be a ModuleList of {count} motion modules, "
                         f"got {motion_modules!r:.80}")
    block.motion_modules = motion_modules


def attend_with_motion(block, i, h, context):
    """A motion block's attend: the 2-D block's (LayeredBlock.attend: its transformer, if any,
    reading the text states), then motion_modules[i] over the frames. context: FramesContext."""
    states, num_frames = context
    return block.motion_modules[i](LayeredBlock.attend(block, i, h, states), num_frames)


def attend_with_motion_backward(block, i, grad_out):
    """attend_with_motion's backward: (dh, d encoder_hidden_states or 0.0)."""
    return LayeredBlock.attend_backward(block, i, block.motion_modules[i].backward(grad_out))


class DownBlockMotion(DownBlock2D):
    """A DownBlock2D (its resnets and downsampler, adopted) with motion_modules[i] after resnet i.
    run(h, temb, FramesContext) -> (h_out, skips), as DownBlock2D's."""

    attend = attend_with_motion
    attend_backward = attend_with_motion_backward

    def __init__(self, block, motion_modules):
        adopt(self, block, motion_modules, len(block.resnets))


class CrossAttnDownBlockMotion(DownBlockMotion):
    """A CrossAttnDownBlock2D with motion_modules[i] after resnet i and its transformer."""

    has_cross_attention = True


class UpBlockMotion(UpBlock2D):
    """An UpBlock2D (its resnets and upsampler, adopted) with motion_modules[i] after resnet i.
    run(h, skips, temb, FramesContext) -> h, as UpBlock2D's."""

    attend = attend_with_motion
    attend_backward = attend_with_motion_backward

    def __init__(self, block, motion_modules):
        adopt(self, block, motion_modules, len(block.resnets))


class CrossAttnUpBlockMotion(UpBlockMotion):
    """A CrossAttnUpBlock2D with motion_modules[i] after resnet i and its transformer."""

    has_cross_attention = True


class UNetMidBlockCrossAttnMotion(UNetMidBlock2DCrossAttn):
    """resnets.0 -> (attentions.i -> motion_modules.i -> resnets.i+1); without motion modules
    (use_motion_mid_block=False, an empty list) it is the UNetMidBlock2DCrossAttn it adopted.
    forward(h, temb, FramesContext) -> h; backward(dh) -> (dh, dtemb, d encoder_hidden_states)."""

    def __init__(self, block, motion_modules):
        adopt(self, block, motion_modules, len(block.attentions) if len(motion_modules) else 0)

    def forward(self, h, temb, context):
        states, num_frames = context
        h = self.resnets[0](h, temb)
        for i, (attention, resnet) in enumerate(zip(self.attentions, self.resnets[1:])):
            h = attention(h, states)
            if len(self.motion_modules):
                h = self.motion_modules[i](h, num_frames)
            h = resnet(h, temb)
        return h

    def backward(self, grad_out):
        g, dtemb, dcontext = grad_out, 0.0, 0.0
        for i in reversed(range(len(self.attentions))):
            g, dt = self.resnets[i + 1].backward(g)
            if len(self.motion_modules):
                g = self.motion_modules[i].backward(g)
            g, dc = self.attentions[i].backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc
        g, dt = self.resnets[0].backward(g)
        return g, dtemb + dt, dcontext


MOTION_DOWN_BLOCKS = {"DownBlock2D": DownBlockMotion, "CrossAttnDownBlock2D": CrossAttnDownBlockMotion}
MOTION_UP_BLOCKS = {"UpBlock2D": UpBlockMotion, "CrossAttnUpBlock2D": CrossAttnUpBlockMotion}
