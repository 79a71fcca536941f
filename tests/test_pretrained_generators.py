"""The shipped generators of lesson 11 are what tinydiff.pretrained.train_generators trains, each
trained for the same budget, and small."""

import json

import numpy as np

from tinydiff.pipelines import load_pipeline
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pipelines.gan_training import load_gan_model
from tinydiff.pipelines.generator_training import DIFFUSION_UNET
from tinydiff.pretrained.train_generators import PARTS, TRANSFORMER_MODEL, VAE_MODEL, generators_dir


def test_the_shipped_generators_are_the_scripts_models_trained_for_one_budget():
    folder = generators_dir()
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 5e6  # a few MB in all
    vae, transformer = load_model(folder / "vae"), load_model(folder / "pixel_transformer")
    assert all(vae.config[k] == v for k, v in VAE_MODEL.items())
    assert all(transformer.config[k] == v for k, v in TRANSFORMER_MODEL.items())
    unet, _ = load_pipeline(folder / "diffusion")
    assert unet.config["block_out_channels"] == DIFFUSION_UNET["block_out_channels"]
    assert unet.config.get("num_class_embeds") is None  # unconditional
    gan = load_gan_model(folder / "gan" / "generator")
    assert gan(gan.sample_latents(2, np.random.default_rng(0))).shape == (2, 1, 16, 16)
    training = json.loads((folder / "training.json").read_text())
    assert {training[p]["budget_seconds"] for p in PARTS} == {240.0}
    assert all(training[p]["steps"] > 10 for p in PARTS)
