"""benchmarks/bench_temporal_attention.py --quick runs and writes its table's rows as JSON: every
case timed forward and forward+backward on tinydiff's kernels, and, where torch (and diffusers)
are installed, within float32 round-off of theirs."""

import importlib
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_quick_mode_writes_every_row(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    bench = importlib.import_module("bench_temporal_attention")
    bench.main(["--quick", "--out", str(tmp_path / "results.json")])
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    assert {(r["case"].split()[0], r["pass"]) for r in rows} == {
        (kind, p) for kind in ("tattn", "module") for p in ("fwd", "fwd+bwd")}
    for row in rows:
        assert row["numba"]["ms"] > 0 and row["reference"]["ms"] > 0, row
        if row["torch"].get("ms") is not None:
            assert row["max_abs_difference_vs_torch"] < 1e-4, row
        else:
            assert row["torch"]["note"] == "not installed"
    assert results["quick"] is True and "numba_threads" in results["environment"]
