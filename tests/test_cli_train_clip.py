"""`tinydiff train-clip`: a tiny run learns (the loss falls), writes a CLIP folder that
transformers-style loaders read, resumes to the same weights, and refuses bad flags and
outputs in one line before any work."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tinydiff.cli import main
from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.models.clip_text import CLIPTextModelWithProjection
from tinydiff.pipelines.checkpoint import load_arrays, load_model
from tinydiff.pipelines.clip_folder import load_clip_folder

# the smallest run seen to learn within 30 steps (with --vision-channels 8,8 or --hidden-size 16
# the loss stays at chance, log 16, that long)
TINY = ["train-clip", "--steps", "30", "--batch-size", "16", "--hidden-size", "32", "--layers", "1", "--heads", "2",
        "--projection-dim", "16", "--vision-channels", "8,16", "--image-size", "16", "--warmup-steps", "2",
        "--lr", "2e-3", "--checkpoint-every", "10", "--eval-every", "15", "--seed", "3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip") / "run"
    assert main(TINY + ["--out", str(out)]) == 0
    return out


def weights(final):
    return {**{f"text.{k}": v for k, v in load_arrays(final / "text_encoder" / "model.safetensors").items()},
            **{f"image.{k}": v for k, v in load_arrays(final / "image_encoder" /
                                                       "diffusion_pytorch_model.safetensors").items()},
            "logit_scale": np.array(json.loads((final / "clip.json").read_text())["logit_scale"])}


def test_the_loss_falls_and_the_run_is_measured(run):
    info = json.loads((run / "final" / "clip.json").read_text())
    loss = np.array(info["curves"]["loss"])
    # means over 10 steps each; chance (every pairing equally likely) is log 16 = 2.77 for batch 16
    assert loss[-1, 0] == 30 and loss[-1, 1] < np.log(16) - 0.15 and loss[-1, 1] < loss[0, 1] - 0.2
    assert [s for s, _ in info["curves"]["temperature"]] == [10, 20, 30]
    assert [r[0] for r in info["curves"]["retrieval"]] == [15, 30]
    for direction in ("text_to_image", "image_to_text"):
        assert set(info["retrieval"][direction]) == {"top1", "shape", "colour", "size", "position", "all"}
        assert all(0 <= v <= 1 for v in info["retrieval"][direction].values())
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000015.png", "step-0000030.png"]


def test_the_final_folder_loads_as_a_text_encoder_and_tokenizer(run):
    final = run / "final"
    text = CLIPTextModelWithProjection.from_pretrained(final / "text_encoder")
    tokenizer = WordTokenizer.load(final / "tokenizer")
    assert text.config["hidden_size"] == 32 and text.config["max_position_embeddings"] == tokenizer.model_max_length
    hidden, embeds = text(tokenizer(["a small red circle at the top left", ""]))
    assert hidden.shape == (2, tokenizer.model_max_length, 32) and embeds.shape == (2, 16)
    assert load_model(final / "image_encoder").config["block_out_channels"] == (8, 16)
    clip, _, info = load_clip_folder(final)
    assert float(clip.logit_scale.data) == pytest.approx(info["logit_scale"])
    assert info["logit_scale"] != pytest.approx(np.log(1 / 0.07))  # the temperature was trained


def test_resume_ends_with_the_same_weights(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    # as if the run had stopped after step 20: step 30's checkpoint and final/ are gone
    shutil.rmtree(copy / "checkpoints" / "step-0000030")
    shutil.rmtree(copy / "final")
    (copy / "checkpoints" / "latest").write_text("step-0000020\n")
    # --eval-every may change on --resume: it only says how often the run is watched
    assert main(TINY + ["--out", str(copy), "--resume", "--eval-every", "30"]) == 0
    straight, resumed = weights(run / "final"), weights(copy / "final")
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    before, after = (json.loads((r / "final" / "clip.json").read_text()) for r in (run, copy))
    assert after == before  # the same retrieval, held-out pairs, curves and logit_scale


def refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err + str(stop.value.code)
    return err


@pytest.mark.parametrize("extra, says", [
    (["--heads", "3"], "hidden_size"),
    (["--vision-channels", "12,8"], "norm_num_groups"),
    (["--steps", "0"], "argument --steps: expected a number >= 1, got 0"),
    (["--lr", "nan"], "argument --lr: expected a finite number"),
    (["--image-size", "20"], "argument --image-size: invalid choice"),
])
def test_bad_flags_are_one_clear_line(extra, says, tmp_path, capsys):
    message = refused(TINY + ["--out", str(tmp_path / "new")] + extra, capsys)
    assert says in message and "Traceback" not in message
    assert not (tmp_path / "new" / "checkpoints").exists()


def test_outputs_are_never_overwritten_by_accident(run, tmp_path, capsys):
    message = refused(TINY + ["--out", str(run)], capsys)
    assert "already holds" in message and "--resume" in message and "--overwrite" in message
    changed = refused(TINY + ["--out", str(run), "--resume", "--hidden-size", "64"], capsys)
    assert "--hidden-size: the run used 32, now 64" in changed
    foreign = tmp_path / "foreign"
    (foreign / "final").mkdir(parents=True)
    (foreign / "final" / "notes.txt").write_text("mine\n")
    message = refused(TINY + ["--out", str(foreign), "--overwrite"], capsys)
    assert "not written by tinydiff" in message
    assert (foreign / "final" / "notes.txt").read_text() == "mine\n"


def test_overwrite_starts_over_in_a_finished_run(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / ".final.tmp-0123456789ab").mkdir()  # left by a save that was interrupted
    assert main(TINY[:1] + ["--steps", "3"] + TINY[3:] + ["--out", str(copy), "--overwrite", "--eval-every", "0"]) == 0
    assert json.loads((copy / "final" / "clip.json").read_text())["steps"] == 3
    assert sorted(p.name for p in (copy / "samples").iterdir()) == ["step-0000003.png"]
    assert not (copy / ".final.tmp-0123456789ab").exists()


def test_ctrl_c_says_where_the_last_checkpoint_is(tmp_path):
    out = tmp_path / "run"
    argv = [a if a != "30" else "100000" for a in TINY[1:]]  # --steps 100000: stopped long before the end
    process = subprocess.Popen([sys.executable, "-m", "tinydiff", "train-clip", *argv, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "latest").is_file():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert re.search(r"tinydiff train-clip: interrupted at step \d+; the last checkpoint is step \d+ .*--resume", err)
