"""Smoke tests of the glyph lessons (04, 05, 07) in --fast mode, on a tiny model trained here for
a few steps (the lessons' own quality checks only run on the full model, outside --fast)."""

import os
import subprocess
import sys

import pytest

from tinydiff.cli import main

LESSONS = os.path.join(os.path.dirname(__file__), "..", "..", "lessons")


@pytest.fixture(scope="module")
def tiny_glyph_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_glyphs")
    # --class-conditional drops 10% of labels by default, so the model has the null class lesson 07 guides with
    main(["train", "--dataset", "glyphs", "--class-conditional", "--out", str(out), "--steps", "2",
          "--batch-size", "4", "--channels", "8,8", "--attention", "0,1", "--warmup-steps", "1",
          "--sample-every", "0"])
    return out / "final"


@pytest.mark.parametrize("script, outputs", [
    ("04_glyph_unet.py", ["samples_grid.png", "reverse_process_strip.png", "same_noise_all_labels.png", "denoising.gif"]),
    ("05_steps_and_samplers.py", ["quality_vs_steps.png", "ode_error_vs_steps.png", "few_steps_side_by_side.png",
                                  "quality_vs_steps.txt"]),
    ("07_guidance.py", ["scores_2d.png", "samples_2d_s1_vs_s4.png", "glyphs_by_scale.png", "tradeoff_glyphs.png"]),
])
def test_glyph_lesson_runs_fast(script, outputs, tiny_glyph_model, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, os.path.join(LESSONS, script), "--fast", "--out", str(out), "--model", str(tiny_glyph_model)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all checks passed" in result.stdout and str(out) in result.stdout
    for name in outputs:
        assert (out / name).is_file() and (out / name).stat().st_size > 500, name
        if name.endswith(".gif"):
            assert (out / name).stat().st_size <= 2_000_000, name
