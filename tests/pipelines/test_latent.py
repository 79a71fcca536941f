"""Latent diffusion: the latent data source, and the command line end to end (train-vae ->
train --latent -> sample through the VAE -> export with vae/), which diffusers loads where it
is installed."""

import json

import numpy as np
import pytest

from tinydiff.cli import main
from tinydiff.models import AutoencoderKL, UNet2DModel
from tinydiff.pipelines import load_pipeline
from tinydiff.pipelines.latent import LatentEpochs, decode_latents, load_pipeline_vae, sample_latent
from tinydiff.pipelines.sampling import scheduler_from_config


def test_latent_epochs_are_keyed_by_step_and_scaled():
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((40, 2, 4, 4)).astype(np.float32) * 3
    std = np.full_like(mean, 0.5)
    labels = np.arange(40)
    data = LatentEpochs(mean, std, 0.25, batch_size=8, seed=1, labels=labels)
    z, y = data(7)
    z_again, y_again = LatentEpochs(mean, std, 0.25, batch_size=8, seed=1, labels=labels)(7)
    np.testing.assert_array_equal(z, z_again)
    np.testing.assert_array_equal(y, y_again)
    # each latent belongs to its label's image: (z / factor - mean) / std is standard normal noise
    eps = (z / 0.25 - mean[y]) / std[y]
    assert np.abs(eps).max() < 6 and 0.5 < eps.std() < 1.5
    assert not np.array_equal(data(7)[0], data(8)[0])
    with pytest.raises(ValueError, match="batch_size"):
        LatentEpochs(mean, std, 1.0, batch_size=41, seed=0)


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    assert main(["train-vae", "--dataset", "shapes", "--out", str(root / "vae"), "--steps", "3",
                 "--batch-size", "4", "--image-size", "16", "--channels", "8,8", "--groups", "4",
                 "--latent-channels", "2", "--checkpoint-every", "2", "--sample-every", "0"]) == 0
    assert main(["train", "--dataset", "shapes", "--latent", str(root / "vae"), "--latent-images", "32",
                 "--out", str(root / "ldm"), "--steps", "3", "--batch-size", "4", "--image-size", "16",
                 "--channels", "8,16", "--attention", "0,1", "--checkpoint-every", "2", "--sample-every", "0",
                 "--warmup-steps", "1"]) == 0
    return root


def test_cli_trains_a_latent_model_and_samples_through_the_vae(latent_run, tmp_path):
    final = latent_run / "ldm" / "final"
    index = json.loads((final / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    unet, scheduler_config = load_pipeline(final)
    assert scheduler_config["clip_sample"] is False  # scaled latents are not confined to [-1, 1]
    vae = load_pipeline_vae(final)
    assert isinstance(unet, UNet2DModel) and isinstance(vae, AutoencoderKL)
    assert unet.config["sample_size"] == 8 and unet.config["in_channels"] == 2
    # a checkpoint folder finds the run's VAE too
    checkpoint = latent_run / "ldm" / "checkpoints" / "step-0000002"
    assert load_pipeline_vae(checkpoint).config == vae.config
    assert load_pipeline_vae(latent_run / "vae" / "final") is None  # a plain model folder: no VAE inside

    out = tmp_path / "grid.png"
    assert main(["sample", "--model", str(final), "--num", "3", "--steps", "4", "--out", str(out),
                 "--npz", str(tmp_path / "s.npz"), "--gif", str(tmp_path / "d.gif")]) == 0
    samples = np.load(tmp_path / "s.npz")["samples"]
    assert samples.shape == (3, 3, 16, 16) and out.is_file() and (tmp_path / "d.gif").is_file()
    # the same samples through the library
    scheduler = scheduler_from_config("ddim", load_pipeline(final)[1])
    again = sample_latent(unet, scheduler, vae, 3, np.random.default_rng(0), 4)
    np.testing.assert_allclose(np.clip(again, -1, 1), samples, atol=1e-5)


def test_decode_undoes_the_latent_normalisation(latent_run):
    vae = load_pipeline_vae(latent_run / "ldm" / "final")
    mean, std = np.array(vae.config["latents_mean"]), np.array(vae.config["latents_std"])
    z = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(np.float32)
    direct = vae.eval().decode((z * std[:, None, None] + mean[:, None, None]).astype(np.float32))
    np.testing.assert_allclose(decode_latents(vae, z), direct, rtol=1e-5, atol=1e-6)


def test_export_writes_a_vae_diffusers_loads(latent_run, tmp_path):
    assert main(["export", "--diffusers", str(tmp_path / "hf"), "--model", str(latent_run / "ldm" / "final")]) == 0
    assert (tmp_path / "hf" / "vae" / "config.json").is_file()
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.AutoencoderKL.from_pretrained(tmp_path / "hf", subfolder="vae")
    ours = load_pipeline_vae(tmp_path / "hf")
    assert theirs.config.scaling_factor == pytest.approx(ours.config["scaling_factor"])
    np.testing.assert_allclose(theirs.config.latents_mean, ours.config["latents_mean"])
    np.testing.assert_allclose(theirs.config.latents_std, ours.config["latents_std"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        mean = theirs.encode(torch.tensor(x)).latent_dist.mean.numpy()
        np.testing.assert_allclose(ours.eval().encode(x).mean, mean, rtol=1e-4, atol=1e-5)
        z = mean
        np.testing.assert_allclose(ours.decode(z), theirs.decode(torch.tensor(z)).sample.numpy(), rtol=1e-4, atol=1e-4)


def test_resuming_on_another_vae_is_refused(tmp_path):
    """A latent run's checkpoints decode with the VAE kept in OUT/vae; resuming while the
    --latent VAE's weights changed meanwhile (retrained in place) would train on other latents,
    so it is refused in one line; with the VAE put back the run resumes."""
    from tinydiff.pipelines import checkpoint as ckpt

    assert main(["train-vae", "--dataset", "shapes", "--out", str(tmp_path / "vae"), "--steps", "2",
                 "--batch-size", "4", "--image-size", "16", "--channels", "8,8", "--groups", "4",
                 "--latent-channels", "2", "--sample-every", "0"]) == 0
    argv = ["train", "--dataset", "shapes", "--latent", str(tmp_path / "vae"), "--latent-images", "16",
            "--out", str(tmp_path / "ldm"), "--steps", "2", "--batch-size", "4", "--image-size", "16",
            "--channels", "8,16", "--attention", "0,1", "--checkpoint-every", "1", "--sample-every", "0",
            "--warmup-steps", "1"]
    assert main(argv) == 0
    weights_file = tmp_path / "vae" / "final" / ckpt.WEIGHTS_NAME
    original = weights_file.read_bytes()
    weights = ckpt.load_arrays(weights_file)
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.01  # "retrained"
    ckpt.save_arrays(weights_file, weights)
    longer = [*argv[:argv.index("--steps") + 1], "3", *argv[argv.index("--steps") + 2:], "--resume"]
    with pytest.raises(SystemExit, match="differs from the one the run"):
        main(longer)
    weights_file.write_bytes(original)
    assert main(longer) == 0
