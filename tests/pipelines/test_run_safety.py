"""A run's work survives what goes wrong while it saves: a full disk, a lost permission,
weights that became NaN; and a TrainConfig with a wrong type fails at once, naming the field."""

import errno
import json
import math
import re

import numpy as np
import pytest

from tinydiff.cli import main
from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import MLPDenoiser
from tinydiff.optim import cosine_with_warmup
from tinydiff.pipelines import TrainConfig, Trainer, TrainingDiverged
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.data_sources import make_source
from tinydiff.pipelines.train import SaveFailed
from tinydiff.pipelines.vae_training import VAETrainConfig


def toy_trainer(out, **config):
    settings = dict(steps=6, batch_size=16, warmup_steps=1, checkpoint_every=2, lr=3e-3, log_every=1)
    settings.update(config)
    return Trainer(MLPDenoiser(hidden=16, rng=np.random.default_rng(0)), DDPMScheduler(num_train_timesteps=50),
                   make_source("moons", 16, 0), TrainConfig(**settings), out, progress=False)


def fail_on_second_save(monkeypatch, error):
    """checkpoint.save_arrays raises `error` while step 4's checkpoint is written."""
    save = ckpt.save_arrays

    def save_or_fail(path, arrays, dtype=None):
        if "step-0000004" in str(path):
            raise error
        return save(path, arrays, dtype)

    monkeypatch.setattr(ckpt, "save_arrays", save_or_fail)


@pytest.mark.parametrize("error, says", [
    (OSError(errno.ENOSPC, "No space left on device"),
     r"no space left on device while saving step 4; the last good checkpoint is step 2 \(.*step-0000002\); "
     "free space and continue with --resume"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded while saving step 4; the last good "
                                                   "checkpoint is step 2"),
    (OSError(errno.EACCES, "Permission denied", "x.safetensors"),
     r"Permission denied: x.safetensors while saving step 4; the last good checkpoint is step 2 \(.*\); "
     "fix that and continue with --resume"),
])
def test_a_failed_save_keeps_the_last_checkpoint_and_says_so(tmp_path, monkeypatch, error, says):
    trainer = toy_trainer(tmp_path)
    fail_on_second_save(monkeypatch, error)
    with pytest.raises(SaveFailed, match=says):
        trainer.run()
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-0000002"]  # no temp folder left
    monkeypatch.undo()
    resumed = toy_trainer(tmp_path)
    resumed.run(resume=True)
    assert resumed.step == 6


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch):
    fail_on_second_save(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(SystemExit) as failed:
        main(["train", "--dataset", "moons", "--steps", "6", "--batch-size", "16", "--warmup-steps", "1",
              "--checkpoint-every", "2", "--out", str(tmp_path / "run")])
    message = str(failed.value.code)
    assert message.startswith("tinydiff train: no space left on device while saving step 4; the last good "
                              "checkpoint is step 2") and "\n" not in message


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = toy_trainer(tmp_path, steps=4)
    train_step = trainer.train_step

    def step_that_breaks_the_weights(step):
        result = train_step(step)
        if step == 3:  # the last step: its loss was finite, its update was not
            trainer.model.parameters()[0].data[0] = np.inf
        return result

    trainer.train_step = step_that_breaks_the_weights
    with pytest.raises(TrainingDiverged, match=r"step 4: the weights .* hold NaN or inf, so they were not saved; "
                                               r"the last good checkpoint is step 2"):
        trainer.run()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-0000002"]
    assert not (tmp_path / "final").exists()
    with pytest.raises(ValueError, match="w holds NaN or inf; refusing to save it"):
        ckpt.save_arrays(tmp_path / "x.safetensors", {"w": np.array([1.0, np.nan], np.float32)})
    assert not (tmp_path / "x.safetensors").exists()


def test_extending_a_run_recomputes_the_cosine_for_the_new_total(tmp_path):
    toy_trainer(tmp_path, steps=4).run()
    longer = toy_trainer(tmp_path, steps=8)
    longer.run(resume=True, until=5)  # the step from 4 to 5 used step 4's rate under the new total
    assert longer.optimizer.lr == pytest.approx(cosine_with_warmup(4, 3e-3, 1, 8, 0.0))
    assert longer.optimizer.lr > cosine_with_warmup(3, 3e-3, 1, 4, 0.0)  # it rose again
    with pytest.raises(ValueError, match="steps: the run used 8, now 6; a run can be extended"):
        toy_trainer(tmp_path, steps=6).run(resume=True)


def test_resume_names_a_changed_model_before_loading_its_weights(tmp_path):
    toy_trainer(tmp_path, steps=2).run()
    wider = Trainer(MLPDenoiser(hidden=32, rng=np.random.default_rng(0)), DDPMScheduler(num_train_timesteps=50),
                    make_source("moons", 16, 0), TrainConfig(steps=2, batch_size=16, warmup_steps=1), tmp_path,
                    progress=False)
    with pytest.raises(ValueError, match="the model's hidden: the run used 16, now 32.*the scheduler's "
                                         "num_train_timesteps: the run used 50, now 1000"):
        Trainer(wider.model, DDPMScheduler(), wider.data, toy_trainer(tmp_path, steps=2).config, tmp_path,
                progress=False).run(resume=True)


@pytest.mark.parametrize("field, value, error", [
    ("lr", "0.001", TypeError), ("lr", math.nan, ValueError), ("lr", 0.0, ValueError), ("lr", True, TypeError),
    ("steps", 2.0, TypeError), ("steps", "10", TypeError), ("batch_size", 0, ValueError),
    ("ema_decay", 1.0, ValueError), ("ema_decay", None, TypeError), ("min_snr_gamma", math.nan, ValueError),
    ("grad_clip", 0, ValueError), ("min_lr", -1e-3, ValueError), ("weight_decay", math.inf, ValueError),
    ("seed", -1, ValueError), ("seed", 1.5, TypeError), ("warmup_steps", -1, ValueError),
    ("sample_every", None, TypeError),
])
def test_train_config_names_the_field_and_what_came(field, value, error):
    settings = {"steps": 10, "warmup_steps": 1, field: value}
    with pytest.raises(error, match=f"^{field}: expected .*got {re.escape(repr(value))}"):
        TrainConfig(**settings).validate()


@pytest.mark.parametrize("field, value, error", [
    ("beta", math.nan, ValueError), ("beta", "1e-4", TypeError), ("reconstruction", "l3", ValueError),
    ("latent_norm", None, ValueError), ("scale_images", 1, ValueError), ("scale_images", 2.0, TypeError),
])
def test_vae_train_config_names_the_field(field, value, error):
    with pytest.raises(error, match=f"^{field}: expected"):
        VAETrainConfig(**{"steps": 10, "warmup_steps": 1, field: value}).validate()


def test_a_file_is_never_moved_aside_to_make_room_for_a_folder(tmp_path):
    target = tmp_path / "model"
    target.write_text("the user's\n")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        ckpt.write_folder_atomically(target, lambda d: (d / "a.txt").write_text("x"))
    assert target.read_text() == "the user's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_trainer_state_keeps_the_callers_settings(tmp_path):
    trainer = Trainer(MLPDenoiser(hidden=16, rng=np.random.default_rng(0)), DDPMScheduler(num_train_timesteps=50),
                      make_source("moons", 16, 0), TrainConfig(steps=2, batch_size=16, warmup_steps=1), tmp_path,
                      progress=False, settings={"dataset": "moons"})
    trainer.run()
    state = json.loads((tmp_path / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state["run_settings"] == {"dataset": "moons"}


def test_ctrl_c_in_train_vae_says_where_to_continue(tmp_path, monkeypatch, capsys):
    """(The SIGINT itself is sent to real processes in tests/test_cli_interrupt.py.)"""
    from tinydiff.pipelines.vae_training import VAETrainer

    train_step = VAETrainer.train_step

    def interrupted_at_3(self, step):
        if step == 3:
            raise KeyboardInterrupt
        return train_step(self, step)

    monkeypatch.setattr(VAETrainer, "train_step", interrupted_at_3)
    out = tmp_path / "vae"
    with pytest.raises(SystemExit) as stopped:
        main(["train-vae", "--image-size", "16", "--channels", "8,8", "--latent-channels", "2", "--batch-size", "2",
              "--steps", "6", "--checkpoint-every", "2", "--sample-every", "0", "--out", str(out)])
    assert stopped.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]  # below the progress bar
    assert err == (f"tinydiff train-vae: interrupted at step 3; the last checkpoint is step 2 "
                   f"({out / 'checkpoints' / 'step-0000002'}); continue with --resume")
