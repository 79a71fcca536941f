"""The models shipped inside the package: they load, they are what the training scripts build,
and `tinydiff sample` with no --model uses the glyph UNet. (Their sample quality is measured by
`python -m tinydiff.pretrained.train_glyphs --part measure` and lesson 05, not here: that
takes minutes.)"""

import numpy as np
from PIL import Image

from tinydiff.cli import main
from tinydiff.data import GlyphDataset
from tinydiff.models import AutoencoderKL, UNet2DModel
from tinydiff.pipelines import load_pipeline
from tinydiff.pipelines.latent import load_pipeline_vae
from tinydiff.pretrained import CLASSIFIER_SIZE, HERE, glyph_judge, glyph_model_dir, train_glyphs, train_shapes


def test_the_shipped_glyph_unet_is_the_training_scripts_model():
    model, scheduler_config = load_pipeline(glyph_model_dir())
    assert isinstance(model, UNet2DModel)
    built = UNet2DModel(rng=np.random.default_rng(0), **train_glyphs.GLYPH_UNET)
    assert model.config == built.config
    for key, value in train_glyphs.GLYPH_SCHEDULER.items():
        assert scheduler_config[key] == value
    # every weight is a finite number and training moved it away from its initial value
    for (name, p), (_, p0) in zip(model.named_parameters(), built.named_parameters()):
        assert np.all(np.isfinite(p.data)), name
    assert not np.allclose(model.conv_in.weight.data, built.conv_in.weight.data)


def test_sample_with_no_model_uses_the_shipped_glyph_unet(tmp_path, capsys):
    grid, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    assert main(["sample", "--num", "10", "--steps", "4", "--out", str(grid), "--npz", str(npz)]) == 0
    arrays = np.load(npz)
    size = train_glyphs.GLYPH_SIZE
    assert arrays["samples"].shape == (10, 1, size, size)
    np.testing.assert_array_equal(arrays["labels"], np.arange(10))
    # 16x16 glyphs are drawn 4x larger: ten tiles of 64 pixels and their padding
    assert Image.open(grid).size[0] >= 10 * 64


def test_the_shipped_classifier_reads_real_glyphs_and_refuses_noise():
    judge = glyph_judge(num_reference=200)
    images, labels = GlyphDataset(seed=4321, size=CLASSIFIER_SIZE)[0:200]
    real = judge.score(images, labels)
    assert real["recognised"] >= 0.95 and real["agreement"] >= 0.97
    noise = np.random.default_rng(0).uniform(-1, 1, images.shape).astype(np.float32)
    assert judge.score(noise)["recognised"] <= 0.05


def test_the_shipped_latent_pipeline_has_a_vae_with_per_channel_statistics():
    unet, scheduler_config = load_pipeline(HERE / "shapes_latent")
    vae = load_pipeline_vae(HERE / "shapes_latent")
    assert isinstance(vae, AutoencoderKL) and unet.config["in_channels"] == vae.config["latent_channels"]
    assert len(vae.config["latents_mean"]) == len(vae.config["latents_std"]) == vae.config["latent_channels"]
    assert vae.config["scaling_factor"] == 1.0
    assert scheduler_config["clip_sample"] is False
    assert scheduler_config["prediction_type"] == "v_prediction"


def test_the_shipped_pixel_baseline_is_the_training_scripts_model():
    unet, scheduler_config = load_pipeline(HERE / "shapes_pixel")
    built = UNet2DModel(rng=np.random.default_rng(0), **train_shapes.SHAPES_PIXEL_UNET)
    assert unet.config == built.config
    # the latent UNet's recipe: v-prediction under the cosine schedule
    assert scheduler_config["prediction_type"] == "v_prediction"
    assert scheduler_config["beta_schedule"] == "squaredcos_cap_v2"
    assert all(np.all(np.isfinite(p.data)) for p in unet.parameters())
    assert not np.allclose(unet.conv_in.weight.data, built.conv_in.weight.data)
