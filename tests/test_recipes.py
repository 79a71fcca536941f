"""`tinydiff train --recipe glyphs` builds what tinydiff/pretrained/train_glyphs.py trained the
shipped model with (the model, the scheduler, the data and every TrainConfig field), and a flag
the user gives overrides the recipe's."""

import numpy as np
import pytest

import tinydiff.pipelines
from tinydiff.cli import main
from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import UNet2DModel
from tinydiff.runtime.parallel import default_processes
from tinydiff.pipelines import TrainConfig
from tinydiff.pretrained import train_glyphs
from tinydiff.recipes import expand_recipe, recipe_argv


class RecordingTrainer:
    """Stands in for Trainer: keeps what `tinydiff train` built and trains nothing."""

    built = None

    def __init__(self, model, scheduler, data, config, out, settings=None, parallel=None):
        RecordingTrainer.built = dict(model=model, scheduler=scheduler, data=data, config=config, out=out,
                                      settings=settings, parallel=parallel)

    def run(self, resume=False, until=None):
        return [(0, 0.0)]


@pytest.fixture
def built_by_cli(monkeypatch, tmp_path):
    monkeypatch.setattr(tinydiff.pipelines, "Trainer", RecordingTrainer)

    def build(*flags):
        RecordingTrainer.built = None
        assert main(["train", "--out", str(tmp_path / "run"), *flags]) == 0
        return RecordingTrainer.built

    return build


def test_glyph_recipe_builds_the_shipped_training_run(built_by_cli):
    built = built_by_cli("--recipe", "glyphs")
    shipped = UNet2DModel(rng=np.random.default_rng(train_glyphs.UNET_SEED), **train_glyphs.GLYPH_UNET)
    assert built["model"].config == shipped.config
    # the same seed draws the same initial weights
    for (name, p), (_, q) in zip(built["model"].named_parameters(), shipped.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert vars(built["scheduler"].config) == vars(DDPMScheduler(**train_glyphs.GLYPH_SCHEDULER).config)
    run = train_glyphs.GLYPH_RUN
    expected = TrainConfig(steps=run["steps"], batch_size=run["batch_size"], seed=run["seed"],
                           checkpoint_every=run["checkpoint_every"], sample_every=run["sample_every"],
                           **train_glyphs.GLYPH_TRAINING)
    assert built["config"] == expected
    assert built["parallel"].processes == default_processes(run["batch_size"])
    x0, labels = built["data"](0)
    assert x0.shape == (run["batch_size"], 1, train_glyphs.GLYPH_SIZE, train_glyphs.GLYPH_SIZE)
    assert labels is not None


def test_a_flag_given_overrides_the_recipe_wherever_it_stands(built_by_cli):
    after = built_by_cli("--recipe", "glyphs", "--steps", "7", "--lr", "1e-3")
    before = built_by_cli("--steps", "7", "--lr", "1e-3", "--recipe=glyphs")
    for built in (after, before):
        assert built["config"].steps == 7 and built["config"].lr == 1e-3
        assert built["config"].ema_decay == train_glyphs.GLYPH_TRAINING["ema_decay"]  # the rest is the recipe's
        assert built["model"].config["block_out_channels"] == train_glyphs.GLYPH_UNET["block_out_channels"]


def test_expansion_leaves_other_commands_alone_and_an_unknown_recipe_to_argparse(capsys):
    assert expand_recipe(["sample", "--recipe", "glyphs"]) == ["sample", "--recipe", "glyphs"]
    assert expand_recipe(["train", "--dataset", "moons"]) == ["train", "--dataset", "moons"]
    expanded = expand_recipe(["train", "--recipe", "glyphs", "--out", "x"])
    assert expanded == ["train", *recipe_argv("glyphs"), "--recipe", "glyphs", "--out", "x"]
    assert "recipe glyphs: tinydiff train --dataset glyphs --class-conditional" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "nonesuch", "--out", "x"])
    assert "invalid choice: 'nonesuch'" in capsys.readouterr().err


def test_a_recipe_run_records_the_flags_it_stands_for_not_its_name(built_by_cli):
    """--resume compares the recorded flags, so a run started with --recipe glyphs resumes with
    the same flags typed out (and the other way round)."""
    by_name = built_by_cli("--recipe", "glyphs")["settings"]
    typed = built_by_cli(*recipe_argv("glyphs"))["settings"]
    assert "recipe" not in by_name
    assert by_name == typed
