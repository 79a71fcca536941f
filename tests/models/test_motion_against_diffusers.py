"""UNetMotionModel and MotionAdapter against diffusers' (0.42): a MotionAdapter saved by
tinydiff and the image UNet it inflates load in diffusers (no missing or unexpected keys), and
diffusers' UNetMotionModel.from_unet2d(unet, motion_adapter) gives tinydiff's output, gradients
to the sample and the text states and every parameter's gradient, in float64. Skipped where torch
or diffusers is not installed."""

import json

import numpy as np
import pytest
from test_unet_condition import TINY as UNET
from test_unet_condition_against_diffusers import float64_timesteps

from tinydiff.models import UNet2DConditionModel
from tinydiff.models.motion import MotionAdapter, UNetMotionModel
from tinydiff.models.motion_blocks import sinusoidal_positions
from tinydiff.pipelines.checkpoint import save_model

ADAPTERS = {
    "mid block, one head count": dict(motion_num_attention_heads=2, motion_max_seq_length=6, use_motion_mid_block=True),
    "no mid block, heads per level, 2 layers": dict(motion_num_attention_heads=(2, 4), motion_max_seq_length=5,
                                                    motion_transformer_layers_per_block=2, use_motion_mid_block=False),
}
FRAMES, TOKENS = 4, 3
AGREEMENT = 1e-10  # float64 on both sides: summation order only


def adapter_with_motion(config, seed):
    """A MotionAdapter whose proj_out are random (not zero), so that the motion modules matter."""
    rng = np.random.default_rng(seed)
    adapter = MotionAdapter(block_out_channels=UNET["block_out_channels"], motion_layers_per_block=1,
                            motion_norm_num_groups=UNET["norm_num_groups"], rng=rng, **config)
    for name, p in adapter.named_parameters():
        if ".proj_out." in name:
            p.data[...] = rng.uniform(-0.3, 0.3, p.shape)
    return adapter


def max_abs(ours, theirs):
    return float(np.max(np.abs(ours - theirs.detach().numpy())))


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_saved_adapter_and_unet_give_diffusers_from_unet2d_the_same_outputs_and_gradients(name, tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    unet = UNet2DConditionModel(rng=np.random.default_rng(1), **UNET).to(np.float64)
    adapter = adapter_with_motion(ADAPTERS[name], 2).to(np.float64)
    adapter.save_pretrained(tmp_path / "motion_adapter", dtype=np.float64)
    save_model(unet, tmp_path / "unet", dtype=np.float64)
    their_adapter, info = diffusers.MotionAdapter.from_pretrained(
        tmp_path / "motion_adapter", torch_dtype=torch.float64, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for key, value in adapter.config.items():
        assert json.loads(json.dumps(their_adapter.config[key])) == value, key
    their_unet = diffusers.UNet2DConditionModel.from_pretrained(tmp_path / "unet", torch_dtype=torch.float64)
    theirs = diffusers.UNetMotionModel.from_unet2d(their_unet, their_adapter).double()
    ours = UNetMotionModel.from_unet2d(unet, adapter)
    for key, value in ours.config.items():  # the same config under diffusers' keys
        if key == "motion_cross_attention_dim":  # tinydiff's extension; None: diffusers' motion modules
            assert value is None and key not in theirs.config
            continue
        assert json.loads(json.dumps(theirs.config[key])) == json.loads(json.dumps(value)), key
    # diffusers computes its sinusoids in float32; float64 ones here, as tinydiff's
    theirs.time_proj = float64_timesteps(torch, UNET["block_out_channels"][0], True, 0)
    for module_name, module in theirs.named_modules():
        if module_name.endswith("pos_embed"):
            module.pe = torch.tensor(sinusoidal_positions(*module.pe.shape[1:])[None])

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, UNET["in_channels"], FRAMES, 8, 8))
    context = rng.standard_normal((2, TOKENS, UNET["cross_attention_dim"]))
    t = np.array([7, 901])
    y = ours(x, t, context)
    tx, tcontext = torch.tensor(x, requires_grad=True), torch.tensor(context, requires_grad=True)
    # diffusers' UNetMotionModel takes the text states repeated per frame (its pipeline repeats them)
    ty = theirs(tx, torch.tensor(t), tcontext.repeat_interleave(FRAMES, dim=0)).sample

    g = rng.standard_normal(y.shape)
    ours.zero_grad()
    dx, dcontext = ours.backward(g)
    ty.backward(torch.tensor(g))
    their_params = dict(theirs.named_parameters())
    assert sorted(their_params) == sorted(n for n, _ in ours.named_parameters())
    pairs = {"output": (y, ty), "d sample": (dx, tx.grad), "d encoder_hidden_states": (dcontext, tcontext.grad),
             **{name: (p.grad, their_params[name].grad) for name, p in ours.named_parameters()}}
    differences = {name: max_abs(a, b) for name, (a, b) in pairs.items()}
    relative = {name: differences[name] / max(float(np.max(np.abs(a))), 1.0) for name, (a, _) in pairs.items()}
    worst = max(relative, key=relative.get)
    print(f"max abs differences: output {differences['output']:.1e}, d sample {differences['d sample']:.1e}, "
          f"d encoder_hidden_states {differences['d encoder_hidden_states']:.1e}, "
          f"parameter gradients {max(list(differences.values())[3:]):.1e}")
    assert relative[worst] < AGREEMENT, f"{worst}: max abs difference {differences[worst]:.1e}"


def test_diffusers_saved_adapter_loads_in_tinydiff(tmp_path):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.MotionAdapter(block_out_channels=(8, 16), motion_layers_per_block=1,
                                     motion_num_attention_heads=2, motion_norm_num_groups=4, motion_max_seq_length=6)
    theirs.save_pretrained(tmp_path / "adapter")
    ours = MotionAdapter.from_pretrained(tmp_path / "adapter")
    state = {k: v.numpy() for k, v in theirs.state_dict().items() if not k.endswith("pos_embed.pe")}
    assert sorted(state) == sorted(ours.state_dict())
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    buffers = ours.state_dict_with_buffers()
    pe = {k: v.numpy() for k, v in theirs.state_dict().items() if k.endswith("pos_embed.pe")}
    assert sorted(pe) == sorted(set(buffers) - set(state))
    for k, v in pe.items():
        np.testing.assert_allclose(buffers[k], v, atol=1e-6)
