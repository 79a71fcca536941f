"""Smoke tests: each lesson runs end to end in --fast mode, passes its own asserts and
writes its figures."""

import os
import subprocess
import sys

import pytest

LESSONS = os.path.join(os.path.dirname(__file__), "..", "..", "lessons")

CASES = [
    ("01_forward_noising.py", ["noised_image_grid.png", "schedules_alpha_bar_snr.png", "pixel_histograms.png"]),
    ("02_reverse_with_an_exact_denoiser.py",
     ["trajectories.png", "ddim_sampling.gif", "ddim_sampling_frames.png", "samplers_side_by_side.png",
      "samplers_over_seeds.png"]),
    ("03_train_a_2d_denoiser.py",
     ["loss_curves.png", "denoising_field.png", "samples_vs_data.png", "sample_quality_over_seeds.png",
      "training_run/final/unet/diffusion_pytorch_model.safetensors"]),
]


@pytest.mark.parametrize("script, outputs", CASES)
def test_lesson_runs_fast_and_writes_its_figures(script, outputs, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, os.path.join(LESSONS, script), "--fast", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all checks passed" in result.stdout
    assert str(out) in result.stdout  # the lesson says where its figures went
    for name in outputs:
        path = out / name
        assert path.is_file() and path.stat().st_size > 5000, name


def test_default_output_folder_is_relative_to_the_working_directory(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(LESSONS, "01_forward_noising.py"), "--fast"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "outputs" / "01_forward_noising" / "noised_image_grid.png").is_file()
