"""UNet2DConditionModel against diffusers' UNet2DConditionModel holding the same weights, in
float64: the output, the gradients to the sample and to encoder_hidden_states, and every
parameter's gradient; and a folder tinydiff saves loads with diffusers' from_pretrained with no
missing or unexpected keys. Skipped where torch or diffusers is not installed."""

import json
import math

import numpy as np
import pytest

from tinydiff.models import UNet2DConditionModel
from tinydiff.pipelines.checkpoint import load_arrays, save_model

CONFIGS = {
    "SD 1.x style": dict(
        sample_size=8, in_channels=3, out_channels=2, block_out_channels=(8, 16), norm_num_groups=4,
        cross_attention_dim=6, attention_head_dim=2, layers_per_block=1, num_class_embeds=3,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
    "SD 2 style": dict(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), norm_num_groups=4,
        cross_attention_dim=5, attention_head_dim=(2, 4, 2), layers_per_block=2, transformer_layers_per_block=2,
        use_linear_projection=True, flip_sin_to_cos=False, freq_shift=1, mid_block_scale_factor=2.0,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")),
}
TOKENS = 3
# float64 throughout on both sides (diffusers' float32 timestep features are replaced, below),
# so the two differ by summation order only
AGREEMENT = 1e-10


def float64_timesteps(torch, dim, flip_sin_to_cos, shift):
    """diffusers' get_timestep_embedding (Vaswani et al. 2017's sinusoids) in float64: diffusers
    computes them in float32 whatever the model's dtype, which would limit the agreement to
    float32's round-off."""

    class Timesteps(torch.nn.Module):
        def forward(self, t):
            half = dim // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / (half - shift))
            angles = t.to(torch.float64)[:, None] * freqs[None, :]
            parts = [torch.cos(angles), torch.sin(angles)] if flip_sin_to_cos else [torch.sin(angles), torch.cos(angles)]
            return torch.cat(parts, dim=-1)

    return Timesteps()


def max_abs(ours, theirs):
    return float(np.max(np.abs(ours - theirs.detach().numpy())))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_outputs_and_every_gradient_match_diffusers_in_float64(name):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    config = CONFIGS[name]
    ours = UNet2DConditionModel(rng=np.random.default_rng(1), **config).to(np.float64)
    theirs = diffusers.UNet2DConditionModel(**ours.config).double()
    missing, unexpected = theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()},
                                                 strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    theirs.time_proj = float64_timesteps(torch, config["block_out_channels"][0], ours.config["flip_sin_to_cos"],
                                         ours.config["freq_shift"])
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, config["in_channels"], 8, 8))
    context = rng.standard_normal((2, TOKENS, config["cross_attention_dim"]))
    t = np.array([7, 901])
    labels = np.array([2, 0]) if config.get("num_class_embeds") else None
    y = ours(x, t, context, labels)
    tx, tcontext = torch.tensor(x, requires_grad=True), torch.tensor(context, requires_grad=True)
    ty = theirs(tx, torch.tensor(t), tcontext, class_labels=None if labels is None else torch.tensor(labels)).sample
    scale = float(np.max(np.abs(y)))
    assert max_abs(y, ty) < AGREEMENT * max(scale, 1.0)

    g = rng.standard_normal(y.shape)
    ours.zero_grad()
    dx, dcontext = ours.backward(g)
    ty.backward(torch.tensor(g))
    assert max_abs(dx, tx.grad) < AGREEMENT * max(float(np.max(np.abs(dx))), 1.0)
    assert max_abs(dcontext, tcontext.grad) < AGREEMENT * max(float(np.max(np.abs(dcontext))), 1.0)
    their_grads = dict(theirs.named_parameters())
    assert len(their_grads) == len(ours.parameters())
    largest = max(float(np.max(np.abs(p.grad))) for p in ours.parameters())
    errors = {n: max_abs(p.grad, their_grads[n].grad) for n, p in ours.named_parameters()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < AGREEMENT * max(largest, 1.0), f"{worst}: max abs difference {errors[worst]:.1e}"


def test_a_saved_folder_loads_in_diffusers_with_every_key_and_the_same_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    ours = UNet2DConditionModel(rng=np.random.default_rng(5), **CONFIGS["SD 2 style"])
    save_model(ours, tmp_path / "unet")
    theirs, info = diffusers.UNet2DConditionModel.from_pretrained(tmp_path / "unet", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    for key, value in ours.config.items():  # config.json round-trips through diffusers' config
        assert json.loads(json.dumps(theirs.config[key])) == json.loads(json.dumps(value)), key

    # and back: the folder's config and weights rebuild the same tinydiff model
    config = {k: v for k, v in json.loads((tmp_path / "unet" / "config.json").read_text()).items()
              if not k.startswith("_")}
    again = UNet2DConditionModel(**config)
    again.load_state_dict(load_arrays(tmp_path / "unet" / "diffusion_pytorch_model.safetensors"))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    context = rng.standard_normal((1, TOKENS, 5)).astype(np.float32)
    ours.eval()
    again.eval()
    y = ours(x, 500, context)
    np.testing.assert_array_equal(again(x, 500, context), y)
    with torch.no_grad():
        ty = theirs(torch.tensor(x), 500, torch.tensor(context)).sample.numpy()
    np.testing.assert_allclose(ty, y, rtol=1e-4, atol=1e-5)  # float32 on both sides
