"""Lesson 09 (DreamBooth and LoRA) runs end to end in fast mode, on the shipped adapters, with
a 2-step retraining, and writes every figure (as tests/lessons/test_lessons_smoke.py runs the others)."""

import pytest
from test_lessons_smoke import LESSONS, notebook_tools, run_as_notebook, run_as_script

from tinydiff.pretrained.train_dreambooth import ADAPTERS, adapter_path

FIGURES = ["instance_images.png", "before_after.png", "prior_preservation.png", "rank_vs_fidelity.png",
           "lora_scale_strip.png", "two_adapters.png", "retrain/final/pytorch_lora_weights.safetensors"]


def test_lesson_09_runs_fast_and_writes_its_figures(tmp_path, monkeypatch):
    missing = [name for name in ADAPTERS if not adapter_path(name).is_file()]
    if missing:
        pytest.skip(f"the shipped adapters {missing} are not trained (python -m tinydiff.pretrained.train_dreambooth)")
    monkeypatch.setenv("TINYDIFF_LESSON_FAST", "1")
    monkeypatch.setenv("TINYDIFF_LESSON_OUT", str(tmp_path / "out"))
    run = run_as_notebook if notebook_tools() else run_as_script
    printed = run(LESSONS / "09_teach_it_something_new.py", tmp_path)
    out = tmp_path / "out" / "09_teach_it_something_new"
    assert "all checks passed" in printed and str(out) in printed
    for name in FIGURES:
        assert (out / name).is_file() and (out / name).stat().st_size > 500, name
