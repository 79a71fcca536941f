"""UNet2DConditionModel: Stable Diffusion's denoiser (Rombach et al. 2022, sec. 3.3), a UNet
whose blocks cross-attend to a text encoder's tokens, in diffusers' layout.

    1. time          t -> sinusoidal features -> time_embedding (+ class_embedding[label]) = emb
    2. pre-process   x -> conv_in
    3. down          down blocks (cross-attention blocks read encoder_hidden_states); keep every
                     intermediate output as a skip
    4. mid           UNetMidBlock2DCrossAttn
    5. up            up blocks (each resnet concatenates one skip)
    6. post-process  conv_norm_out -> SiLU -> conv_out

forward runs the stages 1 to 6 (tinydiff.models.unet_core's UNetCore, shared with UNet2DModel),
backward 6 to 1 and returns the gradient to the sample and to encoder_hidden_states (summed
over every cross-attention), so a text encoder can be trained through it.

Config keys and parameter names are diffusers' UNet2DConditionModel's, so config.json and the
weights load there by name. As in diffusers, attention_head_dim is the number of attention
heads per level (diffusers' historical misnomer, kept for its configs); each head is
channels / heads wide.
"""

from tinydiff.models.checks import (check_divisible, check_model_size, check_sample_size, config_bool, config_int,
                                    config_ints, config_levels)
from tinydiff.models.unet_blocks import DOWN_BLOCKS, UP_BLOCKS, TimestepEmbedding
from tinydiff.models.unet_condition_blocks import CROSS_DOWN_BLOCKS, CROSS_UP_BLOCKS, UNetMidBlock2DCrossAttn
from tinydiff.models.unet_core import UNetCore, check_common_config
from tinydiff.nn import Conv2d, Embedding, GroupNorm, ModuleList, SiLU, SinusoidalTimestepEmbedding
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator

OWNER = "UNet2DConditionModel"
DOWN = {"DownBlock2D": DOWN_BLOCKS["DownBlock2D"], **CROSS_DOWN_BLOCKS}
UP = {"UpBlock2D": UP_BLOCKS["UpBlock2D"], **CROSS_UP_BLOCKS}
MID_BLOCK_TYPES = ("UNetMidBlock2DCrossAttn",)


def validate_config(c):
    """Check a UNet2DConditionModel config dict (types, ranges, consistency, size; see
    tinydiff.models.checks); lists become tuples, numbers Python ints and floats."""
    for key in ("sample_size", "in_channels", "out_channels", "layers_per_block", "norm_num_groups",
                "cross_attention_dim", "transformer_layers_per_block"):
        c[key] = config_int(c[key], key, OWNER)
    channels = config_levels(c, OWNER, DOWN, UP)
    n = len(channels)
    if c["mid_block_type"] not in MID_BLOCK_TYPES:
        raise ValueError(f"{OWNER}: mid_block_type: {c['mid_block_type']!r} not supported; choose from "
                         f"{list(MID_BLOCK_TYPES)}")
    heads = c["attention_head_dim"]
    if isinstance(heads, (list, tuple)):
        c["attention_head_dim"] = config_ints(heads, "attention_head_dim", OWNER, length=n)
    else:
        c["attention_head_dim"] = config_int(heads, "attention_head_dim", OWNER)
    check_common_config(c, OWNER)
    c["use_linear_projection"] = config_bool(c["use_linear_projection"], "use_linear_projection", OWNER)
    check_divisible(channels, "every block_out_channels entry", c["norm_num_groups"], "norm_num_groups", OWNER)
    bad = [(channels[i], h) for i, h in enumerate(level_heads(c)) if i in cross_levels(c) and channels[i] % h]
    if bad:
        raise ValueError(f"{OWNER}: block_out_channels at levels with cross-attention must be divisible by their "
                         f"number of heads (attention_head_dim, diffusers' name), got (channels, heads) {bad}")
    check_sample_size(c["sample_size"], n, OWNER)
    check_model_size(OWNER, parameter_lower_bound(c), "block_out_channels, layers_per_block and num_class_embeds",
                     largest_activation(c), "sample_size, block_out_channels and attention_head_dim")
    return c


def level_heads(c):
    """The number of attention heads at each level (attention_head_dim, an int or one per level)."""
    heads = c["attention_head_dim"]
    return tuple(heads) if isinstance(heads, tuple) else (heads,) * len(c["block_out_channels"])


def cross_levels(c):
    """Indices of the levels (0 = full size) where some block has cross-attention; the mid
    block's (the last level) always has."""
    n = len(c["block_out_channels"])
    levels = {i for i, b in enumerate(c["down_block_types"]) if b in CROSS_DOWN_BLOCKS}
    levels |= {n - 1 - i for i, b in enumerate(c["up_block_types"]) if b in CROSS_UP_BLOCKS}
    return sorted(levels | {n - 1})


def parameter_lower_bound(c):
    """At least this many parameters: the 3x3 convolutions of the resnets (two per resnet, each
    >= 9 C^2), the time embedding (20 C_0^2) and the class embedding; Python ints, no overflow."""
    channels, lpb = c["block_out_channels"], c["layers_per_block"]
    count = 20 * channels[0] ** 2 + 4 * channels[0] * (c["num_class_embeds"] or 0)
    count += sum(9 * ch**2 * (2 * lpb + 2 * (lpb + 1)) for ch in channels)
    return count + 4 * 9 * channels[-1] ** 2


def largest_activation(c):
    """Numbers in one image's largest array: a feature map (C, H, W), or a self-attention
    matrix (heads, HW, HW) at a level with cross-attention blocks."""
    size, channels, heads = c["sample_size"], c["block_out_channels"], level_heads(c)
    largest = max(ch * (size // 2**i) ** 2 for i, ch in enumerate(channels))
    for i in cross_levels(c):
        largest = max(largest, heads[i] * ((size // 2**i) ** 2) ** 2)
    return largest


class UNet2DConditionModel(UNetCore):
    """forward(sample (B, C_in, H, W), timestep (B,) or scalar, encoder_hidden_states
    (B, M, cross_attention_dim), class_labels (B,) or None) -> (B, C_out, H, W).
    backward(dout) -> (d sample, d encoder_hidden_states); timesteps and labels are not
    differentiated.

    The arguments are diffusers' UNet2DConditionModel's (same names and meaning; attention_head_dim
    is the number of heads, an int or one per level), for the block types in DOWN / UP, the
    UNetMidBlock2DCrossAttn mid block, resnet_time_scale_shift="default" and positional time
    embeddings; `config` holds them. Cross-attention attends to every token of
    encoder_hidden_states (no mask), as Stable Diffusion does. rng draws the initial weights.
    """

    def __init__(self, sample_size=32, in_channels=4, out_channels=4,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 mid_block_type="UNetMidBlock2DCrossAttn",
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64),
                 layers_per_block=1, cross_attention_dim=64, attention_head_dim=4, transformer_layers_per_block=1,
                 use_linear_projection=False, norm_num_groups=8, norm_eps=1e-5, dropout=0.0,
                 mid_block_scale_factor=1.0, flip_sin_to_cos=True, freq_shift=0, num_class_embeds=None, rng=None):
        super().__init__()
        self.config = c = validate_config(dict(
            sample_size=sample_size, in_channels=in_channels, out_channels=out_channels,
            down_block_types=down_block_types, mid_block_type=mid_block_type, up_block_types=up_block_types,
            block_out_channels=block_out_channels, layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim,
            transformer_layers_per_block=transformer_layers_per_block, use_linear_projection=use_linear_projection,
            norm_num_groups=norm_num_groups, norm_eps=norm_eps, dropout=dropout,
            mid_block_scale_factor=mid_block_scale_factor, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift,
            num_class_embeds=num_class_embeds))
        rng = generator(rng)
        channels, heads = c["block_out_channels"], level_heads(c)
        groups, eps, dropout = c["norm_num_groups"], c["norm_eps"], c["dropout"]
        cross = dict(cross_attention_dim=c["cross_attention_dim"],
                     transformer_layers_per_block=c["transformer_layers_per_block"],
                     use_linear_projection=c["use_linear_projection"])
        temb_dim = channels[0] * 4

        self.conv_in = Conv2d(c["in_channels"], channels[0], 3, padding=1, rng=rng)
        self.time_proj = SinusoidalTimestepEmbedding(
            channels[0], flip_sin_to_cos=c["flip_sin_to_cos"], downscale_freq_shift=c["freq_shift"])
        self.time_embedding = TimestepEmbedding(channels[0], temb_dim, rng=rng)
        self.class_embedding = Embedding(c["num_class_embeds"], temb_dim, rng=rng) if c["num_class_embeds"] else None

        down = []
        out_ch = channels[0]
        for i, block_type in enumerate(c["down_block_types"]):
            in_ch, out_ch = out_ch, channels[i]
            extra = dict(num_attention_heads=heads[i], **cross) if block_type in CROSS_DOWN_BLOCKS else {}
            down.append(DOWN[block_type](in_ch, out_ch, temb_dim, num_layers=c["layers_per_block"],
                                         add_downsample=i < len(channels) - 1, groups=groups, eps=eps,
                                         dropout=dropout, rng=rng, **extra))
        self.down_blocks = ModuleList(down)

        self.mid_block = UNetMidBlock2DCrossAttn(
            channels[-1], temb_dim, groups=groups, eps=eps, dropout=dropout, num_attention_heads=heads[-1],
            output_scale_factor=c["mid_block_scale_factor"], rng=rng, **cross)

        up = []
        reversed_channels, reversed_heads = channels[::-1], heads[::-1]
        out_ch = reversed_channels[0]
        for i, block_type in enumerate(c["up_block_types"]):
            prev_ch, out_ch = out_ch, reversed_channels[i]
            in_ch = reversed_channels[min(i + 1, len(channels) - 1)]
            extra = dict(num_attention_heads=reversed_heads[i], **cross) if block_type in CROSS_UP_BLOCKS else {}
            up.append(UP[block_type](in_ch, prev_ch, out_ch, temb_dim, num_layers=c["layers_per_block"] + 1,
                                     add_upsample=i < len(channels) - 1, groups=groups, eps=eps, dropout=dropout,
                                     rng=rng, **extra))
        self.up_blocks = ModuleList(up)

        self.conv_norm_out = GroupNorm(groups, channels[0], eps)
        self.conv_act = SiLU()
        self.conv_out = Conv2d(channels[0], c["out_channels"], 3, padding=1, rng=rng)

    def check_inputs(self, sample, encoder_hidden_states):
        c, dtype = self.config, self.conv_in.weight.dtype
        factor = 2 ** (len(c["block_out_channels"]) - 1)
        check_float_array(sample, "sample", ndim=4, dtype=dtype)
        if sample.shape[1] != c["in_channels"] or sample.shape[2] % factor or sample.shape[3] % factor:
            raise ValueError(f"{OWNER}: sample must be (B, {c['in_channels']}, H, W) with H and W divisible by "
                             f"{factor}, got shape {sample.shape}")
        check_float_array(encoder_hidden_states, "encoder_hidden_states", ndim=3, dtype=dtype)
        B, M, D = encoder_hidden_states.shape
        if B != sample.shape[0] or D != c["cross_attention_dim"] or M == 0:
            raise ValueError(f"{OWNER}: encoder_hidden_states must be (B={sample.shape[0]}, M >= 1, "
                             f"cross_attention_dim={c['cross_attention_dim']}), got shape {encoder_hidden_states.shape}")

    def forward(self, sample, timestep, encoder_hidden_states, class_labels=None):
        self.check_inputs(sample, encoder_hidden_states)
        emb = self.embed(timestep, class_labels, sample.shape[0])  # 1. time
        # 2.-6.: the cross-attention blocks read the text tokens (Rombach et al. 2022, sec. 3.3)
        return self.denoise(sample, emb, encoder_hidden_states)

    def backward(self, grad_out):
        dsample, demb, dcontext = self.denoise_backward(grad_out)
        self.embed_backward(demb)
        return dsample, dcontext
