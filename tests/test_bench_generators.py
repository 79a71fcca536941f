"""benchmarks/bench_generators.py --quick runs on the shipped generators and writes its table as JSON."""

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generators.py"


def test_quick_bench_writes_every_row_and_column(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_generators", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "generators.json"
    bench.main(["--quick", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = report["glyphs"]
    assert {"VAE (decoder mean)", "pixel transformer (256 tokens)", "real glyphs"} <= set(rows)
    assert any(name.startswith("GAN") for name in rows) and any(name.startswith("diffusion") for name in rows)
    for name, row in rows.items():
        assert 0.0 <= row["recognised"] <= 1.0 and row["frechet"] >= 0.0 and 0 <= row["digits_covered"] <= 10, name
    likelihoods = [row for row in rows.values() if "nll_bits_per_dim" in row]
    assert len(likelihoods) == 3 and all(0 < row["nll_bits_per_dim"] < 8 for row in likelihoods)
    assert set(report["ring"]) == {"GAN", "diffusion (DDPM 1000)"}
    assert all(0 <= m <= 8 for r in report["ring"].values() for m in r["modes_covered"])
    assert report["stability"]["diffusion"] and report["stability"]["GAN"]
