"""A tinydiff LoRA file loaded by diffusers' StableDiffusionPipeline.load_lora_weights (with
peft) on the exported tiny pipeline gives tinydiff's UNet and text-encoder outputs, in float64.
alpha != rank, so the scale diffusers applies can only come from the file's
lora_adapter_metadata. Adapters on attention (Linear), 3x3 convs (stride 1 and 2) and 1x1 convs.
Skipped where torch, diffusers, transformers or peft is missing."""

import sys
from pathlib import Path

import numpy as np
import pytest
from test_export_sd import PROMPTS, tiny_parts, tiny_pipeline

from tinydiff.nn.lora_model import TEXT_ENCODER_TARGETS, add_lora, lora_parameters, set_adapters
from tinydiff.pipelines.export_sd import export_stable_diffusion
from tinydiff.pipelines.lora_files import save_lora_weights

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from test_unet_condition_against_diffusers import float64_timesteps  # noqa: E402

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv_shortcut", "downsamplers.0.conv")


def test_diffusers_load_lora_weights_gives_tinydiffs_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    parts = tiny_parts(seed=5)
    export_stable_diffusion(tiny_pipeline(parts), tmp_path / "sd")  # the base model, before adapters
    rng = np.random.default_rng(6)
    adapted = add_lora(parts.unet, rank=3, alpha=7.0, target_modules=UNET_TARGETS, rng=rng)
    assert any(n.endswith("conv1") for n in adapted) and any(n.endswith("downsamplers.0.conv") for n in adapted)
    add_lora(parts.text_encoder, rank=2, alpha=5.0, target_modules=TEXT_ENCODER_TARGETS, rng=rng)
    for model in (parts.unet, parts.text_encoder):  # as if trained: B off zero
        for p in lora_parameters(model)[1::2]:
            p.data[...] = 0.3 * rng.standard_normal(p.shape)
    save_lora_weights(tmp_path / "lora", unet=parts.unet, text_encoder=parts.text_encoder)

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(tmp_path / "sd")
    pipe.load_lora_weights(tmp_path / "lora", adapter_name="ours")
    pipe.unet.to(torch.float64).eval()
    config = parts.unet.config  # diffusers' float32 timestep features would cap agreement at ~1e-7
    pipe.unet.time_proj = float64_timesteps(torch, config["block_out_channels"][0], config["flip_sin_to_cos"],
                                            config["freq_shift"])
    pipe.text_encoder.to(torch.float64).eval()
    for model in (parts.unet, parts.text_encoder):
        model.to(np.float64).eval()

    ids = parts.tokenizer(PROMPTS)
    ours_text = parts.text_encoder(ids).last_hidden_state
    with torch.no_grad():
        theirs_text = pipe.text_encoder(torch.tensor(ids)).last_hidden_state.numpy()
    sample = rng.standard_normal((2, 2, 4, 4))
    t = np.array([3, 71])
    ours = parts.unet(sample, t, encoder_hidden_states=ours_text)
    with torch.no_grad():
        theirs = pipe.unet(torch.tensor(sample), torch.tensor(t), encoder_hidden_states=torch.tensor(ours_text)).sample.numpy()
    text_diff, unet_diff = float(np.max(np.abs(ours_text - theirs_text))), float(np.max(np.abs(ours - theirs)))
    print(f"max |diffusers - tinydiff|: text encoder {text_diff:.2e}, UNet {unet_diff:.2e}")
    assert text_diff < 1e-10 and unet_diff < 1e-10

    # the adapter matters (so the comparison is not of two base models), and diffusers' scale
    # follows tinydiff's adapter weight
    set_adapters(parts.unet, "default", 0.0)
    assert np.max(np.abs(parts.unet(sample, t, encoder_hidden_states=ours_text) - ours)) > 1e-2
    set_adapters(parts.unet, "default", 0.4)
    pipe.set_adapters("ours", 0.4)
    with torch.no_grad():
        theirs = pipe.unet(torch.tensor(sample), torch.tensor(t), encoder_hidden_states=torch.tensor(ours_text)).sample.numpy()
    assert np.max(np.abs(parts.unet(sample, t, encoder_hidden_states=ours_text) - theirs)) < 1e-10
