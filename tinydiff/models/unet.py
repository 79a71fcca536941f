"""UNet2DModel: the denoiser of DDPM (Ho et al. 2020, appendix B) in diffusers' layout.

    1. time          t -> sinusoidal features -> time_embedding (+ class_embedding[label]) = emb
    2. pre-process   x -> conv_in
    3. down          down blocks (keep every intermediate output as a skip)
    4. mid           mid block
    5. up            up blocks (each resnet concatenates one skip)
    6. post-process  conv_norm_out -> SiLU -> conv_out

forward runs the stages 1 to 6, backward 6 to 1, as diffusers numbers them; the running is
tinydiff.models.unet_core's UNetCore, shared with UNet2DConditionModel.

Config keys and parameter names are diffusers' UNet2DModel's, for the block types listed in
DOWN_BLOCKS / UP_BLOCKS, so a state dict moves between the two by name.
"""

from tinydiff.models.checks import (check_divisible, check_model_size, check_sample_size, config_bool, config_int,
                                    config_levels)
from tinydiff.models.unet_blocks import DOWN_BLOCKS, UP_BLOCKS, TimestepEmbedding, UNetMidBlock2D
from tinydiff.models.unet_core import UNetCore, check_common_config
from tinydiff.nn import Conv2d, Embedding, GroupNorm, ModuleList, SiLU, SinusoidalTimestepEmbedding
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator

OWNER = "UNet2DModel"


def validate_config(c):
    """Check a UNet2DModel config dict (types, ranges, consistency, size; see
    tinydiff.models.checks); lists become tuples, numbers Python ints and floats."""
    for key in ("sample_size", "in_channels", "out_channels", "layers_per_block", "attention_head_dim",
                "norm_num_groups"):
        c[key] = config_int(c[key], key, OWNER)
    channels = config_levels(c, OWNER, DOWN_BLOCKS, UP_BLOCKS)
    n = len(channels)
    check_common_config(c, OWNER)
    c["add_attention"] = config_bool(c["add_attention"], "add_attention", OWNER)
    if c.get("class_embed_null_index") is not None:  # the null class of classifier-free guidance
        if not c["num_class_embeds"]:
            raise ValueError(f"{OWNER}: class_embed_null_index: given ({c['class_embed_null_index']!r}), but the "
                             f"model has no class embedding (num_class_embeds=None)")
        c["class_embed_null_index"] = config_int(c["class_embed_null_index"], "class_embed_null_index", OWNER, 0)
        if c["class_embed_null_index"] >= c["num_class_embeds"]:
            raise ValueError(f"{OWNER}: class_embed_null_index: expected an index in [0, {c['num_class_embeds']}) "
                             f"(num_class_embeds), got {c['class_embed_null_index']}")
    check_divisible(channels, "every block_out_channels entry", c["norm_num_groups"], "norm_num_groups", OWNER)
    attention = [channels[i] for i in attention_levels(c)]
    check_divisible(attention, "block_out_channels at levels with attention", c["attention_head_dim"],
                    "attention_head_dim", OWNER)
    check_sample_size(c["sample_size"], n, OWNER)
    check_model_size(OWNER, parameter_lower_bound(c), "block_out_channels, layers_per_block and num_class_embeds",
                     largest_activation(c), "sample_size, block_out_channels and which levels have attention")
    return c


def parameter_lower_bound(c):
    """At least this many parameters: the 3x3 convolutions of the resnets (two per resnet, each
    >= 9 C^2), the time embedding (20 C_0^2) and the class embedding; Python ints, no overflow."""
    channels, lpb = c["block_out_channels"], c["layers_per_block"]
    count = 20 * channels[0] ** 2 + 4 * channels[0] * (c["num_class_embeds"] or 0)
    count += sum(9 * ch**2 * (2 * lpb + 2 * (lpb + 1)) for ch in channels)  # down and up resnets
    return count + 4 * 9 * channels[-1] ** 2  # the mid block's two resnets


def attention_levels(c):
    """Indices of the resolution levels (0 = full size) where some block has self-attention."""
    n = len(c["block_out_channels"])
    levels = {i for i, b in enumerate(c["down_block_types"]) if b.startswith("Attn")}
    levels |= {n - 1 - i for i, b in enumerate(c["up_block_types"]) if b.startswith("Attn")}
    if c["add_attention"]:
        levels.add(n - 1)  # the mid block's
    return sorted(levels)


def largest_activation(c):
    """Numbers in one image's largest array: a feature map (C, H, W), or an attention matrix
    (heads, HW, HW) at a level with attention."""
    size, channels = c["sample_size"], c["block_out_channels"]
    largest = max(ch * (size // 2**i) ** 2 for i, ch in enumerate(channels))
    for i in attention_levels(c):
        tokens = (size // 2**i) ** 2
        largest = max(largest, channels[i] // c["attention_head_dim"] * tokens**2)
    return largest


class UNet2DModel(UNetCore):
    """forward(sample (B, C_in, H, W), timestep (B,) or scalar, class_labels (B,) or None)
    -> (B, C_out, H, W). backward(dout) returns d sample only: timesteps and labels are
    conditioning, not differentiated.

    The arguments are diffusers' UNet2DModel's (same names and meaning), for the block types
    in DOWN_BLOCKS / UP_BLOCKS and resnet_time_scale_shift="default"; `config` holds them.
    rng draws the initial weights.
    """

    def __init__(self, sample_size=32, in_channels=3, out_channels=3,
                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), block_out_channels=(32, 64),
                 layers_per_block=1, attention_head_dim=8, norm_num_groups=8, norm_eps=1e-5,
                 dropout=0.0, mid_block_scale_factor=1.0, flip_sin_to_cos=True, freq_shift=0,
                 num_class_embeds=None, add_attention=True, class_embed_null_index=None, rng=None):
        super().__init__()
        # class_embed_null_index: tinydiff's key (diffusers ignores it, with a warning): which
        # class_embedding row is the null class that classifier-free guidance runs beside the
        # real ones (Ho & Salimans 2022); kept out of the config when None, so folders written
        # before it stay the same.
        null = {} if class_embed_null_index is None else {"class_embed_null_index": class_embed_null_index}
        self.config = c = validate_config(dict(
            sample_size=sample_size, in_channels=in_channels, out_channels=out_channels,
            down_block_types=down_block_types, up_block_types=up_block_types,
            block_out_channels=block_out_channels, layers_per_block=layers_per_block,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups, norm_eps=norm_eps,
            dropout=dropout, mid_block_scale_factor=mid_block_scale_factor,
            flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift, num_class_embeds=num_class_embeds,
            add_attention=add_attention, **null))
        rng = generator(rng)
        channels = c["block_out_channels"]
        groups, eps, head_dim, dropout = c["norm_num_groups"], c["norm_eps"], c["attention_head_dim"], c["dropout"]
        temb_dim = channels[0] * 4

        self.conv_in = Conv2d(c["in_channels"], channels[0], 3, padding=1, rng=rng)
        self.time_proj = SinusoidalTimestepEmbedding(
            channels[0], flip_sin_to_cos=c["flip_sin_to_cos"], downscale_freq_shift=c["freq_shift"]
        )
        self.time_embedding = TimestepEmbedding(channels[0], temb_dim, rng=rng)
        self.class_embedding = (
            Embedding(c["num_class_embeds"], temb_dim, rng=rng) if c["num_class_embeds"] else None
        )

        down = []
        out_ch = channels[0]
        for i, block_type in enumerate(c["down_block_types"]):
            in_ch, out_ch = out_ch, channels[i]
            down.append(DOWN_BLOCKS[block_type](
                in_ch, out_ch, temb_dim, num_layers=c["layers_per_block"],
                add_downsample=i < len(channels) - 1, groups=groups, eps=eps, dropout=dropout,
                attention_head_dim=head_dim, rng=rng))
        self.down_blocks = ModuleList(down)

        self.mid_block = UNetMidBlock2D(
            channels[-1], temb_dim, groups=groups, eps=eps, dropout=dropout, attention_head_dim=head_dim,
            add_attention=c["add_attention"], output_scale_factor=c["mid_block_scale_factor"], rng=rng)

        up = []
        reversed_channels = channels[::-1]
        out_ch = reversed_channels[0]
        for i, block_type in enumerate(c["up_block_types"]):
            prev_ch, out_ch = out_ch, reversed_channels[i]
            in_ch = reversed_channels[min(i + 1, len(channels) - 1)]
            up.append(UP_BLOCKS[block_type](
                in_ch, prev_ch, out_ch, temb_dim, num_layers=c["layers_per_block"] + 1,
                add_upsample=i < len(channels) - 1, groups=groups, eps=eps, dropout=dropout,
                attention_head_dim=head_dim, rng=rng))
        self.up_blocks = ModuleList(up)

        self.conv_norm_out = GroupNorm(groups, channels[0], eps)
        self.conv_act = SiLU()
        self.conv_out = Conv2d(channels[0], c["out_channels"], 3, padding=1, rng=rng)

    def forward(self, sample, timestep, class_labels=None):
        c = self.config
        check_float_array(sample, "sample", ndim=4, dtype=self.conv_in.weight.dtype)
        if sample.shape[1] != c["in_channels"] or sample.shape[2] % 2 ** (len(c["block_out_channels"]) - 1):
            raise ValueError(
                f"UNet2DModel: sample must be (B, {c['in_channels']}, H, W) with H and W divisible by "
                f"{2 ** (len(c['block_out_channels']) - 1)}, got shape {sample.shape}"
            )
        return self.denoise(sample, self.embed(timestep, class_labels, sample.shape[0]))

    def backward(self, grad_out):
        dx, demb, _ = self.denoise_backward(grad_out)
        self.embed_backward(demb)
        return dx
