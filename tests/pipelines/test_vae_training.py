"""VAE training: the held-out loss falls, an interrupted and resumed run ends with the same
weights, the reconstruction losses' gradients, and latent normalisations (one factor, or per
channel) that give zero-mean, unit-variance latents."""

import numpy as np
import pytest

from tinydiff.models import AutoencoderKL
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pipelines.data_sources import make_source
from tinydiff.pipelines.latent import scale_latents, unscale_latents
from tinydiff.pipelines.vae_training import (VAETrainConfig, VAETrainer, latent_channel_statistics,
                                             latent_scaling_factor, psnr, reconstruction_loss)

TINY_VAE = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, sample_size=16, latent_channels=2,
                mid_block_add_attention=False)


def tiny_trainer(out_dir, steps=30, lr=3e-3):
    vae = AutoencoderKL(rng=np.random.default_rng(0), **TINY_VAE)
    config = VAETrainConfig(steps=steps, batch_size=8, lr=lr, warmup_steps=3, checkpoint_every=4, log_every=2,
                            scale_images=64, num_samples=4, beta=1e-2)
    return VAETrainer(vae, make_source("shapes", 8, seed=0, image_size=16), config, out_dir, progress=False)


def test_held_out_loss_falls_and_final_folder_has_the_scaling_factor(tmp_path):
    trainer = tiny_trainer(tmp_path)
    held_out = range(10**6, 10**6 + 4)
    before = trainer.evaluate(held_out)
    trainer.run()
    after = trainer.evaluate(held_out)
    assert after < 0.7 * before, (before, after)
    vae = load_model(tmp_path / "final")
    assert isinstance(vae, AutoencoderKL)
    # the default: per-channel statistics, measured, and a unit global factor
    assert vae.config["scaling_factor"] == 1.0
    assert vae.config["latents_mean"] == trainer.model.config["latents_mean"]
    assert len(vae.config["latents_std"]) == TINY_VAE["latent_channels"] and min(vae.config["latents_std"]) > 0
    assert (tmp_path / "samples" / "step-0000030.png").is_file()


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    straight = tiny_trainer(tmp_path / "straight", steps=10)
    straight.run()
    tiny_trainer(tmp_path / "chunks", steps=10).run(until=4)
    resumed = tiny_trainer(tmp_path / "chunks", steps=10)
    resumed.run(resume=True)
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert straight.log == resumed.log


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_reconstruction_loss_gradient(kind):
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    loss, grad = reconstruction_loss(pred, target, kind)
    for idx in [(0, 0, 0, 0), (1, 2, 3, 1), (0, 1, 2, 3)]:
        p = pred.copy()
        p[idx] += 1e-6
        plus = reconstruction_loss(p, target, kind)[0]
        p[idx] -= 2e-6
        assert abs((plus - reconstruction_loss(p, target, kind)[0]) / 2e-6 - grad[idx]) < 1e-6
    expected = np.abs(pred - target).mean() if kind == "l1" else ((pred - target) ** 2).mean()
    assert loss == pytest.approx(expected)
    with pytest.raises(ValueError, match="reconstruction"):
        reconstruction_loss(pred, target, "l2")


def test_scaling_factor_gives_unit_variance_and_psnr_definition():
    vae = AutoencoderKL(rng=np.random.default_rng(1), **TINY_VAE)
    images = make_source("shapes", 64, seed=3, image_size=16)(0)[0]
    factor = latent_scaling_factor(vae, images, np.random.default_rng(0))
    z = vae.encode(images).sample(generator=np.random.default_rng(5)) * factor
    assert abs(z.std() - 1.0) < 0.05
    # per channel: every channel of the normalised latents has mean 0 and std 1
    mean, std = latent_channel_statistics(vae, images, np.random.default_rng(0))
    vae.config.update(latents_mean=mean, latents_std=std, scaling_factor=1.0)
    raw = vae.encode(images).sample(generator=np.random.default_rng(5))
    z = scale_latents(vae, raw)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=0.05)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1.0, atol=0.05)
    np.testing.assert_allclose(unscale_latents(vae, z), raw, rtol=1e-5, atol=1e-5)
    # diffusers' formula, (z - latents_mean) * scaling_factor / latents_std, with a factor too
    vae.config["scaling_factor"] = 0.5
    expected = (raw - np.array(mean)[:, None, None]) * 0.5 / np.array(std)[:, None, None]
    np.testing.assert_allclose(scale_latents(vae, raw), expected, rtol=1e-5, atol=1e-6)
    assert psnr(images, images + 0.02) == pytest.approx(10 * np.log10(4 / 0.0004))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="reconstruction"):
        VAETrainConfig(steps=10, warmup_steps=1, reconstruction="l3").validate()
    with pytest.raises(ValueError, match="beta"):
        VAETrainConfig(steps=10, warmup_steps=1, beta=-1.0).validate()
    with pytest.raises(ValueError, match="latent_norm"):
        VAETrainConfig(steps=10, warmup_steps=1, latent_norm="pixel").validate()


def test_global_normalisation_stores_one_factor(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=4)
    trainer.config.latent_norm = "global"
    trainer.run()
    vae = load_model(tmp_path / "final")
    assert vae.config["scaling_factor"] != 1.0 and vae.config["latents_mean"] is None


def test_latent_statistics_in_the_config_are_checked():
    with pytest.raises(ValueError, match="latents_mean: expected 2 entries"):
        AutoencoderKL(**{**TINY_VAE, "latents_mean": [0.0], "latents_std": [1.0]})
    with pytest.raises(ValueError, match="together"):
        AutoencoderKL(**{**TINY_VAE, "latents_mean": [0.0, 1.0]})
    with pytest.raises(ValueError, match="positive"):
        AutoencoderKL(**{**TINY_VAE, "latents_mean": [0.0, 1.0], "latents_std": [1.0, 0.0]})
