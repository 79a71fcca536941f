"""Every lesson runs end to end in fast mode as a notebook: jupytext turns the percent script
into a notebook and nbclient executes it in a fresh ipykernel, as a student's editor would.
One run checks that the lesson passes its own asserts, writes its figures in the folder it
prints, and works where sys.argv holds the kernel's arguments instead of the lesson's flags
(TINYDIFF_LESSON_FAST=1 and TINYDIFF_LESSON_OUT stand in for --fast and --out).

Without jupytext and nbclient (they come with `pip install -e ".[dev]"`), the same lesson runs
as a plain script with the same environment, so the lessons stay tested either way.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[2] / "lessons"

CASES = [
    ("01_forward_noising.py", ["noised_image_grid.png", "schedules_alpha_bar_snr.png", "pixel_histograms.png"]),
    ("02_reverse_with_an_exact_denoiser.py",
     ["trajectories.png", "ddim_sampling.gif", "ddim_sampling_frames.png", "samplers_side_by_side.png",
      "samplers_over_seeds.png"]),
    ("03_train_a_2d_denoiser.py",
     ["loss_curves.png", "denoising_field.png", "samples_vs_data.png", "sample_quality_over_seeds.png",
      "training_run/final/unet/diffusion_pytorch_model.safetensors"]),
    ("04_glyph_unet.py", ["samples_grid.png", "reverse_process_strip.png", "denoising.gif",
                          "same_noise_all_labels.png"]),
    ("05_steps_and_samplers.py", ["quality_vs_steps.png", "few_steps_side_by_side.png", "quality_vs_steps.txt",
                                 "ode_error_vs_steps.png"]),
    ("06_latent_space.py", ["reconstructions.png", "latent_channels.png", "interpolation.png", "vae_vs_latent_diffusion.png"]),
    ("07_guidance.py", ["scores_2d.png", "samples_2d_s1_vs_s4.png", "glyphs_by_scale.png", "tradeoff_glyphs.png"]),
    ("08_words_to_pictures.py", ["clip_training_curves.png", "clip_similarity.png", "prompt_grid.png",
                                 "cross_attention_maps.png", "guidance_scales.png", "held_out_pairs.png"]),
    ("10_moving_pictures.py", ["real_clips.gif", "real_clips.png", "video_model.gif", "frame_by_frame.gif",
                               "frame_by_frame_vs_video.png", "centroid_paths.png", "checks.png",
                               "temporal_attention.png", "motion_vs_whole_unet.png"]),
    ("11_why_diffusion_won.py", ["samples_side_by_side.png", "sampling_cost.png", "ring_modes.png",
                                 "training_stability.png", "nll_comparison.png"]),
]


def notebook_tools():
    try:
        import jupytext
        import nbclient
    except ImportError:
        return None
    return jupytext, nbclient


def run_as_notebook(script, cwd):
    """Execute the lesson as a notebook in a fresh kernel; returns what its cells printed."""
    jupytext, nbclient = notebook_tools()
    notebook = jupytext.read(script)
    # the kernel of this Python (jupyter_client starts "python3" with sys.executable)
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()  # a failing cell (an assert of the lesson) raises CellExecutionError with its traceback
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []) if output.get("name") == "stdout")


def run_as_script(script, cwd):
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("script, outputs", CASES)
def test_lesson_runs_fast_as_a_notebook_and_writes_its_figures(script, outputs, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYDIFF_LESSON_FAST", "1")
    monkeypatch.setenv("TINYDIFF_LESSON_OUT", str(tmp_path / "out"))
    run = run_as_notebook if notebook_tools() else run_as_script
    printed = run(LESSONS / script, tmp_path)
    out = tmp_path / "out" / Path(script).stem
    assert "all checks passed" in printed
    assert str(out) in printed  # the lesson says where its figures went
    for name in outputs:
        path = out / name
        assert path.is_file() and path.stat().st_size > 500, name


def test_default_output_folder_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYDIFF_LESSON_OUT", raising=False)
    result = subprocess.run([sys.executable, str(LESSONS / "01_forward_noising.py"), "--fast"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "outputs" / "01_forward_noising" / "noised_image_grid.png").is_file()


def test_the_glyph_unet_lesson_runs_on_the_reference_kernels(tmp_path, monkeypatch):
    """Lesson 04 end to end with every layer on the NumPy reference kernels (TINYDIFF_LESSON_BACKEND,
    read by tinydiff.lesson): the readable backend carries a whole UNet lesson and its asserts.
    One lesson only: the reference kernels are several times slower (lesson 06 takes over a minute)."""
    monkeypatch.setenv("TINYDIFF_LESSON_FAST", "1")
    monkeypatch.setenv("TINYDIFF_LESSON_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("TINYDIFF_LESSON_BACKEND", "reference")
    printed = run_as_script(LESSONS / "04_glyph_unet.py", tmp_path)
    assert "every layer runs on the reference kernels" in printed and "all checks passed" in printed
    assert (tmp_path / "out" / "04_glyph_unet" / "samples_grid.png").is_file()
