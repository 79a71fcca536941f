"""benchmarks/bench_lora.py --quick runs, and its numbers say what LoRA claims: the trainable
count is r (d_in + d_out) over the attention matrices of the shipped UNet (counted here from
the plain model), the adapter file is a small fraction of the UNet's, and a frozen-base step
holds less NumPy memory than a full one."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tinydiff.nn.lora_model import DEFAULT_TARGETS, matches
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pretrained import text2image_dir

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def test_quick_mode(tmp_path):
    out = tmp_path / "lora.json"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)  # this tree's tinydiff
    done = subprocess.run([sys.executable, "bench_lora.py", "--quick", "--batch", "1", "--out", str(out)],
                          cwd=BENCHMARKS, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LoRA r=4" in done.stdout and "x full" in done.stdout
    full, lora = json.loads(out.read_text())["rows"]
    unet = load_model(Path(text2image_dir()) / "unet")
    expected = sum(4 * (m.in_features + m.out_features) for n, m in unet.named_modules()
                   if n and matches(n, DEFAULT_TARGETS))
    assert lora["rank"] == 4 and lora["trainable_parameters"] == expected
    assert full["trainable_parameters"] == unet.num_parameters()
    assert lora["file_bytes"] < full["file_bytes"] / 10
    assert lora["numpy_peak_mib"] < full["numpy_peak_mib"]  # no dW, gradients or moments for the base
    assert lora["step_seconds"] > 0 and full["step_seconds"] > 0
