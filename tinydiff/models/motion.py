"""UNetMotionModel and MotionAdapter: a text-to-image UNet inflated to video, AnimateDiff's way
(Guo et al. 2023), with diffusers' class names, config keys and parameter names.

A clip is F frames. The UNet2DConditionModel's layers run on every frame alone (the frames
folded into the batch: factorised space-time, Ho et al. 2022, sec. 3); after every resnet (and
its spatial transformer) a motion module (AnimateDiffTransformer3D, tinydiff.models.motion_blocks)
attends over the F frames at each pixel. Its output projection starts at zero, so the inflated
UNet gives exactly the image UNet's output on every frame until the motion modules are trained.

    1. time          t (B,) -> emb (B, 4 C_0), the same for the F frames of a clip -> (B F, 4 C_0)
    2. pre-process   sample (B, C, F, H, W) -> frames (B F, C, H, W) -> conv_in
    3.-5. down, mid, up  the 2-D blocks, each resnet [-> transformer] -> motion module; the text
                     states (B, M, D) are repeated for each frame (B F, M, D)
    6. post-process  conv_norm_out -> SiLU -> conv_out -> (B, C_out, F, H, W)

MotionAdapter holds only the motion modules (diffusers' container of them: down_blocks.i /
mid_block / up_blocks.i .motion_modules.j), saved and loaded in diffusers' folder layout.
AnimateDiff trains them on a frozen image UNet: freeze_unet2d_params(), motion_parameters().
"""

from pathlib import Path

import numpy as np

from tinydiff.files import check_weights, load_arrays, read_json, save_arrays, write_folder_atomically, write_json
from tinydiff.models.checks import config_bool, config_int, config_ints
from tinydiff.models.motion_blocks import (MOTION_DOWN_BLOCKS, MOTION_UP_BLOCKS, FramesContext, MotionModules,
                                           SinusoidalPositionalEmbedding, UNetMidBlockCrossAttnMotion)
from tinydiff.models.unet_condition import UNet2DConditionModel
from tinydiff.models.unet_core import UNetCore
from tinydiff.nn import Module, ModuleList
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
# the 2-D block type each motion block type inflates (diffusers' UNetMotionModel.from_unet2d)
BLOCKS_2D = {"DownBlockMotion": "DownBlock2D", "CrossAttnDownBlockMotion": "CrossAttnDownBlock2D",
             "UpBlockMotion": "UpBlock2D", "CrossAttnUpBlockMotion": "CrossAttnUpBlock2D"}
MOTION_BLOCKS = {v: k for k, v in BLOCKS_2D.items()}


def per_level(value, name, owner, levels):
    """An int (every level) or a list of one int per level -> a tuple of `levels` ints."""
    if isinstance(value, (list, tuple)):
        return config_ints(value, name, owner, length=levels)
    return (config_int(value, name, owner),) * levels


def as_given(value, levels):
    """For config.json: an int stays an int, a list the list of its checked values."""
    return list(levels) if isinstance(value, (list, tuple)) else levels[0]


class MotionAdapter(Module):
    """The motion modules of a UNetMotionModel, without the UNet (diffusers' MotionAdapter).

    down_blocks.i: MotionModules of motion_layers_per_block[i] modules over block_out_channels[i];
    mid_block: one module over the last level (use_motion_mid_block) or None;
    up_blocks.i: motion_layers_per_block + 1 modules, levels reversed (as the UNet's up blocks).
    It computes nothing itself: UNetMotionModel.from_unet2d(unet, adapter) runs its weights.
    Arguments are diffusers' (the same names, meaning and config.json keys); conv_in_channels
    (PIA's extra input channels) must be None. rng draws the initial weights; proj_out starts
    at zero in every module. motion_cross_attention_dim (a tinydiff key; None, the default, is
    diffusers' AnimateDiff exactly): the text states' width D; every module's attn2 then attends
    to the clip's text (diffusers' AnimateDiffTransformer3D(cross_attention_dim=D,
    double_self_attention=False)). diffusers' UNetMotionModel never passes text to its motion
    modules: a large model infers motion from content. tinydiff's shapes look the same moving
    left or right, so only the caption can say which way (tinydiff.models.motion_blocks).
    """

    def __init__(self, block_out_channels=(32, 64), motion_layers_per_block=1, motion_transformer_layers_per_block=1,
                 motion_mid_block_layers_per_block=1, motion_transformer_layers_per_mid_block=1,
                 motion_num_attention_heads=4, motion_norm_num_groups=8, motion_max_seq_length=32,
                 use_motion_mid_block=True, conv_in_channels=None, motion_cross_attention_dim=None, rng=None):
        super().__init__()
        owner = "MotionAdapter"
        channels = config_ints(block_out_channels, "block_out_channels", owner)
        n = len(channels)
        layers = per_level(motion_layers_per_block, "motion_layers_per_block", owner, n)
        depth = per_level(motion_transformer_layers_per_block, "motion_transformer_layers_per_block", owner, n)
        heads = per_level(motion_num_attention_heads, "motion_num_attention_heads", owner, n)
        mid_layers = config_int(motion_mid_block_layers_per_block, "motion_mid_block_layers_per_block", owner)
        mid_depth = config_int(motion_transformer_layers_per_mid_block, "motion_transformer_layers_per_mid_block",
                               owner)
        groups = config_int(motion_norm_num_groups, "motion_norm_num_groups", owner)
        max_len = config_int(motion_max_seq_length, "motion_max_seq_length", owner)
        use_mid = config_bool(use_motion_mid_block, "use_motion_mid_block", owner)
        text = (None if motion_cross_attention_dim is None
                else config_int(motion_cross_attention_dim, "motion_cross_attention_dim", owner))
        if conv_in_channels is not None:
            raise ValueError(f"{owner}: conv_in_channels={conv_in_channels!r}: PIA's input convolution is not "
                             f"supported; it must be None")
        bad = [(c, h) for c, h in zip(channels, heads) if c % h or c % groups]
        if bad:
            raise ValueError(f"{owner}: every block_out_channels entry must be divisible by its "
                             f"motion_num_attention_heads and by motion_norm_num_groups={groups}, got "
                             f"(channels, heads) {bad}")
        self.config = dict(
            block_out_channels=list(channels), motion_layers_per_block=as_given(motion_layers_per_block, layers),
            motion_transformer_layers_per_block=as_given(motion_transformer_layers_per_block, depth),
            motion_mid_block_layers_per_block=mid_layers, motion_transformer_layers_per_mid_block=mid_depth,
            motion_num_attention_heads=as_given(motion_num_attention_heads, heads), motion_norm_num_groups=groups,
            motion_max_seq_length=max_len, use_motion_mid_block=use_mid, conv_in_channels=None,
            motion_cross_attention_dim=text)
        rng = generator(rng)

        def modules(i, count, transformer_layers):
            return MotionModules(channels[i], count, transformer_layers, heads[i], groups, max_len, text, rng=rng)

        self.down_blocks = ModuleList([modules(i, layers[i], depth[i]) for i in range(n)])
        self.mid_block = modules(n - 1, mid_layers, mid_depth) if use_mid else None
        self.up_blocks = ModuleList([modules(n - 1 - i, layers[n - 1 - i] + 1, depth[n - 1 - i]) for i in range(n)])

    def state_dict_with_buffers(self):
        """state_dict() plus every pos_embed.pe buffer, (1, max_seq_length, C): diffusers' state dict."""
        state = self.state_dict()
        for name, module in self.named_modules():
            if isinstance(module, SinusoidalPositionalEmbedding):
                state[f"{name}.pe"] = module.pe.copy()
        return state

    def save_pretrained(self, save_directory, dtype=np.float32):
        """Write save_directory/config.json (_class_name MotionAdapter and diffusers' keys) and
        diffusion_pytorch_model.safetensors, atomically: diffusers' MotionAdapter.from_pretrained
        reads it. dtype=np.float16 halves the file."""
        def write(tmp):
            write_json(tmp / CONFIG_NAME, {"_class_name": "MotionAdapter", **self.config})
            save_arrays(tmp / WEIGHTS_NAME, self.state_dict_with_buffers(), dtype)

        write_folder_atomically(Path(save_directory), write)

    @classmethod
    def from_pretrained(cls, folder):
        """The MotionAdapter a folder holds (tinydiff's or diffusers' save_pretrained), in float32.
        Every problem is a ValueError (FileNotFoundError for a missing file) naming the file."""
        config_file, weights = Path(folder) / CONFIG_NAME, Path(folder) / WEIGHTS_NAME
        config = read_json(config_file)
        if config.get("_class_name") != "MotionAdapter":
            raise ValueError(f"{config_file}: _class_name must be 'MotionAdapter', got {config.get('_class_name')!r}")
        try:
            adapter = cls(**{k: v for k, v in config.items() if not k.startswith("_")})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{config_file}: {err}") from None
        state = load_arrays(weights)
        buffers = adapter.state_dict_with_buffers()
        for name in [k for k in state if k.endswith(".pos_embed.pe")]:
            if name not in buffers or state[name].shape != buffers[name].shape:
                raise ValueError(f"{weights}: tensor {name!r} is not a frame-position buffer of the MotionAdapter "
                                 f"that {config_file} describes")
            del state[name]  # fixed sinusoids: recomputed, not loaded
        adapter.load_state_dict(check_weights(adapter, state, weights, config_file))
        return adapter


def unet2d_config(c):
    """The UNet2DConditionModel config whose layers a UNetMotionModel config c inflates."""
    owner = "UNetMotionModel"
    for key in ("down_block_types", "up_block_types"):
        bad = [b for b in c[key] if b not in BLOCKS_2D or ("Down" in b) != (key == "down_block_types")]
        if isinstance(c[key], str) or bad:
            raise ValueError(f"{owner}: {key}: {bad or c[key]!r} not supported; choose from "
                             f"{sorted(b for b in BLOCKS_2D if ('Down' in b) == (key == 'down_block_types'))}")
    return dict(sample_size=c["sample_size"], in_channels=c["in_channels"], out_channels=c["out_channels"],
                down_block_types=[BLOCKS_2D[b] for b in c["down_block_types"]],
                up_block_types=[BLOCKS_2D[b] for b in c["up_block_types"]],
                block_out_channels=c["block_out_channels"], layers_per_block=c["layers_per_block"],
                cross_attention_dim=c["cross_attention_dim"], attention_head_dim=c["num_attention_heads"],
                transformer_layers_per_block=c["transformer_layers_per_block"],
                use_linear_projection=c["use_linear_projection"], norm_num_groups=c["norm_num_groups"],
                norm_eps=c["norm_eps"], mid_block_scale_factor=c["mid_block_scale_factor"])


def adapter_config(c):
    """The MotionAdapter config of a UNetMotionModel config c (its motion modules' shapes)."""
    return dict(block_out_channels=c["block_out_channels"], motion_layers_per_block=c["layers_per_block"],
                motion_transformer_layers_per_block=c["temporal_transformer_layers_per_block"],
                motion_transformer_layers_per_mid_block=c["temporal_transformer_layers_per_mid_block"],
                motion_num_attention_heads=c["motion_num_attention_heads"],
                motion_norm_num_groups=c["norm_num_groups"], motion_max_seq_length=c["motion_max_seq_length"],
                use_motion_mid_block=c["use_motion_mid_block"],
                motion_cross_attention_dim=c["motion_cross_attention_dim"])


def is_motion(name):
    """Whether a parameter name belongs to a motion module (AnimateDiff trains these alone)."""
    return ".motion_modules." in name


class UNetMotionModel(UNetCore):
    """forward(sample (B, C_in, F, H, W), timestep (B,) or scalar, encoder_hidden_states
    (B, M, cross_attention_dim)) -> (B, C_out, F, H, W); backward(dout) -> (d sample,
    d encoder_hidden_states). F <= motion_max_seq_length.

    The arguments are diffusers' UNetMotionModel's (the same names, meaning and config.json keys),
    for its block types (DownBlockMotion, CrossAttnDownBlockMotion, UpBlockMotion,
    CrossAttnUpBlockMotion) and a mid block with one transformer. num_attention_heads is the
    spatial transformers' heads per level (UNet2DConditionModel's attention_head_dim). The 2-D
    layers are a UNet2DConditionModel's (built here, its modules adopted under their names,
    timestep sinusoids with flip_sin_to_cos=True and freq_shift=0 as diffusers' UNetMotionModel);
    the motion modules a MotionAdapter's (motion_norm_num_groups = norm_num_groups, as diffusers
    runs them). Note: diffusers' UNetMotionModel wants encoder_hidden_states already repeated
    per frame (B F, M, D) (its pipeline repeats them); this one takes (B, M, D) and repeats.
    motion_cross_attention_dim (tinydiff's, not diffusers'; see MotionAdapter): the motion
    modules read the text states too, and backward adds their share to d encoder_hidden_states.
    """

    def __init__(self, sample_size=32, in_channels=4, out_channels=4,
                 down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
                 up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"), block_out_channels=(32, 64),
                 layers_per_block=1, mid_block_scale_factor=1.0, norm_num_groups=8, norm_eps=1e-5,
                 cross_attention_dim=64, transformer_layers_per_block=1, temporal_transformer_layers_per_block=1,
                 temporal_transformer_layers_per_mid_block=1, use_linear_projection=False, num_attention_heads=4,
                 motion_max_seq_length=32, motion_num_attention_heads=4, use_motion_mid_block=True,
                 motion_cross_attention_dim=None, rng=None):
        super().__init__()
        c = dict(sample_size=sample_size, in_channels=in_channels, out_channels=out_channels,
                 down_block_types=down_block_types, up_block_types=up_block_types,
                 block_out_channels=block_out_channels, layers_per_block=layers_per_block,
                 mid_block_scale_factor=mid_block_scale_factor, norm_num_groups=norm_num_groups, norm_eps=norm_eps,
                 cross_attention_dim=cross_attention_dim, transformer_layers_per_block=transformer_layers_per_block,
                 temporal_transformer_layers_per_block=temporal_transformer_layers_per_block,
                 temporal_transformer_layers_per_mid_block=temporal_transformer_layers_per_mid_block,
                 use_linear_projection=use_linear_projection, num_attention_heads=num_attention_heads,
                 motion_max_seq_length=motion_max_seq_length, motion_num_attention_heads=motion_num_attention_heads,
                 use_motion_mid_block=use_motion_mid_block, motion_cross_attention_dim=motion_cross_attention_dim)
        rng = generator(rng)
        unet = UNet2DConditionModel(**unet2d_config(c), rng=rng)  # checks the 2-D keys
        adapter = MotionAdapter(**adapter_config(c), rng=rng)  # checks the motion keys
        shared = ("sample_size", "in_channels", "out_channels", "block_out_channels", "layers_per_block",
                  "mid_block_scale_factor", "norm_num_groups", "norm_eps", "cross_attention_dim",
                  "transformer_layers_per_block", "use_linear_projection")
        a = adapter.config
        c.update({k: unet.config[k] for k in shared},
                 down_block_types=tuple(MOTION_BLOCKS[b] for b in unet.config["down_block_types"]),
                 up_block_types=tuple(MOTION_BLOCKS[b] for b in unet.config["up_block_types"]),
                 num_attention_heads=unet.config["attention_head_dim"],
                 temporal_transformer_layers_per_block=a["motion_transformer_layers_per_block"],
                 temporal_transformer_layers_per_mid_block=a["motion_transformer_layers_per_mid_block"],
                 motion_num_attention_heads=a["motion_num_attention_heads"],
                 motion_max_seq_length=a["motion_max_seq_length"], use_motion_mid_block=a["use_motion_mid_block"],
                 motion_cross_attention_dim=a["motion_cross_attention_dim"])
        if a["motion_cross_attention_dim"] not in (None, c["cross_attention_dim"]):
            raise ValueError(f"UNetMotionModel: motion_cross_attention_dim={a['motion_cross_attention_dim']} must be "
                             f"None or the text states' width cross_attention_dim={c['cross_attention_dim']}")
        self.config = c

        # the image UNet's modules, under their names; each block gets its motion modules
        self.conv_in, self.time_proj, self.time_embedding = unet.conv_in, unet.time_proj, unet.time_embedding
        self.class_embedding = None
        self.down_blocks = ModuleList([MOTION_DOWN_BLOCKS[type(block).__name__](block, motion.motion_modules)
                                       for block, motion in zip(unet.down_blocks, adapter.down_blocks)])
        mid_motion = adapter.mid_block.motion_modules if adapter.mid_block is not None else ModuleList()
        self.mid_block = UNetMidBlockCrossAttnMotion(unet.mid_block, mid_motion)
        self.up_blocks = ModuleList([MOTION_UP_BLOCKS[type(block).__name__](block, motion.motion_modules)
                                     for block, motion in zip(unet.up_blocks, adapter.up_blocks)])
        self.conv_norm_out, self.conv_act, self.conv_out = unet.conv_norm_out, unet.conv_act, unet.conv_out

    # ---- building from an image UNet -------------------------------------------------------
    @classmethod
    def from_unet2d(cls, unet, motion_adapter=None, rng=None):
        """The video UNet of a trained UNet2DConditionModel (its weights copied) and a
        MotionAdapter (its weights copied; None: fresh motion modules drawn from rng, proj_out
        zero). Either way the result, on a clip, starts as `unet` on each frame as long as every
        motion module's proj_out is zero (Guo et al. 2023, sec. 4.2). In unet's dtype."""
        if not isinstance(unet, UNet2DConditionModel):
            raise TypeError(f"UNetMotionModel.from_unet2d: unet must be a UNet2DConditionModel, got "
                            f"{type(unet).__name__}")
        u = unet.config
        # diffusers' UNetMotionModel has none of these keys: its time sinusoids are fixed
        fixed = dict(flip_sin_to_cos=True, freq_shift=0, num_class_embeds=None, dropout=0.0)
        bad = {k: u[k] for k, v in fixed.items() if u[k] != v}
        if bad:
            raise ValueError(f"UNetMotionModel.from_unet2d: the unet's {bad} cannot be inflated; diffusers' "
                             f"UNetMotionModel has {fixed}")
        config = dict(sample_size=u["sample_size"], in_channels=u["in_channels"], out_channels=u["out_channels"],
                      down_block_types=[MOTION_BLOCKS[b] for b in u["down_block_types"]],
                      up_block_types=[MOTION_BLOCKS[b] for b in u["up_block_types"]],
                      block_out_channels=u["block_out_channels"], layers_per_block=u["layers_per_block"],
                      mid_block_scale_factor=u["mid_block_scale_factor"], norm_num_groups=u["norm_num_groups"],
                      norm_eps=u["norm_eps"], cross_attention_dim=u["cross_attention_dim"],
                      transformer_layers_per_block=u["transformer_layers_per_block"],
                      use_linear_projection=u["use_linear_projection"], num_attention_heads=u["attention_head_dim"])
        if motion_adapter is not None:
            config.update(check_adapter(motion_adapter, u))
        model = cls(**config, rng=rng).to(unet.conv_in.weight.dtype)
        missing, unexpected = model.load_state_dict(unet.state_dict(), strict=False)
        assert not unexpected and all(is_motion(k) for k in missing), (missing, unexpected)
        if motion_adapter is not None:
            model.load_motion_modules(motion_adapter)
        return model

    def load_motion_modules(self, motion_adapter):
        """Copy a compatible MotionAdapter's weights into the motion modules (same names)."""
        own = dict(self.named_parameters())
        for name, p in motion_adapter.named_parameters():
            if name not in own or own[name].shape != p.shape:
                raise ValueError(f"UNetMotionModel.load_motion_modules: the adapter's {name} {p.shape} has no "
                                 f"counterpart in this UNet; build it with from_unet2d(unet, adapter)")
            own[name].data[...] = p.data

    def motion_adapter(self):
        """A MotionAdapter holding a copy of this UNet's motion modules (float32)."""
        adapter = MotionAdapter(**adapter_config(self.config))
        adapter.load_state_dict({k: v for k, v in self.state_dict().items() if is_motion(k)})
        return adapter

    def save_motion_modules(self, save_directory, dtype=np.float32):
        """motion_adapter().save_pretrained(save_directory, dtype), as diffusers names it."""
        self.motion_adapter().save_pretrained(save_directory, dtype)

    def freeze_unet2d_params(self):
        """Freeze every parameter but the motion modules' (requires_grad False: backward computes
        no gradient for them), as AnimateDiff trains (Guo et al. 2023, sec. 4.2); diffusers' name.
        The gradients to the sample and to encoder_hidden_states still flow through them."""
        for name, p in self.named_parameters():
            p.requires_grad = is_motion(name)

    def motion_parameters(self):
        """The motion modules' parameters: what AnimateDiff trains (Guo et al. 2023, sec. 4.2)."""
        return [p for name, p in self.named_parameters() if is_motion(name)]

    # ---- forward and backward ----------------------------------------------------------------
    def check_inputs(self, sample, timestep, encoder_hidden_states):
        c, dtype = self.config, self.conv_in.weight.dtype
        factor = 2 ** (len(c["block_out_channels"]) - 1)
        check_float_array(sample, "sample", ndim=5, dtype=dtype)
        B, C, F, H, W = sample.shape
        if C != c["in_channels"] or H % factor or W % factor or not 1 <= F <= c["motion_max_seq_length"]:
            raise ValueError(f"UNetMotionModel: sample must be (B, {c['in_channels']}, F, H, W) with 1 <= F <= "
                             f"motion_max_seq_length={c['motion_max_seq_length']} and H, W divisible by {factor}, "
                             f"got shape {sample.shape}")
        if np.ndim(timestep) not in (0, 1) or np.size(timestep) not in (1, B):
            raise ValueError(f"UNetMotionModel: timestep must be a scalar or (B={B},), got shape {np.shape(timestep)}")
        check_float_array(encoder_hidden_states, "encoder_hidden_states", ndim=3, dtype=dtype)
        if encoder_hidden_states.shape[0] != B or encoder_hidden_states.shape[2] != c["cross_attention_dim"]:
            raise ValueError(f"UNetMotionModel: encoder_hidden_states must be (B={B}, M, cross_attention_dim="
                             f"{c['cross_attention_dim']}), got shape {encoder_hidden_states.shape}")

    def forward(self, sample, timestep, encoder_hidden_states):
        self.check_inputs(sample, timestep, encoder_hidden_states)
        B, C, F, H, W = sample.shape
        # 1. time: one embedding per clip, the same for each of its frames
        t = np.repeat(np.broadcast_to(np.asarray(timestep), (B,)), F)  # (B,) -> (B F,)
        emb = self.embed(t, None, B * F)
        # 2.-6. on the frames folded into the batch (Ho et al. 2022, sec. 3: factorised space-time);
        # the motion modules unfold them again to attend over time
        frames = np.ascontiguousarray(sample.transpose(0, 2, 1, 3, 4)).reshape(B * F, C, H, W)
        states = np.repeat(encoder_hidden_states, F, axis=0)  # (B, M, D) -> (B F, M, D), clip-major
        out = self.denoise(frames, emb, FramesContext(states, F))  # (B F, C_out, H, W)
        return np.ascontiguousarray(out.reshape(B, F, -1, H, W).transpose(0, 2, 1, 3, 4))  # (B, C_out, F, H, W)

    def backward(self, grad_out):
        B, C, F, H, W = grad_out.shape
        g = np.ascontiguousarray(grad_out.transpose(0, 2, 1, 3, 4)).reshape(B * F, C, H, W)
        dframes, demb, dstates = self.denoise_backward(g)
        self.embed_backward(demb)
        dsample = dframes.reshape(B, F, -1, H, W).transpose(0, 2, 1, 3, 4)  # (B F, C, H, W) -> (B, C, F, H, W)
        return np.ascontiguousarray(dsample), dstates.reshape((B, F) + dstates.shape[1:]).sum(axis=1)


def check_adapter(adapter, u):
    """The UNetMotionModel config keys a MotionAdapter sets, once it is checked against the
    UNet2DConditionModel config u it is to run in (diffusers' from_unet2d checks the first two)."""
    if not isinstance(adapter, MotionAdapter):
        raise TypeError(f"UNetMotionModel.from_unet2d: motion_adapter must be a MotionAdapter or None, got "
                        f"{type(adapter).__name__}")
    a, levels = adapter.config, len(u["block_out_channels"])
    problems = []
    if tuple(a["block_out_channels"]) != tuple(u["block_out_channels"]):
        problems.append(f"block_out_channels {a['block_out_channels']} != the unet's {list(u['block_out_channels'])}")
    if per_level(a["motion_layers_per_block"], "", "", levels) != (u["layers_per_block"],) * levels:
        problems.append(f"motion_layers_per_block {a['motion_layers_per_block']} != the unet's layers_per_block "
                        f"{u['layers_per_block']}")
    if a["motion_norm_num_groups"] != u["norm_num_groups"]:
        problems.append(f"motion_norm_num_groups {a['motion_norm_num_groups']} != the unet's norm_num_groups "
                        f"{u['norm_num_groups']} (diffusers runs the motion modules with the unet's)")
    if a["use_motion_mid_block"] and a["motion_mid_block_layers_per_block"] != 1:
        problems.append(f"motion_mid_block_layers_per_block {a['motion_mid_block_layers_per_block']} != 1 "
                        f"(the unet's mid block has one transformer)")
    if problems:
        raise ValueError("UNetMotionModel.from_unet2d: incompatible MotionAdapter: " + "; ".join(problems))
    return dict(temporal_transformer_layers_per_block=a["motion_transformer_layers_per_block"],
                temporal_transformer_layers_per_mid_block=a["motion_transformer_layers_per_mid_block"],
                motion_num_attention_heads=a["motion_num_attention_heads"],
                motion_max_seq_length=a["motion_max_seq_length"], use_motion_mid_block=a["use_motion_mid_block"],
                motion_cross_attention_dim=a["motion_cross_attention_dim"])
