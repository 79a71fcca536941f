"""export_stable_diffusion: the folded VAE against tinydiff's latent scaling (float64), the
folder's parts read back, and diffusers' StableDiffusionPipeline on the exported folder
reproducing tinydiff's images (skipped where torch, diffusers or transformers is missing)."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from tinydiff.cli import main
from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.diffusion import DDIMScheduler
from tinydiff.models import UNet2DConditionModel
from tinydiff.models.clip_text import CLIPTextModel, CLIPTextModelWithProjection
from tinydiff.models.vae import AutoencoderKL
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pipelines.export_sd import export_stable_diffusion, fold_latent_normalization
from tinydiff.pipelines.latent import latent_shift_and_scale, scale_latents, unscale_latents
from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
from tinydiff.pipelines.text_to_image import TextToImagePipeline

TINY_VAE = dict(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=2, norm_num_groups=4, sample_size=8,
                scaling_factor=0.7, latents_mean=[0.3, -0.5], latents_std=[1.7, 0.4])
TINY_UNET = dict(sample_size=4, in_channels=2, out_channels=2, block_out_channels=(8, 16), norm_num_groups=4,
                 cross_attention_dim=8, attention_head_dim=2, layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
PROMPTS = ["a red circle", "a small blue square top left"]
NEGATIVE = ["", "a green triangle"]


def shaken(model, rng, scale=0.2):
    """The model with every parameter moved off its initial value (zero-initialised layers and
    unit norms would otherwise hide a wrong mapping)."""
    model.load_state_dict({k: v + scale * rng.standard_normal(v.shape) for k, v in model.state_dict().items()})
    return model


def tiny_parts(seed=0):
    rng = np.random.default_rng(seed)
    tokenizer = WordTokenizer(model_max_length=12)
    text_encoder = CLIPTextModelWithProjection(
        vocab_size=tokenizer.vocab_size, hidden_size=8, intermediate_size=16, projection_dim=6, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=12, pad_token_id=0, bos_token_id=1, eos_token_id=3, rng=rng)
    return SimpleNamespace(
        unet=shaken(UNet2DConditionModel(rng=rng, **TINY_UNET), rng),
        vae=shaken(AutoencoderKL(rng=rng, **TINY_VAE), rng),
        text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=DDIMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear", beta_start=0.001,
                                beta_end=0.02, clip_sample=False, set_alpha_to_one=False, steps_offset=1))


def test_folded_vae_decodes_latents_over_scaling_factor_as_tinydiff_decodes_unscaled_latents():
    vae = tiny_parts().vae.to(np.float64)
    folded = fold_latent_normalization(vae)
    assert folded.config["latents_mean"] is None and folded.config["latents_std"] is None
    z = np.random.default_rng(1).standard_normal((3, 2, 4, 4))
    ours = vae.decode(unscale_latents(vae, z))
    theirs = folded.decode(z / folded.config["scaling_factor"])  # what StableDiffusionPipeline decodes
    assert np.max(np.abs(ours - theirs)) < 1e-12 * max(1.0, np.max(np.abs(ours)))
    assert np.max(np.abs(ours - vae.decode(z / 0.7))) > 1e-2  # the fold is not a no-op


def test_folded_vae_encodes_to_what_tinydiff_scales_latents_to():
    vae = tiny_parts().vae.to(np.float64)
    folded = fold_latent_normalization(vae)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 8, 8))
    ours, theirs = vae.encode(x), folded.encode(x)
    sf = vae.config["scaling_factor"]
    # diffusers' users multiply the posterior by scaling_factor: that must be scale_latents
    assert np.max(np.abs(theirs.mean * sf - scale_latents(vae, ours.mean))) < 1e-12
    std_scale = latent_shift_and_scale(vae)[1]  # scaling_factor / latents_std, as scale_latents uses
    assert np.max(np.abs(theirs.std * sf - ours.std * std_scale) / (ours.std * std_scale)) < 1e-12
    # and decoding the exported encoder's posterior mean gives tinydiff's reconstruction
    assert np.max(np.abs(folded.decode(theirs.mean) - vae.decode(ours.mean))) < 1e-12


def test_export_folder_holds_the_parts_diffusers_names(tmp_path):
    parts = tiny_parts()
    folder = export_stable_diffusion(parts, tmp_path / "sd")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["requires_safety_checker"] is False
    assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    assert "latents_mean" not in vae_config and "latents_std" not in vae_config
    unet = load_model(folder / "unet")
    for name, p in parts.unet.named_parameters():
        np.testing.assert_array_equal(dict(unet.named_parameters())[name].data, p.data)
    text_config = json.loads((folder / "text_encoder" / "config.json").read_text())
    assert text_config["architectures"] == ["CLIPTextModel"]
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")  # no text_projection left
    ids = parts.tokenizer(PROMPTS)
    np.testing.assert_array_equal(text_encoder(ids).last_hidden_state, parts.text_encoder(ids).last_hidden_state)
    assert WordTokenizer.load(folder / "tokenizer").tokens == parts.tokenizer.tokens
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler_config["_class_name"] == "DDIMScheduler" and scheduler_config["steps_offset"] == 1


def test_export_refuses_parts_that_do_not_fit(tmp_path):
    parts = tiny_parts()
    with pytest.raises(TypeError, match="pipeline.unet: expected a UNet2DConditionModel"):
        export_stable_diffusion(SimpleNamespace(**{**vars(parts), "unet": parts.vae}), tmp_path / "a")
    with pytest.raises(TypeError, match="lacks \\['tokenizer'\\]"):
        export_stable_diffusion(SimpleNamespace(**{k: v for k, v in vars(parts).items() if k != "tokenizer"}),
                                tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def tiny_pipeline(parts, scheduler=None):
    """The parts as a TextToImagePipeline (scheduler: the parts' own unless given)."""
    return TextToImagePipeline(parts.unet, parts.vae, parts.text_encoder, parts.tokenizer,
                               scheduler or parts.scheduler, guidance_scale=3.0)


def test_diffusers_stable_diffusion_pipeline_reproduces_tinydiffs_images(tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    parts = tiny_parts(seed=3)
    for model in (parts.unet, parts.vae, parts.text_encoder):
        model.eval()
    pipeline = tiny_pipeline(parts)
    folder = export_stable_diffusion(pipeline, tmp_path / "sd")
    latents = np.random.default_rng(4).standard_normal((2, 2, 4, 4)).astype(np.float32)
    # tinydiff's own pipeline: guided DDIM (eta 0) from these latents, decoded; as diffusers' "np"
    images = pipeline(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=4.0, num_inference_steps=6,
                      rng=np.random.default_rng(5), latents=latents)
    ours = (images / 2 + 0.5).transpose(0, 2, 3, 1)  # (B, 3, H, W) in [-1, 1] -> (B, H, W, 3) in [0, 1]

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, height=8, width=8, num_inference_steps=6, guidance_scale=4.0,
                  latents=torch.tensor(latents), output_type="np").images
    assert theirs.shape == ours.shape == (2, 8, 8, 3)
    difference = float(np.max(np.abs(theirs - ours)))
    print(f"max |diffusers - tinydiff| = {difference:.2e}")
    assert difference < 1e-4
    # images mostly inside (0, 1), not clipped flat, and not all the same
    assert np.mean((ours > 0) & (ours < 1)) > 0.3 and np.max(np.abs(ours[0] - ours[1])) > 1e-2


def test_cli_exports_a_text_to_image_folder(tmp_path, capsys):
    parts = tiny_parts()
    # a folder with DDPM, as `tinydiff train` writes none but a user may: the export is DDIM
    ddpm = scheduler_from_config("ddpm", scheduler_config(parts.scheduler))
    tiny_pipeline(parts, ddpm).save_pretrained(tmp_path / "t2i")
    out = tmp_path / "sd"
    assert main(["export", "--model", str(tmp_path / "t2i"), "--diffusers", str(out)]) == 0
    assert "StableDiffusionPipeline.from_pretrained(DIR)" in capsys.readouterr().out
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["scheduler"] == ["diffusers", "DDIMScheduler"]
    vae = load_model(out / "vae")
    for name, p in fold_latent_normalization(parts.vae).named_parameters():
        np.testing.assert_array_equal(dict(vae.named_parameters())[name].data, p.data)
    # exporting again over its own export needs --overwrite, and then replaces it
    with pytest.raises(SystemExit, match="--overwrite"):
        main(["export", "--model", str(tmp_path / "t2i"), "--diffusers", str(out)])
    assert main(["export", "--model", str(tmp_path / "t2i"), "--diffusers", str(out), "--overwrite"]) == 0
    # a broken folder is one line naming what is missing
    shutil.rmtree(tmp_path / "t2i" / "tokenizer")
    with pytest.raises(SystemExit, match="needs tokenizer/"):
        main(["export", "--model", str(tmp_path / "t2i"), "--diffusers", str(tmp_path / "other")])
