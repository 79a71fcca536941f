"""`tinydiff train --cond-drop-prob` and `tinydiff sample --guidance-scale / --guidance-rescale /
--unconditional`: a null class is built and used, a folder's recommended scale is the default,
and every misuse is one line."""

import json

import numpy as np
import pytest

from tinydiff.cli import main

TINY = ["train", "--dataset", "glyphs", "--steps", "2", "--batch-size", "4", "--image-size", "8",
        "--channels", "8,8", "--attention", "0,1", "--class-conditional", "--warmup-steps", "1",
        "--sample-every", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(TINY + ["--out", str(root / "null")]) == 0  # default: --cond-drop-prob 0.1
    assert main(TINY + ["--out", str(root / "plain"), "--cond-drop-prob", "0"]) == 0
    return root


def unet_config(run):
    return json.loads((run / "final" / "unet" / "config.json").read_text())


def test_class_conditional_training_builds_a_null_class_unless_told_not_to(runs):
    assert unet_config(runs / "null")["num_class_embeds"] == 11
    assert unet_config(runs / "null")["class_embed_null_index"] == 10
    assert unet_config(runs / "plain")["num_class_embeds"] == 10
    assert "class_embed_null_index" not in unet_config(runs / "plain")
    state = json.loads(max((runs / "null" / "checkpoints").iterdir()).joinpath("trainer_state.json").read_text())
    assert state["config"]["cond_drop_prob"] == 0.1


def test_cond_drop_prob_needs_labels_and_a_probability(tmp_path, capsys):
    with pytest.raises(SystemExit, match="--cond-drop-prob: 0.2 needs --class-conditional"):
        main([w for w in TINY if w != "--class-conditional"] + ["--cond-drop-prob", "0.2", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit):
        main(TINY + ["--cond-drop-prob", "1", "--out", str(tmp_path / "b")])
    assert "expected a number in [0, 1)" in capsys.readouterr().err


def sample_npz(runs, run, tmp_path, *flags):
    out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.npz"
    assert main(["sample", "--model", str(runs / run / "final"), "--steps", "3", "--num", "4", "--seed", "2",
                 "--out", str(out.with_suffix(".png")), "--npz", str(out), *flags]) == 0
    return np.load(out)


def test_guidance_flags_change_the_samples_and_keep_labels(runs, tmp_path):
    plain = sample_npz(runs, "null", tmp_path)
    guided = sample_npz(runs, "null", tmp_path, "--guidance-scale", "3", "--guidance-rescale", "0.7")
    assert np.array_equal(plain["labels"], [0, 1, 2, 3]) and np.array_equal(guided["labels"], plain["labels"])
    assert not np.allclose(plain["samples"], guided["samples"])
    uncond = sample_npz(runs, "null", tmp_path, "--unconditional")
    assert np.all(uncond["labels"] == 10)
    zero = sample_npz(runs, "null", tmp_path, "--guidance-scale", "0")  # s = 0: the unconditional model
    np.testing.assert_allclose(zero["samples"], uncond["samples"], atol=1e-5)


def test_the_folder_recommended_scale_is_the_default(runs, tmp_path):
    from tinydiff.pipelines import load_pipeline, save_pipeline, scheduler_from_config

    model, sched_config = load_pipeline(runs / "null" / "final")
    save_pipeline(runs / "recommends" / "final", model, scheduler_from_config("ddpm", sched_config),
                  guidance_scale=3.0)  # as the shipped glyph model stores its scale
    assert json.loads((runs / "recommends" / "final" / "model_index.json").read_text())["_tinydiff_guidance_scale"] == 3
    by_default = sample_npz(runs, "recommends", tmp_path)
    with pytest.raises(ValueError, match="guidance_scale: expected a finite number >= 0"):
        save_pipeline(tmp_path / "bad", model, scheduler_from_config("ddpm", sched_config), guidance_scale=-1.0)
    index_path = runs / "null" / "final" / "model_index.json"
    original = index_path.read_text()
    try:
        index_path.write_text(json.dumps({**json.loads(original), "_tinydiff_guidance_scale": -1}))
        with pytest.raises(SystemExit, match="_tinydiff_guidance_scale: expected a number >= 0"):
            sample_npz(runs, "null", tmp_path)
    finally:
        index_path.write_text(original)
    explicit = sample_npz(runs, "null", tmp_path, "--guidance-scale", "3")
    np.testing.assert_array_equal(by_default["samples"], explicit["samples"])


@pytest.mark.parametrize("run, flags, message", [
    ("plain", ["--guidance-scale", "2"], "--guidance-scale 2.0 needs a model trained with a null class"),
    ("plain", ["--unconditional"], "--unconditional needs a model trained with a null class"),
    ("null", ["--unconditional", "--label", "3"], "--unconditional draws the null class; drop --label"),
    ("null", ["--label", "10"], r"--label must be in \[0, 10\), got \[10\]"),
])
def test_guidance_misuse_is_one_line(runs, tmp_path, run, flags, message):
    with pytest.raises(SystemExit, match=message) as exit_:
        sample_npz(runs, run, tmp_path, *flags)
    assert "\n" not in str(exit_.value.code)


def test_bad_guidance_numbers_are_usage_errors(runs, tmp_path, capsys):
    for flags, expected in ((["--guidance-scale", "-1"], "expected a number >= 0"),
                            (["--guidance-rescale", "1.5"], "expected a number in [0, 1]"),
                            (["--guidance-scale", "nan"], "")):
        with pytest.raises(SystemExit):
            sample_npz(runs, "null", tmp_path, *flags)
        assert expected in capsys.readouterr().err


def test_a_resumed_run_keeps_its_own_drop_probability():
    from types import SimpleNamespace

    from tinydiff.cli.train import resolve_cond_drop_prob

    args = SimpleNamespace(cond_drop_prob=None, class_conditional=True)
    assert resolve_cond_drop_prob(args, None) == 0.1
    assert resolve_cond_drop_prob(args, {"config": {"cond_drop_prob": 0.2}}) == 0.2
    assert resolve_cond_drop_prob(args, {"config": {"steps": 10}}) == 0.0  # a run older than the flag
    assert resolve_cond_drop_prob(SimpleNamespace(cond_drop_prob=None, class_conditional=False), None) == 0.0


def test_guidance_interval_flag_and_the_folder_recommended_interval(runs, tmp_path):
    from tinydiff.pipelines import load_pipeline, save_pipeline, scheduler_from_config

    model, sched_config = load_pipeline(runs / "null" / "final")
    save_pipeline(runs / "interval" / "final", model, scheduler_from_config("ddpm", sched_config),
                  guidance_scale=3.0, guidance_interval=(300, 500))  # of DDIM-3's 666, 333, 0: guides 333 only
    index = json.loads((runs / "interval" / "final" / "model_index.json").read_text())
    assert index["_tinydiff_guidance_scale"] == 3 and index["_tinydiff_guidance_interval"] == [300, 500]
    explicit = sample_npz(runs, "null", tmp_path, "--guidance-scale", "3", "--guidance-interval", "300", "500")
    np.testing.assert_array_equal(sample_npz(runs, "interval", tmp_path)["samples"], explicit["samples"])
    everywhere = sample_npz(runs, "null", tmp_path, "--guidance-scale", "3")
    unguided = sample_npz(runs, "null", tmp_path, "--guidance-scale", "1")
    assert not np.allclose(explicit["samples"], everywhere["samples"])
    assert not np.allclose(explicit["samples"], unguided["samples"])
    # a scale given on the command line guides every step, unless --guidance-interval says otherwise
    np.testing.assert_array_equal(sample_npz(runs, "interval", tmp_path, "--guidance-scale", "3")["samples"],
                                  everywhere["samples"])
    np.testing.assert_array_equal(sample_npz(runs, "null", tmp_path, "--guidance-scale", "3", "--guidance-interval",
                                             "0", "999")["samples"], everywhere["samples"])
    with pytest.raises(ValueError, match="guidance_interval: .* pass guidance_scale too"):
        save_pipeline(tmp_path / "bad", model, scheduler_from_config("ddpm", sched_config), guidance_interval=(1, 2))


@pytest.mark.parametrize("flags, message", [
    (["--guidance-scale", "1", "--guidance-interval", "300", "500"], "--guidance-interval given, but no guidance runs"),
    (["--guidance-scale", "3", "--guidance-interval", "500", "300"], r"guidance_interval: expected \(t_low, t_high\) "
                                                                     r"with 0 <= t_low <= t_high < 1000"),
    (["--guidance-scale", "3", "--guidance-interval", "0", "1000"], r"0 <= t_low <= t_high < 1000"),
])
def test_guidance_interval_misuse_is_one_line(runs, tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message) as exit_:
        sample_npz(runs, "null", tmp_path, *flags)
    assert "\n" not in str(exit_.value.code)


def test_a_bad_stored_interval_or_flag_is_named(runs, tmp_path, capsys):
    index_path = runs / "null" / "final" / "model_index.json"
    original = index_path.read_text()
    try:
        index_path.write_text(json.dumps({**json.loads(original), "_tinydiff_guidance_scale": 2,
                                          "_tinydiff_guidance_interval": [700, "x"]}))
        with pytest.raises(SystemExit, match="_tinydiff_guidance_interval: expected \\[low, high\\]"):
            sample_npz(runs, "null", tmp_path)
    finally:
        index_path.write_text(original)
    with pytest.raises(SystemExit):
        sample_npz(runs, "null", tmp_path, "--guidance-scale", "3", "--guidance-interval", "-1", "500")
    assert "--guidance-interval: expected a whole number >= 0" in capsys.readouterr().err
