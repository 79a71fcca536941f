"""Smoke test of lesson 06 (latent space) in --fast mode, on the shipped Shapes models: it runs,
passes its own asserts and writes its figures, in the folder it prints."""

import os
import subprocess
import sys

LESSON = os.path.join(os.path.dirname(__file__), "..", "..", "lessons", "06_latent_space.py")
FIGURES = ["reconstructions.png", "latent_channels.png", "interpolation.png", "vae_vs_latent_diffusion.png"]


def test_lesson_06_runs_fast_and_writes_its_figures(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, LESSON, "--fast", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all checks passed" in result.stdout
    assert str(out) in result.stdout
    for name in FIGURES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 5000, name
