"""A corpus of corrupt and mistaken model folders: each must give one line naming the file and
what was expected, through the Python API (load_pipeline: ValueError or FileNotFoundError),
`tinydiff sample --model DIR` and `tinydiff export --model DIR` (an exit with that line, never
a traceback).

Each case is (name, how to corrupt a good tiny pipeline folder, fragments the message must
hold). The folder is a real one, written by save_pipeline (or by hand in a checkpoint's
layout), then damaged one way."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tinydiff.cli import main
from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import AutoencoderKL, UNet2DModel
from tinydiff.pipelines import load_pipeline, save_pipeline
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.latent import load_pipeline_vae
from tinydiff.pipelines.sampling import scheduler_config

TINY_UNET = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
                 attention_head_dim=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                 up_block_types=("AttnUpBlock2D", "UpBlock2D"), num_class_embeds=3)
TINY_VAE = dict(in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4, sample_size=8,
                latent_channels=2, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Good folders of every layout, written once: a pipeline (final/), a training
    checkpoint (by hand, in Trainer.save_checkpoint's layout) and a VAE model folder."""
    root = tmp_path_factory.mktemp("good")
    unet = UNet2DModel(rng=np.random.default_rng(0), **TINY_UNET)
    scheduler = DDPMScheduler(num_train_timesteps=50)
    save_pipeline(root / "pipeline", unet, scheduler)
    step = root / "checkpoint"
    step.mkdir()
    ckpt.write_json(step / ckpt.CONFIG_NAME, ckpt.model_config(unet))
    ckpt.save_arrays(step / ckpt.WEIGHTS_NAME, unet.state_dict())
    ckpt.save_arrays(step / "ema.safetensors", {f"shadow.{i}": p.data for i, (_, p) in
                                                 enumerate(unet.named_parameters())})
    ckpt.write_json(step / "scheduler_config.json", scheduler_config(scheduler))
    ckpt.write_json(step / "trainer_state.json", {"step": 3, "config": {}, "log": []})
    vae = AutoencoderKL(rng=np.random.default_rng(0), **TINY_VAE)
    ckpt.save_model(vae, root / "vae")
    latent_unet = UNet2DModel(rng=np.random.default_rng(0), **{**TINY_UNET, "in_channels": 2, "out_channels": 2,
                                                              "sample_size": 4})
    save_pipeline(root / "latent", latent_unet, scheduler, vae=vae)
    return root


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def drop_json_key(path, key):
    data = json.loads(path.read_text())
    del data[key]
    path.write_text(json.dumps(data))


def edit_tensors(path, change):
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def set_value(name, value):
    def change(tensors):
        tensors[name] = tensors[name].copy()
        tensors[name].flat[0] = value
    return change


UNET_CONFIG = "unet/config.json"
UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"

# (name, layout, corrupt(folder), fragments of the one-line message)
PIPELINE_CASES = [
    ("config is a JSON list", lambda d: (d / UNET_CONFIG).write_text("[8, 8]"),
     [UNET_CONFIG, "expected a JSON object", "list"]),
    ("config is UTF-16", lambda d: (d / UNET_CONFIG).write_bytes((d / UNET_CONFIG).read_text().encode("utf-16")),
     [UNET_CONFIG, "UTF-16", "UTF-8"]),
    ("config is binary", lambda d: (d / UNET_CONFIG).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
     [UNET_CONFIG, "not UTF-8"]),
    ("config is not JSON", lambda d: (d / UNET_CONFIG).write_text("{sample_size: 8"), [UNET_CONFIG, "not valid JSON"]),
    ("config is empty", lambda d: (d / UNET_CONFIG).write_text(""), [UNET_CONFIG, "not valid JSON"]),
    ("norm_num_groups 0", lambda d: edit_json(d / UNET_CONFIG, norm_num_groups=0),
     [UNET_CONFIG, "norm_num_groups: expected an integer >= 1, got 0"]),
    ("sample_size 0", lambda d: edit_json(d / UNET_CONFIG, sample_size=0), [UNET_CONFIG, "sample_size", "got 0"]),
    ("empty block_out_channels", lambda d: edit_json(d / UNET_CONFIG, block_out_channels=[]),
     [UNET_CONFIG, "block_out_channels: expected a non-empty list"]),
    ("channels not divisible by groups", lambda d: edit_json(d / UNET_CONFIG, block_out_channels=[8, 10]),
     [UNET_CONFIG, "divisible by norm_num_groups=4"]),
    ("negative channels", lambda d: edit_json(d / UNET_CONFIG, in_channels=-1), [UNET_CONFIG, "in_channels", "-1"]),
    ("10^9 channels", lambda d: edit_json(d / UNET_CONFIG, block_out_channels=[10**9, 10**9]),
     [UNET_CONFIG, "parameters", "at most"]),
    ("huge sample_size", lambda d: edit_json(d / UNET_CONFIG, sample_size=2**20),
     [UNET_CONFIG, "sample_size", "at most"]),
    ("number as a string", lambda d: edit_json(d / UNET_CONFIG, sample_size="8"), [UNET_CONFIG, "sample_size", "'8'"]),
    ("bool for an int", lambda d: edit_json(d / UNET_CONFIG, layers_per_block=True),
     [UNET_CONFIG, "layers_per_block", "True"]),
    ("float for an int", lambda d: edit_json(d / UNET_CONFIG, num_class_embeds=2.5), [UNET_CONFIG, "num_class_embeds"]),
    ("NaN norm_eps", lambda d: edit_json(d / UNET_CONFIG, norm_eps=float("nan")), [UNET_CONFIG, "norm_eps", "nan"]),
    ("block types longer than channels",
     lambda d: edit_json(d / UNET_CONFIG, down_block_types=["DownBlock2D"] * 3), [UNET_CONFIG, "same length", "3, 2, 2"]),
    ("unknown block type", lambda d: edit_json(d / UNET_CONFIG, up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"]),
     [UNET_CONFIG, "CrossAttnUpBlock2D", "not supported"]),
    ("unknown key", lambda d: edit_json(d / UNET_CONFIG, time_embedding_type="fourier"),
     [UNET_CONFIG, "unknown key", "time_embedding_type"]),
    ("unknown class", lambda d: edit_json(d / UNET_CONFIG, _class_name="StableCascadeUNet"),
     [UNET_CONFIG, "StableCascadeUNet", "not one of"]),
    ("no class name", lambda d: drop_json_key(d / UNET_CONFIG, "_class_name"), [UNET_CONFIG, "_class_name None"]),
    ("class name a list", lambda d: edit_json(d / UNET_CONFIG, _class_name=["UNet2DModel"]),
     [UNET_CONFIG, "_class_name ['UNet2DModel']"]),
    ("missing tensor", lambda d: edit_tensors(d / UNET_WEIGHTS, lambda t: t.pop("conv_in.bias")),
     [UNET_WEIGHTS, "missing 1 tensor", "conv_in.bias", "config.json"]),
    ("tensor of the wrong shape",
     lambda d: edit_tensors(d / UNET_WEIGHTS, lambda t: t.update({"conv_out.weight": np.zeros((1, 8, 1, 1), np.float32)})),
     [UNET_WEIGHTS, "conv_out.weight", "(1, 8, 1, 1)", "(1, 8, 3, 3)"]),
    ("extra tensor", lambda d: edit_tensors(d / UNET_WEIGHTS, lambda t: t.update({"extra.weight": np.zeros(2, np.float32)})),
     [UNET_WEIGHTS, "extra.weight", "does not have"]),
    ("integer tensor", lambda d: edit_tensors(d / UNET_WEIGHTS, lambda t: t.update({"conv_in.bias": np.zeros(8, np.int32)})),
     [UNET_WEIGHTS, "conv_in.bias", "int32"]),
    ("NaN weight", lambda d: edit_tensors(d / UNET_WEIGHTS, set_value("mid_block.resnets.0.conv1.weight", np.nan)),
     [UNET_WEIGHTS, "mid_block.resnets.0.conv1.weight", "NaN/inf"]),
    ("inf weight", lambda d: edit_tensors(d / UNET_WEIGHTS, set_value("conv_out.bias", np.inf)),
     [UNET_WEIGHTS, "conv_out.bias", "NaN/inf"]),
    ("weights file is garbage", lambda d: (d / UNET_WEIGHTS).write_bytes(b"\x00" * 20),
     [UNET_WEIGHTS, "not a readable safetensors file"]),
    ("weights file missing", lambda d: (d / UNET_WEIGHTS).unlink(), [UNET_WEIGHTS, "no such weights file"]),
    ("model_index points at a missing unet/", lambda d: shutil.rmtree(d / "unet"),
     ["model_index.json", "lists a unet", "unet/config.json"]),
    ("model_index is a list", lambda d: (d / "model_index.json").write_text("[]"),
     ["model_index.json", "expected a JSON object"]),
    ("model_index without unet", lambda d: drop_json_key(d / "model_index.json", "unet"),
     ["model_index.json", "missing field(s) ['unet']"]),
    ("model_index lists a missing vae/", lambda d: edit_json(d / "model_index.json", vae=["diffusers", "AutoencoderKL"]),
     ["model_index.json", "lists a vae"]),
    ("scheduler config missing", lambda d: (d / "scheduler" / "scheduler_config.json").unlink(),
     ["scheduler/scheduler_config.json", "lists a scheduler"]),
    ("scheduler config bad value", lambda d: edit_json(d / "scheduler" / "scheduler_config.json", beta_schedule="cubic"),
     ["scheduler/scheduler_config.json", "beta_schedule", "cubic"]),
    ("scheduler number as a string",
     lambda d: edit_json(d / "scheduler" / "scheduler_config.json", num_train_timesteps="50"),
     ["scheduler/scheduler_config.json", "num_train_timesteps", "'50'"]),
    ("unet/ holds a VAE", lambda d: (shutil.rmtree(d / "unet"), shutil.copytree(d.parent / "vae", d / "unet")),
     ["AutoencoderKL", "not a denoiser"]),
]

CHECKPOINT_CASES = [
    ("trainer_state misses fields", lambda d: (d / "trainer_state.json").write_text('{"log": []}'),
     ["trainer_state.json", "missing field(s)", "step"]),
    ("trainer_state is a list", lambda d: (d / "trainer_state.json").write_text("[3]"),
     ["trainer_state.json", "expected a JSON object"]),
    ("ema lacks shadows", lambda d: edit_tensors(d / "ema.safetensors", lambda t: t.pop("shadow.2")),
     ["ema.safetensors", "missing 1 EMA shadow", "shadow.2"]),
    ("ema has extra shadows", lambda d: edit_tensors(d / "ema.safetensors", lambda t: t.update({"shadow.999": t["shadow.0"]})),
     ["ema.safetensors", "shadow.999"]),
    ("ema shadow of the wrong shape",
     lambda d: edit_tensors(d / "ema.safetensors", lambda t: t.update({"shadow.0": np.zeros((3, 3), np.float32)})),
     ["ema.safetensors", "conv_in.weight", "(3, 3)"]),
    ("ema shadow NaN", lambda d: edit_tensors(d / "ema.safetensors", set_value("shadow.1", np.nan)),
     ["ema.safetensors", "shadow.1", "NaN/inf"]),
    ("checkpoint config 0 groups", lambda d: edit_json(d / "config.json", norm_num_groups=0),
     ["config.json", "norm_num_groups"]),
    ("checkpoint scheduler config missing", lambda d: (d / "scheduler_config.json").unlink(),
     ["scheduler_config.json", "no such file"]),
]

VAE_CONFIG, VAE_WEIGHTS = "vae/config.json", "vae/diffusion_pytorch_model.safetensors"
# a latent pipeline (unet/, scheduler/, vae/): its VAE is checked as carefully as its UNet; a
# scaling_factor of 0 once sampled NaN images and exited 0
LATENT_CASES = [
    ("vae scaling_factor 0", lambda d: edit_json(d / VAE_CONFIG, scaling_factor=0),
     [VAE_CONFIG, "scaling_factor", "got 0"]),
    ("vae latents_std with a zero", lambda d: edit_json(d / VAE_CONFIG, latents_mean=[0, 0], latents_std=[1, 0]),
     [VAE_CONFIG, "latents_std", "positive"]),
    ("vae NaN weight", lambda d: edit_tensors(d / VAE_WEIGHTS, set_value("decoder.conv_out.weight", np.nan)),
     [VAE_WEIGHTS, "decoder.conv_out.weight", "NaN/inf"]),
    ("vae config is a list", lambda d: (d / VAE_CONFIG).write_text("[]"), [VAE_CONFIG, "expected a JSON object"]),
    ("vae/ missing", lambda d: shutil.rmtree(d / "vae"), ["model_index.json", "lists a vae"]),
    ("vae of other latent channels",
     lambda d: ckpt.save_model(AutoencoderKL(**{**TINY_VAE, "latent_channels": 4}), d / "vae"),
     [UNET_CONFIG, "in_channels=2", "latent_channels=4"]),
]

CASES = [(name, "pipeline", corrupt, expected) for name, corrupt, expected in PIPELINE_CASES]
CASES += [(name, "latent", corrupt, expected) for name, corrupt, expected in LATENT_CASES]
CASES += [(name, "checkpoint", corrupt, expected) for name, corrupt, expected in CHECKPOINT_CASES]


def damaged(originals, tmp_path, layout, corrupt):
    folder = tmp_path / layout
    shutil.copytree(originals / layout, folder)
    shutil.copytree(originals / "vae", tmp_path / "vae")  # for the case that moves it into unet/
    corrupt(folder)
    return folder


def assert_one_line_naming(message, expected):
    assert "\n" not in message.strip(), message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_the_good_folders_load(originals):
    for layout in ("pipeline", "checkpoint", "latent"):
        model, config = load_pipeline(originals / layout)
        assert isinstance(model, UNet2DModel) and config["num_train_timesteps"] == 50
        assert (load_pipeline_vae(originals / layout) is None) == (layout != "latent")


@pytest.mark.parametrize("name,layout,corrupt,expected", CASES, ids=[c[0] for c in CASES])
def test_python_api_names_the_file(originals, tmp_path, name, layout, corrupt, expected):
    folder = damaged(originals, tmp_path, layout, corrupt)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        load_pipeline(folder)
        load_pipeline_vae(folder)
    assert_one_line_naming(str(err.value), expected)
    assert str(folder) in str(err.value)


@pytest.mark.parametrize("command", ["sample", "export"])
@pytest.mark.parametrize("name,layout,corrupt,expected", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_cli_exits_with_one_line(originals, tmp_path, command, name, layout, corrupt, expected):
    folder = damaged(originals, tmp_path, layout, corrupt)
    out = ["--out", str(tmp_path / "x.png")] if command == "sample" else ["--diffusers", str(tmp_path / "exported")]
    with pytest.raises(SystemExit) as exit_:
        main([command, "--model", str(folder), *out])
    assert isinstance(exit_.value.code, str), exit_.value.code  # a message, so exit status 1
    assert exit_.value.code.startswith(f"tinydiff {command}: ")
    assert_one_line_naming(exit_.value.code, expected)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "exported").exists()


@pytest.mark.parametrize("case", ["config is UTF-16", "10^9 channels", "NaN weight", "vae scaling_factor 0"])
def test_subprocess_has_no_traceback(originals, tmp_path, case):
    name, layout, corrupt, expected = next(c for c in CASES if c[0] == case)
    folder = damaged(originals, tmp_path, layout, corrupt)
    done = subprocess.run([sys.executable, "-m", "tinydiff", "sample", "--model", str(folder), "--out",
                           str(tmp_path / "x.png")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert_one_line_naming(done.stderr, expected)


# ---- folders that are sound but not what `--model` takes: say what they are --------------------
def vae_model_folder(root, good):
    shutil.copytree(good / "vae", root / "vae" / "final")
    return root / "vae" / "final"


def vae_run_folder(root, good):
    return vae_model_folder(root, good).parent


def run_folder(root, good):
    shutil.copytree(good / "pipeline", root / "glyphs" / "final")
    shutil.copytree(good / "checkpoint", root / "glyphs" / "checkpoints" / "step-0000003")
    (root / "glyphs" / "checkpoints" / "latest").write_text("step-0000003\n")
    return root / "glyphs"


def unfinished_run_folder(root, good):
    run = run_folder(root, good)
    shutil.rmtree(run / "final")
    return run


def checkpoints_folder(root, good):
    return run_folder(root, good) / "checkpoints"


def unet_subfolder(root, good):
    shutil.copytree(good / "pipeline", root / "final")
    return root / "final" / "unet"


def a_file(root, good):
    (root / "model.safetensors").write_bytes(b"")
    return root / "model.safetensors"


MISTAKES = [
    (vae_model_folder, ["holds a VAE", "tinydiff train --latent", "vae/final"]),
    (vae_run_folder, ["holds a VAE", "tinydiff train --latent"]),
    (run_folder, ["training run", "tinydiff sample --model", "glyphs/final"]),
    (unfinished_run_folder, ["without final/ yet", "checkpoints/step-0000003"]),
    (checkpoints_folder, ["checkpoints; the latest is", "checkpoints/step-0000003"]),
    (unet_subfolder, ["pipeline folder", "pass"]),
    (a_file, ["model.safetensors", "a file"]),
    (lambda root, good: root / "nowhere", ["nowhere", "no such folder"]),
]


@pytest.mark.parametrize("make,expected", MISTAKES, ids=[m[0].__name__ for m in MISTAKES])
def test_a_mistaken_folder_is_named_and_the_right_one_suggested(originals, tmp_path, make, expected):
    folder = make(tmp_path, originals)
    with pytest.raises(FileNotFoundError) as err:
        load_pipeline(folder)
    assert_one_line_naming(str(err.value), expected)
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--model", str(folder), "--out", str(tmp_path / "x.png")])
    assert_one_line_naming(exit_.value.code, expected)


def test_the_suggested_folders_load(originals, tmp_path):
    run = run_folder(tmp_path, originals)
    assert isinstance(load_pipeline(run / "final")[0], UNet2DModel)
    assert isinstance(load_pipeline(run / "checkpoints" / "step-0000003")[0], UNet2DModel)


# ---- load_model on its own: a VAE whose config would make NaN latents ---------------------------
@pytest.mark.parametrize("changes,expected", [
    ({"scaling_factor": 0}, "scaling_factor: expected a finite number > 0, got 0"),
    ({"scaling_factor": float("nan")}, "scaling_factor"),
    ({"latents_mean": [0.0, 0.0], "latents_std": [1.0, 0.0]}, "latents_std"),
    ({"latents_mean": [0.0], "latents_std": [1.0]}, "latents_mean: expected 2 entries"),
    ({"latent_channels": "2"}, "latent_channels"),
])
def test_vae_folder_with_bad_normalisation_is_refused(originals, tmp_path, changes, expected):
    folder = tmp_path / "vae"
    shutil.copytree(originals / "vae", folder)
    edit_json(folder / "config.json", **changes)
    with pytest.raises(ValueError, match="config.json: AutoencoderKL: ") as err:
        ckpt.load_model(folder)
    assert expected in str(err.value)
