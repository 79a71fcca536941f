"""`tinydiff sample`'s arguments and sample()'s: a wrong one is one line before any work (no
model run, nothing written), naming the argument, what was expected and what came."""

import subprocess
import sys

import numpy as np
import pytest

from tinydiff.cli import main
from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from tinydiff.models import MLPDenoiser, UNet2DModel
from tinydiff.pipelines import sample, save_pipeline

TINY = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
            attention_head_dim=4, down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"), add_attention=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A class-conditional (3 classes) and an unconditional tiny pipeline folder."""
    root = tmp_path_factory.mktemp("models")
    for name, classes in (("conditional", 3), ("unconditional", None)):
        unet = UNet2DModel(rng=np.random.default_rng(0), num_class_embeds=classes, **TINY)
        save_pipeline(root / name, unet, DDPMScheduler(num_train_timesteps=50))
    return root


SAMPLE_CASES = [
    (["--scheduler", "ddpm", "--eta", "0.5"], ["--eta is DDIM's", "ddpm"]),
    (["--scheduler", "dpm", "--eta", "1"], ["--eta is DDIM's", "dpm"]),
    (["--eta", "-0.5"], ["--eta must be in [0, 1]", "-0.5"]),
    (["--eta", "1.5"], ["--eta must be in [0, 1]", "1.5"]),
    (["--eta", "nan"], ["--eta must be in [0, 1]", "nan"]),
    (["--label", "3"], ["--label must be in [0, 3)", "[3]"]),
    (["--label", "1", "--label", "-1"], ["--label must be in [0, 3)", "[-1]"]),
    (["--seed", "-1"], ["--seed must be >= 0", "-1"]),
    (["--steps", "51"], ["--steps must be at most 50", "51"]),
]


@pytest.mark.parametrize("flags,expected", SAMPLE_CASES, ids=[" ".join(c[0]) for c in SAMPLE_CASES])
def test_sample_flags_are_checked_before_any_work(models, tmp_path, flags, expected):
    out = tmp_path / "x.png"
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--model", str(models / "conditional"), "--num", "2", "--steps", "2", "--out", str(out),
              *flags])
    message = exit_.value.code
    assert isinstance(message, str) and message.startswith("tinydiff sample: ") and "\n" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert not out.exists()


def test_label_for_an_unconditional_model(models, tmp_path):
    with pytest.raises(SystemExit, match="not class-conditional"):
        main(["sample", "--model", str(models / "unconditional"), "--label", "1", "--out", str(tmp_path / "x.png")])


def test_eta_is_refused_before_the_model_is_even_read(tmp_path):
    # the folder does not exist: the flag's message comes first, so no time is spent loading
    with pytest.raises(SystemExit, match="--eta is DDIM's"):
        main(["sample", "--model", str(tmp_path / "missing"), "--scheduler", "ddpm", "--eta", "1"])


def test_eta_with_ddpm_has_no_traceback(models, tmp_path):
    done = subprocess.run([sys.executable, "-m", "tinydiff", "sample", "--model", str(models / "conditional"),
                           "--scheduler", "dpm", "--eta", "0.3", "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_good_flags_still_sample(models, tmp_path):
    out = tmp_path / "x.png"
    assert main(["sample", "--model", str(models / "conditional"), "--num", "3", "--steps", "2", "--eta", "1",
                 "--label", "2", "--out", str(out)]) == 0
    assert out.is_file()


# ---- sample(), the Python API ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def unet():
    return UNet2DModel(rng=np.random.default_rng(0), num_class_embeds=3, **TINY)


def ddim():
    return DDIMScheduler(num_train_timesteps=50)


API_CASES = [
    (dict(class_labels=np.array([0, 1, 2])), ValueError, ["class_labels", "2", "got 3"]),
    (dict(class_labels=np.array([0.0, 1.0])), TypeError, ["class_labels", "integers", "float64"]),
    (dict(class_labels=np.array([0, 3])), ValueError, ["class_labels", "[0, 3)", "3"]),
    (dict(class_labels=None), ValueError, ["class_labels", "class-conditional"]),
    (dict(shape=(2, 3, 8, 8)), ValueError, ["shape", "(B, 1, H, W)", "(2, 3, 8, 8)"]),
    (dict(shape=(2, 1, 7, 7)), ValueError, ["shape", "divisible by 2", "(2, 1, 7, 7)"]),
    (dict(shape=(2, 64)), ValueError, ["shape", "(2, 64)"]),
    (dict(shape=(0, 1, 8, 8)), ValueError, ["shape", "positive integers"]),
    (dict(num_inference_steps=0), ValueError, ["num_inference_steps", "[1, 50]", "0"]),
    (dict(num_inference_steps=51), ValueError, ["num_inference_steps", "[1, 50]", "51"]),
    (dict(num_inference_steps=2.5), ValueError, ["num_inference_steps", "2.5"]),
    (dict(eta=-0.1), ValueError, ["eta", "[0, 1]", "-0.1"]),
    (dict(eta=float("nan")), ValueError, ["eta", "nan"]),
    (dict(eta=1.0, scheduler=DDPMScheduler(num_train_timesteps=50)), ValueError, ["eta", "DDPMScheduler"]),
    (dict(eta=0.5, scheduler=DPMSolverMultistepScheduler(num_train_timesteps=50)), ValueError,
     ["eta", "DPMSolverMultistepScheduler"]),
]


@pytest.mark.parametrize("changes,error,expected", API_CASES, ids=[str(i) for i in range(len(API_CASES))])
def test_sample_api_names_the_argument(unet, changes, error, expected):
    kwargs = dict(scheduler=ddim(), shape=(2, 1, 8, 8), num_inference_steps=2, class_labels=np.array([0, 1]))
    kwargs.update(changes)
    with pytest.raises(error) as err:
        sample(unet, kwargs.pop("scheduler"), kwargs.pop("shape"), np.random.default_rng(0), **kwargs)
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_labels_for_an_unconditional_model_and_points_of_the_wrong_width():
    mlp = MLPDenoiser(hidden=8, num_blocks=1, time_embed_dim=4)
    with pytest.raises(ValueError, match=r"class_labels: given, but the model is not class-conditional"):
        sample(mlp, ddim(), (2, 2), np.random.default_rng(0), 2, class_labels=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"shape: the MLPDenoiser takes \(B, 2\), got \(2, 3\)"):
        sample(mlp, ddim(), (2, 3), np.random.default_rng(0), 2)
    assert sample(mlp, ddim(), (2, 2), np.random.default_rng(0), 2).shape == (2, 2)


def test_one_label_for_every_sample_still_works(unet):
    x = sample(unet, ddim(), (2, 1, 8, 8), np.random.default_rng(0), 2, class_labels=1)
    assert x.shape == (2, 1, 8, 8) and np.all(np.isfinite(x))
