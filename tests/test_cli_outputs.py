"""The command line keeps a user's work safe: a corpus of bad outputs and flags, each refused
with one line before any work, with nothing that existed modified; --overwrite replaces only
what tinydiff wrote; --resume names every changed flag.

The corpus is a list of (argv, message fragment). Placeholders in argv: {run} a finished tiny
training run, {final} its final/, {file} an existing file, {notes} a folder of the user's,
{foreign} a folder holding a final/ that tinydiff did not write, {png} an existing image,
{tmp} the scratch folder."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydiff.cli import main

TINY = ["--dataset", "glyphs", "--image-size", "8", "--channels", "8,8", "--attention", "0,1",
        "--batch-size", "4", "--warmup-steps", "1", "--sample-every", "0", "--processes", "1"]
TINY_RUN = ["train", *TINY, "--steps", "3", "--checkpoint-every", "1", "--class-conditional", "--seed", "1"]
RESUME = ["train", *TINY, "--steps", "3", "--checkpoint-every", "1", "--class-conditional", "--seed", "1",
          "--out", "{run}", "--resume"]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A scratch folder with a finished run and the user's own files."""
    root = tmp_path_factory.mktemp("outputs")
    assert main(TINY_RUN + ["--out", str(root / "run")]) == 0
    (root / "file").write_text("the user's file\n")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("mine\n")
    (root / "foreign" / "final").mkdir(parents=True)
    (root / "foreign" / "final" / "config.json").write_text('{"mine": true}\n')
    (root / "image.png").write_bytes(b"not really a png, but the user's")
    (root / "empty").mkdir()
    return root


def fill(argv, root):
    names = {"run": root / "run", "final": root / "run" / "final", "file": root / "file",
             "notes": root / "notes", "foreign": root / "foreign", "png": root / "image.png", "tmp": root,
             "empty": root / "empty"}
    return [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]


def digest(root):
    """Every path under root with its bytes' hash: what 'nothing was modified' compares."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(Path(root).rglob("*"))}


REFUSED = [
    # train: where the run goes
    (["train", *TINY, "--out", "{file}"], "--out: {file} is a file; expected a folder"),
    (["train", *TINY, "--out", "{file}/sub"], "is a file, not a folder"),
    (["train", *TINY, "--out", "{run}"], "already holds a run at step 3 of 3 (finished); continue it with --resume, "
                                         "or start over with --overwrite"),
    (["train", *TINY, "--out", "{run}", "--resume", "--overwrite"], "--resume and --overwrite contradict"),
    (["train", *TINY, "--out", "{foreign}"], "{foreign}/final was not written by tinydiff"),
    (["train", *TINY, "--out", "{foreign}", "--overwrite"], "{foreign}/final was not written by tinydiff"),
    (["train", *TINY, "--out", "{empty}", "--resume"], "--resume: no checkpoint in"),
    (["train-vae", "--image-size", "16", "--out", "{file}"], "is a file; expected a folder"),
    (["train-vae", "--image-size", "16", "--out", "{run}"], "already holds a run at step 3"),
    # --resume: every changed flag named with the run's value and the new one
    (RESUME + ["--prediction-type", "v_prediction"], "--prediction-type: the run used epsilon, now v_prediction"),
    ([a for a in RESUME if a != "--class-conditional"], "--class-conditional: the run used on, now off"),
    (RESUME + ["--image-size", "16"], "--image-size: the run used 8, now 16"),
    (RESUME + ["--channels", "8,16", "--beta-schedule", "linear"],
     "--beta-schedule: the run used squaredcos_cap_v2, now linear; --channels: the run used 8,8, now 8,16"),
    (RESUME + ["--min-snr-gamma", "5"], "--min-snr-gamma: the run used 0.0, now 5.0"),
    (RESUME + ["--steps", "2"], "--steps: the run used 3, now 2; a run can be extended (a larger --steps), "
                                "not shortened"),
    (RESUME + ["--dataset", "shapes"], "--dataset: the run used glyphs, now shapes"),
    # export
    (["export", "--model", "{final}", "--diffusers", "{file}"], "--diffusers: {file} is a file; expected a folder"),
    (["export", "--model", "{final}", "--diffusers", "{file}", "--overwrite"], "is a file; expected a folder"),
    (["export", "--model", "{final}", "--diffusers", "{file}/x"], "is a file, not a folder"),
    (["export", "--model", "{final}", "--diffusers", "{notes}"], "{notes} exists and is not empty; pass --overwrite"),
    (["export", "--model", "{final}", "--diffusers", "{notes}", "--overwrite"], "{notes} was not written by tinydiff"),
    (["export", "--model", "{final}", "--diffusers", "{run}", "--overwrite"], "{run} was not written by tinydiff"),
    # sample: checked before the model is loaded
    (["sample", "--model", "{final}", "--out", "{tmp}"], "--out: {tmp} is a folder; expected a file name"),
    (["sample", "--model", "{final}", "--out", "{tmp}/x.tiff2"], "Pillow cannot write a '.tiff2' image"),
    (["sample", "--model", "{final}", "--out", "{tmp}/noextension"], "Pillow cannot write a 'file without an ext"),
    (["sample", "--model", "{final}", "--out", "{tmp}/x.xbm"], "Pillow cannot write a '.xbm' image"),
    (["sample", "--model", "{final}", "--out", "{png}"], "--out: {png} exists; pass --overwrite to replace it"),
    (["sample", "--model", "{final}", "--out", "{file}/x.png"], "is a file, not a folder"),
    (["sample", "--model", "{final}", "--out", "{tmp}/a.png", "--gif", "{tmp}/a.png"], "--gif: expected a file name "
                                                                                       "ending in .gif"),
    (["sample", "--model", "{final}", "--out", "{tmp}/a.gif", "--gif", "{tmp}/a.gif"], "give each output its own"),
    (["sample", "--model", "{final}", "--out", "{tmp}/a.png", "--npz", "{tmp}/a.txt"], "--npz: expected a file name "
                                                                                       "ending in .npz"),
    (["sample", "--model", "{final}", "--out", "{tmp}/a.png", "--npz", "{file}/a.npz"], "is a file, not a folder"),
    (["sample", "--model", "{final}", "--out", "{tmp}/a.png", "--npz", "{notes}"], "--npz: {notes} is a folder"),
    (["sample", "--model", "{final}", "--out", "{tmp}/a.png", "--gif", "{png}"], "--gif: expected a file name"),
]

BAD_FLAGS = [  # argparse: exit 2, one usage line naming the flag
    (["train", *TINY, "--out", "x", "--attention", "0,x"], "argument --attention: expected comma-separated 0s"),
    (["train", *TINY, "--out", "x", "--min-snr-gamma", "nan"], "argument --min-snr-gamma: expected a finite number"),
    (["train", *TINY, "--out", "x", "--lr", "nan"], "argument --lr: expected a finite number, got 'nan'"),
    (["train", *TINY, "--out", "x", "--lr", "-1"], "argument --lr: expected a number > 0"),
    (["train", *TINY, "--out", "x", "--lr", "inf"], "argument --lr: expected a finite number"),
    (["train", *TINY, "--out", "x", "--ema-decay", "2"], "argument --ema-decay: expected a number in [0, 1)"),
    (["train", *TINY, "--out", "x", "--warmup-steps", "-1"], "argument --warmup-steps: expected a whole number >= 0"),
    (["train", *TINY, "--out", "x", "--seed", "-1"], "argument --seed: expected a whole number >= 0"),
    (["train", *TINY, "--out", "x", "--sample-every", "-5"], "argument --sample-every: expected a whole number >= 0"),
    (["train-vae", "--out", "x", "--beta", "nan"], "argument --beta: expected a finite number"),
    (["train-vae", "--out", "x", "--lr", "0"], "argument --lr: expected a number > 0"),
    (["train-vae", "--out", "x", "--ema-decay", "1"], "argument --ema-decay: expected a number in [0, 1)"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(a[:1] + a[-2:]) for a, _ in REFUSED])
def test_refused_with_one_line_and_nothing_modified(place, argv, message, capsys):
    before = digest(place)
    with pytest.raises(SystemExit) as refused:
        main(fill(argv, place))
    text = str(refused.value.code)
    assert text.startswith(f"tinydiff {argv[0]}: ") and "\n" not in text
    assert fill([message], place)[0] in text
    assert digest(place) == before
    assert "wrote" not in capsys.readouterr().out  # refused before any work


@pytest.mark.parametrize("argv, message", BAD_FLAGS, ids=[" ".join(a[-2:]) for a, _ in BAD_FLAGS])
def test_bad_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [REFUSED[2], BAD_FLAGS[0]])
def test_through_python_m_tinydiff_no_traceback(place, argv, message):
    before = digest(place)
    done = subprocess.run([sys.executable, "-m", "tinydiff", *fill(argv, place)], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert fill([message], place)[0] in lines[-1]
    assert len(lines) == 1 or done.returncode == 2  # argparse prints its usage above the error
    assert digest(place) == before


def test_overwrite_replaces_only_what_tinydiff_wrote(tmp_path):
    out = tmp_path / "run"
    assert main(TINY_RUN + ["--out", str(out)]) == 0
    (out / "notes.txt").write_text("the user's notes\n")
    assert main(["train", *TINY, "--steps", "2", "--checkpoint-every", "1", "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "the user's notes\n"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step-0000001", "step-0000002"]
    state = json.loads((out / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state["run_settings"]["class_conditional"] is False  # the new run's, not a mix


def test_export_and_sample_overwrite_what_they_wrote(place, tmp_path):
    exported = tmp_path / "hf"
    final = str(place / "run" / "final")
    assert main(["export", "--model", final, "--diffusers", str(exported)]) == 0
    assert json.loads((exported / "model_index.json").read_text())["_tinydiff_version"]
    with pytest.raises(SystemExit, match="not empty; pass --overwrite"):
        main(["export", "--model", final, "--diffusers", str(exported)])
    assert main(["export", "--model", final, "--diffusers", str(exported), "--overwrite"]) == 0
    assert not list(tmp_path.glob(".hf.*"))  # nothing set aside is left behind
    grid, npz = tmp_path / "g.png", tmp_path / "new" / "deeper" / "s.npz"  # --npz's folder is created
    sample = ["sample", "--model", final, "--steps", "2", "--num", "2", "--out", str(grid), "--npz", str(npz)]
    assert main(sample) == 0 and npz.is_file()
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main(sample)
    assert main(sample + ["--overwrite"]) == 0


def test_resume_stores_every_flag_and_extends_a_finished_run(place, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(place / "run", run)
    state = json.loads((run / "checkpoints" / "step-0000003" / "trainer_state.json").read_text())
    settings = state["run_settings"]
    assert settings["prediction_type"] == "epsilon" and settings["class_conditional"] is True
    assert settings["channels"] == [8, 8] and settings["attention"] == [0, 1]
    assert not {"out", "resume", "overwrite", "processes", "func"} & set(settings)
    extend = [a.replace("{run}", str(run)) for a in RESUME]
    extend[extend.index("--steps") + 1] = "5"
    assert main(extend) == 0
    state = json.loads((run / "checkpoints" / "step-0000005" / "trainer_state.json").read_text())
    assert state["step"] == 5 and state["config"]["steps"] == 5
    assert state["config"]["warmup_steps"] == 1  # the run's own warm-up: not repeated


def test_checkpoints_from_before_run_settings_still_resume_or_say_why(place, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(place / "run", run)
    for state_file in run.glob("checkpoints/step-*/trainer_state.json"):
        state = json.loads(state_file.read_text())
        del state["run_settings"]
        state_file.write_text(json.dumps(state))
    resume = [a.replace("{run}", str(run)) for a in RESUME]
    with pytest.raises(SystemExit, match=r"the model's num_class_embeds \(--class-conditional\): "
                                         r"the run used 11, now not set"):  # 10 digits + the null class
        main([a for a in resume if a != "--class-conditional"])
    assert main(resume) == 0


def test_a_flag_the_run_did_not_record_must_keep_its_default(place, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(place / "run", run)
    for state_file in run.glob("checkpoints/step-*/trainer_state.json"):
        state = json.loads(state_file.read_text())
        del state["run_settings"]["min_snr_gamma"]  # as if the flag came after the run
        state_file.write_text(json.dumps(state))
    resume = [a.replace("{run}", str(run)) for a in RESUME]
    with pytest.raises(SystemExit, match="--min-snr-gamma: the run did not record it .*now 5.0"):
        main(resume + ["--min-snr-gamma", "5"])
    assert main(resume) == 0


def test_class_count_comes_from_the_data_set(tmp_path):
    """The first batch of glyphs with seed 1 has labels up to 6; digits go to 9."""
    out = tmp_path / "run"
    assert main(["train", "--dataset", "glyphs", "--class-conditional", "--batch-size", "4", "--seed", "1",
                 "--steps", "3", "--image-size", "8", "--channels", "8,8", "--attention", "0,1",
                 "--processes", "1", "--out", str(out)]) == 0
    config = json.loads((out / "final" / "unet" / "config.json").read_text())
    assert config["num_class_embeds"] == 11 and config["class_embed_null_index"] == 10  # 10 digits + null
    from PIL import Image

    assert Image.open(out / "samples" / "step-0000003.png").size[0] >= 256  # 8 px glyphs, zoomed


def test_data_sources_know_their_class_count(tmp_path):
    from PIL import Image

    from tinydiff.pipelines.data_sources import make_source

    assert make_source("glyphs", 4, 0, image_size=8).num_classes == 10
    assert make_source("shapes", 4, 0, image_size=16).num_classes == 3
    assert make_source("moons", 4, 0).num_classes is None
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / name / f"{i}.png")
    assert make_source("folder", 2, 0, image_size=8, path=str(tmp_path)).num_classes == 3


def test_a_full_disk_while_sampling_is_one_line(place, tmp_path, monkeypatch):
    import errno

    import tinydiff.viz.tiles as tiles

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "g.png"))

    monkeypatch.setattr(tiles, "save_image_grid", full_disk)
    with pytest.raises(SystemExit, match=r"^tinydiff sample: No space left on device \(.*g.png\)$"):
        main(["sample", "--model", str(place / "run" / "final"), "--steps", "1", "--num", "2",
              "--out", str(tmp_path / "g.png")])


def test_a_link_is_not_replaced_by_export(place, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(SystemExit, match="--diffusers: .*link is a link; give the folder itself"):
        main(["export", "--model", str(place / "run" / "final"), "--diffusers", str(tmp_path / "link")])


def test_an_unwritable_place_is_refused_before_any_work(place, monkeypatch):
    """(Tests run as root here, where every folder is writable: os.access says no instead.)"""
    import tinydiff.pipelines.outputs as outputs

    monkeypatch.setattr(outputs.os, "access", lambda path, mode: False)
    before = digest(place)
    for argv, flag in [(["train", *TINY, "--out", "{tmp}/new"], "--out"),
                       (["export", "--model", "{final}", "--diffusers", "{tmp}/hf"], "--diffusers"),
                       (["sample", "--model", "{final}", "--out", "{tmp}/a.png"], "--out")]:
        with pytest.raises(SystemExit, match=f"{flag}: cannot write in {place} \\(permission denied\\)"):
            main(fill(argv, place))
    assert digest(place) == before


@pytest.mark.parametrize("argv", [["train", "--dataset", "glyphs", "--out", "x"], ["train-vae", "--out", "x"]])
def test_flag_defaults_are_the_values_parsing_gives(argv):
    """A flag a run did not record is compared with its default, so a default must be the
    parsed value (a string default such as "0,0,1" would be converted by parsing, not by
    get_default)."""
    from tinydiff.cli.main import build_parser

    parser = build_parser()
    parsed = vars(parser.parse_args(argv))
    command = parser.commands[argv[0]]
    assert {k: v for k, v in parsed.items() if command.get_default(k) != v} == \
        {"command": argv[0], "out": Path("x"), **({"dataset": "glyphs"} if argv[0] == "train" else {})}



SHORT = ["train", *TINY, "--steps", "2", "--checkpoint-every", "1"]


@pytest.mark.parametrize("where", ["final/MY_NOTES.txt", "final/unet/extra.npy", "checkpoints/step-0000002/thesis.tex",
                                   "checkpoints/latest.tmp/notes.txt", "checkpoints/.step-0000009.tmp-ab/notes.txt"])
def test_overwrite_never_removes_a_users_file_inside_a_runs_folders(where, tmp_path, capsys):
    """--overwrite removes checkpoints/ and final/ only when every file below them is one tinydiff
    writes there: a user's file anywhere inside is found, named, and nothing is removed."""
    out = tmp_path / "run"
    assert main(SHORT + ["--out", str(out)]) == 0
    if where.startswith("checkpoints/latest.tmp"):
        (out / "checkpoints" / "latest.tmp").mkdir()
    mine = out / where
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("the user's work\n")
    before = digest(out)
    with pytest.raises(SystemExit) as refused:
        main(SHORT + ["--out", str(out), "--overwrite"])
    assert "was not written by tinydiff" in str(refused.value) and mine.name in str(refused.value)
    assert digest(out) == before and mine.read_text() == "the user's work\n"


def test_export_overwrite_never_replaces_a_model_folder_holding_a_users_file(tmp_path):
    out = tmp_path / "run"
    assert main(SHORT + ["--out", str(out)]) == 0
    exported = tmp_path / "hf"
    assert main(["export", "--model", str(out / "final"), "--diffusers", str(exported)]) == 0
    (exported / "README.txt").write_text("mine\n")
    with pytest.raises(SystemExit, match="README.txt"):
        main(["export", "--model", str(out / "final"), "--diffusers", str(exported), "--overwrite"])
    assert (exported / "README.txt").read_text() == "mine\n"
    (exported / "README.txt").unlink()
    assert main(["export", "--model", str(out / "final"), "--diffusers", str(exported), "--overwrite"]) == 0
