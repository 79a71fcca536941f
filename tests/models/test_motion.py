"""The video UNet (UNetMotionModel), its motion modules (AnimateDiffTransformer3D) and
MotionAdapter: finite-difference checks of every hand-written backward in float64, the
inflated image UNet giving exactly its per-frame output while proj_out is zero, the frames
mixing once it is not, MotionAdapter files, names and errors. Cross-checks with diffusers:
test_motion_against_diffusers.py."""

import json

import numpy as np
import pytest
from test_unet_condition import TINY as UNET
from test_unet_condition import check_gradients

from tinydiff.models import UNet2DConditionModel
from tinydiff.models.motion import MotionAdapter, UNetMotionModel
from tinydiff.models.motion_blocks import AnimateDiffTransformer3D, sinusoidal_positions
from tinydiff.nn import Module
from tinydiff.nn.gradcheck import gradcheck
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pretrained import text2image_dir

ADAPTER = dict(block_out_channels=(8, 16), motion_layers_per_block=1, motion_num_attention_heads=2,
               motion_norm_num_groups=4, motion_max_seq_length=5)
TOKENS = 3


def randomise_proj_out(model, rng, scale=0.3):
    """proj_out starts at zero, which would hide every motion-module gradient but proj_out's."""
    for module in model.modules():
        if isinstance(module, AnimateDiffTransformer3D):
            for p in module.proj_out.parameters():
                p.data[...] = rng.uniform(-scale, scale, p.shape)
    return model


class FramesOf(Module):
    """A motion module seen by gradcheck with num_frames fixed: forward(x)."""

    def __init__(self, module, num_frames):
        super().__init__()
        self.module, self.num_frames = module, num_frames

    def forward(self, x):
        return self.module(x, self.num_frames)

    def backward(self, grad_out):
        return self.module.backward(grad_out)


class AtTimesteps(Module):
    """The video UNet with its timesteps fixed: forward(sample, encoder_hidden_states)."""

    def __init__(self, model, timestep):
        super().__init__()
        self.model, self.timestep = model, timestep

    def forward(self, sample, encoder_hidden_states):
        return self.model(sample, self.timestep, encoder_hidden_states)

    def backward(self, grad_out):
        return self.model.backward(grad_out)

    def named_children(self):
        return self.model.named_children()


def video_unet(rng, use_motion_mid_block=True):
    unet = UNet2DConditionModel(rng=rng, **UNET)
    adapter = MotionAdapter(use_motion_mid_block=use_motion_mid_block, rng=rng, **ADAPTER)
    return UNetMotionModel.from_unet2d(unet, adapter), unet


@pytest.mark.parametrize("mid", [True, False], ids=["motion mid block", "no motion mid block"])
def test_video_unet_gradients_of_every_parameter_sample_and_text_states(mid):
    """Every tensor of the whole network, through its child's directional derivative (also compared
    element by element with diffusers' in test_motion_against_diffusers.py). On the fast kernels:
    the motion module's check above runs on both backends."""
    rng = np.random.default_rng(1)
    model = randomise_proj_out(video_unet(rng, mid)[0], rng)
    x, context = rng.standard_normal((2, 3, 3, 8, 8)), rng.standard_normal((2, TOKENS, 6))
    assert check_gradients(AtTimesteps(model, np.array([5, 800])), (x, context), rng, max_elements=10) == len(
        model.parameters())


def test_inflated_shipped_unet_is_the_image_unet_on_every_frame_until_proj_out_moves():
    """Guo et al. 2023, sec. 4.2: zero proj_out makes every motion module the identity."""
    unet = load_model(text2image_dir() / "unet").to(np.float64).eval()
    adapter = MotionAdapter(block_out_channels=(64, 64), motion_num_attention_heads=4, motion_norm_num_groups=8,
                            motion_max_seq_length=32, use_motion_mid_block=False, rng=np.random.default_rng(2))
    video = UNetMotionModel.from_unet2d(unet, adapter).eval()
    rng = np.random.default_rng(3)
    clips, context, t = rng.standard_normal((1, 4, 3, 8, 8)), rng.standard_normal((1, 5, 64)), np.array([600])
    y = video(clips, t, context)
    frames = np.stack([unet(clips[:, :, f], t, context) for f in range(3)], axis=2)
    np.testing.assert_allclose(y, frames, rtol=0, atol=1e-12)
    # once proj_out moves, each frame's output depends on the other frames
    randomise_proj_out(video, rng, 0.05)
    changed = clips.copy()
    changed[:, :, 0] += 1.0
    moved = video(changed, t, context) - video(clips, t, context)
    assert np.abs(moved[:, :, 1:]).max() > 1e-3


def test_names_follow_diffusers_and_motion_parameters_are_the_adapters():
    model, unet = video_unet(np.random.default_rng(4))
    names = [n for n, _ in model.named_parameters()]
    for name in ("down_blocks.0.attentions.0.proj_in.weight", "down_blocks.1.resnets.0.conv1.weight",
                 "down_blocks.0.motion_modules.0.norm.weight", "down_blocks.0.motion_modules.0.proj_in.weight",
                 "down_blocks.1.motion_modules.0.transformer_blocks.0.attn1.to_q.weight",
                 "down_blocks.1.motion_modules.0.transformer_blocks.0.attn2.to_out.0.bias",
                 "down_blocks.1.motion_modules.0.transformer_blocks.0.ff.net.0.proj.weight",
                 "mid_block.motion_modules.0.proj_out.bias", "up_blocks.0.motion_modules.1.norm.bias",
                 "up_blocks.1.motion_modules.1.transformer_blocks.0.norm3.weight"):
        assert name in names, name
    assert "down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_k.bias" not in names  # attention_bias=False
    assert [n for n in names if "motion_modules" not in n] == [n for n, _ in unet.named_parameters()]
    adapter = model.motion_adapter()
    motion = model.motion_parameters()
    assert [p.shape for p in motion] == [p.shape for p in adapter.parameters()]
    assert sum(p.data.size for p in motion) + unet.num_parameters() == model.num_parameters()
    assert all(not np.any(p.data) for n, p in model.named_parameters() if ".proj_out." in n and "motion" in n)
    # its config (diffusers' UNetMotionModel keys, JSON-ready) builds the same network
    again = UNetMotionModel(**json.loads(json.dumps(model.config)))
    assert [(n, p.shape) for n, p in again.named_parameters()] == [(n, p.shape) for n, p in model.named_parameters()]


def test_frozen_image_unet_gives_the_same_motion_and_input_gradients_and_none_of_its_own():
    rng = np.random.default_rng(7)
    model = randomise_proj_out(video_unet(rng)[0], rng)
    x, context = rng.standard_normal((2, 3, 3, 8, 8)).astype(np.float32), np.ones((2, TOKENS, 6), np.float32)
    g = rng.standard_normal((2, 2, 3, 8, 8)).astype(np.float32)
    model(x, 50, context)
    full = model.backward(g)
    motion = [p.grad.copy() for p in model.motion_parameters()]
    model.zero_grad()
    model.freeze_unet2d_params()
    assert model.trainable_parameters() == model.motion_parameters()
    model(x, 50, context)
    for ours, theirs in zip(model.backward(g), full):
        np.testing.assert_array_equal(ours, theirs)
    for p, before in zip(model.motion_parameters(), motion):
        np.testing.assert_array_equal(p.grad, before)
    assert all(p.grad is None for n, p in model.named_parameters() if "motion_modules" not in n)


def test_adapter_folder_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    model = randomise_proj_out(video_unet(rng)[0], rng)
    model.save_motion_modules(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    assert config["_class_name"] == "MotionAdapter" and config["motion_max_seq_length"] == 5
    again = MotionAdapter.from_pretrained(tmp_path / "adapter")
    for (name, p), (other, q) in zip(model.motion_adapter().named_parameters(), again.named_parameters()):
        assert name == other
        np.testing.assert_array_equal(p.data, q.data)
    buffers = again.state_dict_with_buffers()
    pe = buffers["down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe"]
    assert pe.shape == (1, 5, 8)
    np.testing.assert_allclose(pe[0], sinusoidal_positions(5, 8), atol=1e-7)
    np.testing.assert_array_equal(pe[0, 0, 1::2], 1.0)  # cos(0) at position 0
    # and into a fresh video UNet of the same image UNet: the same outputs
    fresh = UNetMotionModel.from_unet2d(UNet2DConditionModel(rng=np.random.default_rng(5), **UNET), again)
    model.eval(), fresh.eval()
    x, context = rng.standard_normal((1, 3, 2, 8, 8)).astype(np.float32), np.ones((1, TOKENS, 6), np.float32)
    np.testing.assert_array_equal(fresh(x, 9, context), model(x, 9, context))


def test_bad_folders_and_incompatible_adapters_are_refused(tmp_path):
    adapter = MotionAdapter(**ADAPTER)
    adapter.save_pretrained(tmp_path / "a")
    path = tmp_path / "a" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "_class_name": "UNet2DConditionModel"}))
    with pytest.raises(ValueError, match="_class_name must be 'MotionAdapter'"):
        MotionAdapter.from_pretrained(tmp_path / "a")
    path.write_text(json.dumps({"_class_name": "MotionAdapter", **{**adapter.config, "motion_max_seq_length": 7}}))
    with pytest.raises(ValueError, match="pos_embed.pe"):
        MotionAdapter.from_pretrained(tmp_path / "a")
    unet = UNet2DConditionModel(**UNET)
    with pytest.raises(ValueError, match="motion_norm_num_groups 2 != the unet's norm_num_groups 4"):
        UNetMotionModel.from_unet2d(unet, MotionAdapter(**{**ADAPTER, "motion_norm_num_groups": 2}))
    with pytest.raises(ValueError, match="block_out_channels"):
        UNetMotionModel.from_unet2d(unet, MotionAdapter(**{**ADAPTER, "block_out_channels": (8, 8)}))
    with pytest.raises(ValueError, match="motion_layers_per_block 2"):
        UNetMotionModel.from_unet2d(unet, MotionAdapter(**{**ADAPTER, "motion_layers_per_block": 2}))
    with pytest.raises(ValueError, match="flip_sin_to_cos"):
        UNetMotionModel.from_unet2d(UNet2DConditionModel(flip_sin_to_cos=False, **UNET), adapter)
    with pytest.raises(TypeError, match="MotionAdapter"):
        UNetMotionModel.from_unet2d(unet, unet)
    with pytest.raises(ValueError, match="divisible"):
        MotionAdapter(**{**ADAPTER, "motion_num_attention_heads": 3})


def test_inputs_are_checked_and_eval_mode_caches_nothing():
    model = video_unet(np.random.default_rng(6))[0].eval()
    x, context = np.zeros((2, 3, 4, 8, 8), np.float32), np.zeros((2, TOKENS, 6), np.float32)
    y = model(x, np.array([1, 2]), context)
    assert y.shape == (2, 2, 4, 8, 8) and y.dtype == np.float32
    assert all(m._cache is None for m in model.modules())
    with pytest.raises(ValueError, match="motion_max_seq_length=5"):
        model(np.zeros((2, 3, 6, 8, 8), np.float32), 1, context)
    with pytest.raises(ValueError, match="encoder_hidden_states must be"):
        model(x, 1, np.zeros((1, TOKENS, 6), np.float32))
    with pytest.raises(ValueError, match="timestep must be"):
        model(x, np.array([1, 2, 3]), context)
    with pytest.raises(ValueError, match="sample"):
        model(x[0], 1, context)


# last in the file: the module-scoped each_backend fixture leaves the reference backend on
@pytest.mark.usefixtures("each_backend")
def test_motion_module_gradients_to_every_parameter_and_the_input():
    rng = np.random.default_rng(0)
    module = randomise_proj_out(AnimateDiffTransformer3D(2, 4, num_layers=2, norm_num_groups=2, max_seq_length=4,
                                                         rng=rng), rng)
    report = gradcheck(FramesOf(module, 3), (rng.standard_normal((2 * 3, 4, 2, 3)),), rng, max_elements=12)
    assert len(report) == 1 + len(module.parameters())
