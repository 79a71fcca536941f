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
                              h = h + attn2(norm2(h) + pe)    again (double_self_attention), or with
                                                              cross_attention_dim: attends to the clip's
                                                              text states (a tinydiff extension)
                              h = h + ff(norm3(h))            GEGLU feed-forward
                              pe: sinusoidal frame-position embeddings (Vaswani et al. 2017, sec. 3.5)

Notation: B clips, F frames, C channels, H x W pixels, D token width (= C here).
DownBlockMotion, CrossAttnDownBlockMotion, UNetMidBlockCrossAttnMotion, UpBlockMotion and
CrossAttnUpBlockMotion are the 2-D blocks of tinydiff.models.unet_blocks and
unet_condition_blocks (adopted: the same modules under the same names) plus `motion_modules`:
their attend(i, h, context) runs the 2-D block's own, then motion_modules[i]. Their context is
FramesContext(encoder_hidden_states (B F, M, D_ctx), num_frames).

Text-conditioned motion modules (cross_attention_dim set; MotionAdapter's
motion_cross_attention_dim) are a tinydiff extension: diffusers' UNetMotionModel never passes
the text to its motion modules, which infer the motion from the frames' content (a large image
UNet draws a running horse). A tiny shapes model has no such cue: "moving left" and "moving
right" draw the same first frame, so only the caption can tell the motion modules which way.
Each pixel's F frames then attend, in attn2, to the N text tokens of its clip.
"""

from collections import namedtuple

import numpy as np

from tinydiff.models.unet_blocks import DownBlock2D, UpBlock2D
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
    attend over the sequence itself, the frames of one pixel. With cross_attention_dim (diffusers'
    cross_attention_dim=D, double_self_attention=False) attn2 attends to context instead.

    forward(h (N, F, dim), context (N, M, cross_attention_dim) or None) -> (N, F, dim) with
    F <= max_seq_length; backward(dout) -> dh, or (dh, d context) with cross-attention."""

    def __init__(self, dim, num_attention_heads, max_seq_length=32, dropout=0.0, norm_eps=1e-5,
                 cross_attention_dim=None, rng=None):
        super().__init__()
        self.pos_embed = SinusoidalPositionalEmbedding(dim, max_seq_length)
        self.norm1 = LayerNorm(dim, norm_eps)
        self.attn1 = MultiHeadAttention(dim, num_attention_heads, bias=False, dropout=dropout, rng=rng)
        self.norm2 = LayerNorm(dim, norm_eps)
        self.attn2 = MultiHeadAttention(dim, num_attention_heads, cross_attention_dim, bias=False, dropout=dropout,
                                        rng=rng)
        self.norm3 = LayerNorm(dim, norm_eps)
        self.ff = FeedForward(dim, dropout=dropout, rng=rng)

    def forward(self, h, context=None):
        # Guo et al. 2023, sec. 4.2: self-attention along the frame axis, frame positions added first
        h = h + self.attn1(self.pos_embed(self.norm1(h)))
        h = h + self.attn2(self.pos_embed(self.norm2(h)), context)  # context None: self-attention
        return h + self.ff(self.norm3(h))

    def backward(self, grad_out):
        # pos_embed adds a constant: its backward is the identity, and it keeps no cache
        g = grad_out + self.norm3.backward(self.ff.backward(grad_out))
        d2, dcontext = self.attn2.backward(g), None
        if self.attn2.context_dim is not None:
            d2, dcontext = d2
        g = g + self.norm2.backward(self.pos_embed.backward(d2))
        g = g + self.norm1.backward(self.pos_embed.backward(self.attn1.backward(g)))
        return g if dcontext is None else (g, dcontext)


class AnimateDiffTransformer3D(Module):
    """A motion module: temporal attention at every pixel of a feature map of frames.

    forward(x (B F, C, H, W), num_frames F, encoder_hidden_states (B, M, cross_attention_dim)
    or None) -> (B F, C, H, W), the frames of each clip consecutive (clip-major, as the video
    UNet folds them); backward(dout) -> dx, or (dx, d encoder_hidden_states) with
    cross_attention_dim. The text states are one per clip (diffusers' wants them repeated for
    every pixel, (B H W, M, D)); every pixel of a clip attends to its clip's.

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
    cross_attention_dim : int or None
        None: attn2 is self-attention (AnimateDiff's). D: attn2 attends to the text states
        (a tinydiff extension; see the module docstring).
    """

    def __init__(self, num_attention_heads, in_channels, num_layers=1, norm_num_groups=32, max_seq_length=32,
                 dropout=0.0, zero_init=True, cross_attention_dim=None, rng=None):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.cross_attention_dim = (None if cross_attention_dim is None
                                    else check_positive_int(cross_attention_dim, "cross_attention_dim"))
        if in_channels % check_positive_int(num_attention_heads, "num_attention_heads"):
            raise ValueError(f"AnimateDiffTransformer3D: in_channels={in_channels} must be divisible by "
                             f"num_attention_heads={num_attention_heads}")
        self.norm = GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        self.proj_in = Linear(in_channels, in_channels, rng=rng)
        self.transformer_blocks = ModuleList([
            TemporalTransformerBlock(in_channels, num_attention_heads, max_seq_length, dropout=dropout,
                                     cross_attention_dim=cross_attention_dim, rng=rng)
            for _ in range(check_positive_int(num_layers, "num_layers"))
        ])
        self.proj_out = Linear(in_channels, in_channels, rng=rng)
        if zero_init:
            self.proj_out.weight.data[...] = 0.0
            self.proj_out.bias.data[...] = 0.0

    def forward(self, x, num_frames, encoder_hidden_states=None):
        check_float_array(x, "x", ndim=4, dtype=self.norm.weight.dtype)
        F = check_positive_int(num_frames, "num_frames")
        BF, C, H, W = x.shape
        if C != self.in_channels or BF % F:
            raise ValueError(f"AnimateDiffTransformer3D: x must be (B * num_frames, C={self.in_channels}, H, W) "
                             f"with num_frames={F}, got shape {x.shape}")
        B, context = BF // F, None
        if (encoder_hidden_states is None) != (self.cross_attention_dim is None):
            raise ValueError(f"AnimateDiffTransformer3D: pass encoder_hidden_states exactly when built with "
                             f"cross_attention_dim (it is {self.cross_attention_dim})")
        if encoder_hidden_states is not None:
            check_float_array(encoder_hidden_states, "encoder_hidden_states", ndim=3, dtype=x.dtype)
            if encoder_hidden_states.shape[0] != B:
                raise ValueError(f"AnimateDiffTransformer3D: encoder_hidden_states must be (B={B}, M, D), one per "
                                 f"clip, got shape {encoder_hidden_states.shape}")
            context = np.repeat(encoder_hidden_states, H * W, axis=0)  # (B, M, D) -> (B H W, M, D), clip-major
        h = x.reshape(B, F, C, H, W).transpose(0, 2, 1, 3, 4)  # (B F, C, H, W) -> (B, C, F, H, W)
        h = self.norm(np.ascontiguousarray(h))  # group statistics over all frames of a clip
        h = h.transpose(0, 3, 4, 2, 1).reshape(B * H * W, F, C)  # (B, C, F, H, W) -> (B H W, F, C)
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context)
        h = self.proj_out(h)
        self.save_for_backward(B, F, H, W)
        h = h.reshape(B, H, W, F, C).transpose(0, 3, 4, 1, 2)  # (B H W, F, C) -> (B, F, C, H, W)
        return h.reshape(BF, C, H, W) + x

    def backward(self, grad_out):
        B, F, H, W = self.saved()
        C = self.in_channels
        g = grad_out.reshape(B, F, C, H, W).transpose(0, 3, 4, 1, 2).reshape(B * H * W, F, C)  # -> tokens
        g, dcontext = self.proj_out.backward(g), 0.0
        for block in reversed(list(self.transformer_blocks)):
            g = block.backward(g)
            if self.cross_attention_dim is not None:
                g, dcontext = g[0], dcontext + g[1]
        g = self.proj_in.backward(g)
        g = g.reshape(B, H, W, F, C).transpose(0, 4, 3, 1, 2)  # (B H W, F, C) -> (B, C, F, H, W)
        g = self.norm.backward(np.ascontiguousarray(g))
        dx = g.transpose(0, 2, 1, 3, 4).reshape(B * F, C, H, W) + grad_out  # -> (B F, C, H, W)
        if self.cross_attention_dim is None:
            return dx
        return dx, dcontext.reshape((B, H * W) + dcontext.shape[1:]).sum(axis=1)  # (B H W, M, D) -> (B, M, D)


class MotionModules(Module):
    """`motion_modules`: layers_per_block AnimateDiffTransformer3D over in_channels, one per
    layer of a UNet block (MotionAdapter's down_blocks.i / mid_block / up_blocks.i)."""

    def __init__(self, in_channels, layers_per_block=2, transformer_layers_per_block=1, num_attention_heads=8,
                 norm_num_groups=32, max_seq_length=32, cross_attention_dim=None, rng=None):
        super().__init__()
        self.motion_modules = ModuleList([
            AnimateDiffTransformer3D(num_attention_heads, in_channels, transformer_layers_per_block,
                                     norm_num_groups, max_seq_length, cross_attention_dim=cross_attention_dim, rng=rng)
            for _ in range(layers_per_block)
        ])


def run_motion(module, h, context):
    """module(h, F), with its clip's text states when the module reads text: the context's
    states are repeated per frame (B F, M, D), so every F-th row is one clip's (B, M, D)."""
    states, num_frames = context
    if module.cross_attention_dim is None:
        return module(h, num_frames)
    return module(h, num_frames, states[::num_frames])


def motion_backward(module, grad_out):
    """run_motion's backward: (dh, d states (B F, M, D) or 0.0); a clip's text gradient goes to
    its first frame's row (UNetMotionModel.backward sums each clip's F rows)."""
    if module.cross_attention_dim is None:
        return module.backward(grad_out), 0.0
    dh, dclip = module.backward(grad_out)
    dstates = np.zeros((grad_out.shape[0],) + dclip.shape[1:], dtype=dclip.dtype)
    dstates[::grad_out.shape[0] // dclip.shape[0]] = dclip
    return dh, dstates


def adopt(block, source, motion_modules, count):
    """Make `block` hold the 2-D block `source`'s modules under their names (the same objects),
    then motion_modules (a ModuleList of `count` AnimateDiffTransformer3D)."""
    Module.__init__(block)
    vars(block).update(vars(source))
    if not isinstance(motion_modules, ModuleList) or len(motion_modules) != count:
        raise ValueError(f"{type(block).__name__}: motion_modules must be a ModuleList of {count} motion modules, "
                         f"got {motion_modules!r:.80}")
    block.motion_modules = motion_modules


class AfterEachResnet:
    """What DownBlockMotion and UpBlockMotion add to their 2-D block (next in the MRO): the
    block adopted, and motion_modules[i] after what follows resnet i (its transformer, if any)."""

    def __init__(self, block, motion_modules):
        adopt(self, block, motion_modules, len(block.resnets))

    def attend(self, i, h, context):
        return run_motion(self.motion_modules[i], super().attend(i, h, context.encoder_hidden_states), context)

    def attend_backward(self, i, grad_out):
        g, dmotion = motion_backward(self.motion_modules[i], grad_out)
        dh, dcontext = super().attend_backward(i, g)
        return dh, dcontext + dmotion


class DownBlockMotion(AfterEachResnet, DownBlock2D):
    """A DownBlock2D (its resnets and downsampler, adopted) with motion_modules[i] after resnet i.
    run(h, temb, FramesContext) -> (h_out, skips), as DownBlock2D's."""


class CrossAttnDownBlockMotion(DownBlockMotion):
    """A CrossAttnDownBlock2D with motion_modules[i] after resnet i and its transformer."""

    has_cross_attention = True


class UpBlockMotion(AfterEachResnet, UpBlock2D):
    """An UpBlock2D (its resnets and upsampler, adopted) with motion_modules[i] after resnet i.
    run(h, skips, temb, FramesContext) -> h, as UpBlock2D's."""


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
        states = context.encoder_hidden_states
        h = self.resnets[0](h, temb)
        for i, (attention, resnet) in enumerate(zip(self.attentions, self.resnets[1:])):
            h = attention(h, states)
            if len(self.motion_modules):
                h = run_motion(self.motion_modules[i], h, context)
            h = resnet(h, temb)
        return h

    def backward(self, grad_out):
        g, dtemb, dcontext = grad_out, 0.0, 0.0
        for i in reversed(range(len(self.attentions))):
            g, dt = self.resnets[i + 1].backward(g)
            dm = 0.0
            if len(self.motion_modules):
                g, dm = motion_backward(self.motion_modules[i], g)
            g, dc = self.attentions[i].backward(g)
            dtemb, dcontext = dtemb + dt, dcontext + dc + dm
        g, dt = self.resnets[0].backward(g)
        return g, dtemb + dt, dcontext


MOTION_DOWN_BLOCKS = {"DownBlock2D": DownBlockMotion, "CrossAttnDownBlock2D": CrossAttnDownBlockMotion}
MOTION_UP_BLOCKS = {"UpBlock2D": UpBlockMotion, "CrossAttnUpBlock2D": CrossAttnUpBlockMotion}
