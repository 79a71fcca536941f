"""Benchmark tinydiff's kernels: NumPy reference vs Numba kernel vs PyTorch CPU (when installed).

Prints one table of milliseconds and GFLOP/s, forward and forward+backward, float32, batch 64,
and writes the same numbers as JSON (default: benchmarks/results/kernels.json).

    python benchmarks/bench_kernels.py            # full run
    python benchmarks/bench_kernels.py --quick    # fewer repeats, reference column trimmed

FLOP counts (multiply-add = 2 FLOPs), the same for every column:
- conv2d: forward 2*B*O*C*kH*kW*Ho*Wo; backward w.r.t. input and w.r.t. weight cost one
  forward each, so forward+backward = 3x forward.
- attention: forward 4*B*Hd*N*M*D (Q K^T and P V); backward has four such products (dV, dP, dQ,
  dK), so forward+backward = 3x forward. Recomputing Q K^T in backward is not counted as work.
- group norm: memory-bound, reported in ms only.
PyTorch runs with torch.set_num_threads(numba.get_num_threads()); its forward+backward is
autograd through F.conv2d / F.scaled_dot_product_attention / F.group_norm. The Numba kernels
use numba.get_num_threads() threads, except that conv's products run in NumPy's BLAS with its
own thread count (all cores unless OPENBLAS_NUM_THREADS says otherwise; the run prints any
OPENBLAS_*/OMP_*/MKL* variables). "% sgemm" is the Numba conv's GFLOP/s over the float32
2048^2 matrix-multiply speed measured at the start of the same run.

3x3 convolutions with 8 or more channels take Winograd F(2x2, 3x3) (kernels/conv/winograd.py),
which does 2.25x fewer multiplications; GFLOP/s still counts the direct convolution's FLOPs (the
work done, not the arithmetic spent), so it can pass the sgemm ceiling. A second table times
the same convolutions with Winograd and with im2col, alternating, in the same process.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/runtime/process_settings.py)
import numba
import numpy as np

from tinydiff import kernels as K
from tinydiff.kernels.attention import _rows_per_block
from tinydiff.kernels import conv as conv_kernels
from tinydiff.kernels.conv import describe_path as conv_path
from tinydiff.kernels.probe import start_threading_layer

from memory_probes import rss_peak_mb, tracemalloc_peak_mb

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

BATCH = 64
CONV_SHAPES = [(32, 32, 32), (64, 64, 16), (128, 128, 8), (3, 32, 32)]  # (C_in, C_out, H=W)
ATTENTION_SHAPES = [(4, 64, 32), (4, 256, 16)]  # (heads, tokens, head width)
GROUP_NORM_SHAPE = (64, 64, 16, 16)
GROUPS = 32


def attention_rows(tokens, d):
    return _rows_per_block(tokens, tokens, d)


def timings_ms(fn, repeats, warmup):
    """Wall times of `repeats` calls of fn() in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return times


def median_ms(fn, repeats, warmup):
    """Median wall time of fn() in milliseconds after `warmup` untimed calls."""
    return float(np.median(timings_ms(fn, repeats, warmup)))


def sgemm_gflops(repeats):
    """Measured float32 matrix-multiply speed of NumPy's BLAS at 2048^2."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    return 2 * 2048**3 / (median_ms(lambda: a @ b, repeats, 2) * 1e6)


# ----------------------------------------------------------------------------------------------
# the three implementations of each case: fwd() and fwd_bwd() closures over fixed inputs
# ----------------------------------------------------------------------------------------------

def conv_case(c_in, c_out, hw, rng):
    x = rng.standard_normal((BATCH, c_in, hw, hw), dtype=np.float32)
    w = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
    b = rng.standard_normal(c_out, dtype=np.float32)
    dy = rng.standard_normal((BATCH, c_out, hw, hw), dtype=np.float32)

    def ours(fwd, bwd):
        def fwd_only():
            return fwd(x, w, b, 1, 1)

        def fwd_bwd():  # both gradients in one call, as Conv2d takes them
            fwd(x, w, b, 1, 1)
            bwd(dy, x, w, 1, 1)
        return fwd_only, fwd_bwd

    impls = {
        "reference": ours(K.conv2d_forward_ref, K.conv2d_backward_ref),
        "numba": ours(K.conv2d_forward, K.conv2d_backward),
    }
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        tdy = torch.from_numpy(dy)

        def t_fwd():
            with torch.no_grad():
                return F.conv2d(tx, tw, tb, padding=1)

        def t_fwd_bwd():
            for t in (tx, tw, tb):
                t.grad = None
            F.conv2d(tx, tw, tb, padding=1).backward(tdy)
        impls["torch"] = (t_fwd, t_fwd_bwd)
    flops = 2 * BATCH * c_out * c_in * 9 * hw * hw
    return impls, flops, 3 * flops


def attention_case(heads, tokens, d, rng, kv_tokens=None, batch=BATCH):
    """Self-attention, or cross-attention to kv_tokens keys and values (bench_cross_attention.py)."""
    kv_tokens = tokens if kv_tokens is None else kv_tokens
    q, dout = (rng.standard_normal((batch, heads, tokens, d), dtype=np.float32) for _ in range(2))
    k, v = (rng.standard_normal((batch, heads, kv_tokens, d), dtype=np.float32) for _ in range(2))

    def ours(fwd, bwd):
        def fwd_bwd():
            out, lse = fwd(q, k, v)
            bwd(dout, q, k, v, out, lse)
        return (lambda: fwd(q, k, v)), fwd_bwd

    impls = {"reference": ours(K.attention_forward_ref, K.attention_backward_ref),
             "numba": ours(K.attention_forward, K.attention_backward)}
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        tdout = torch.from_numpy(dout)

        def t_fwd():
            with torch.no_grad():
                return F.scaled_dot_product_attention(tq, tk, tv)

        def t_fwd_bwd():
            for t in (tq, tk, tv):
                t.grad = None
            F.scaled_dot_product_attention(tq, tk, tv).backward(tdout)
        impls["torch"] = (t_fwd, t_fwd_bwd)
    flops = 4 * batch * heads * tokens * kv_tokens * d
    return impls, flops, 3 * flops


def group_norm_case(rng):
    x = rng.standard_normal(GROUP_NORM_SHAPE, dtype=np.float32)
    weight = rng.standard_normal(GROUP_NORM_SHAPE[1], dtype=np.float32)
    bias = rng.standard_normal(GROUP_NORM_SHAPE[1], dtype=np.float32)
    dy = rng.standard_normal(GROUP_NORM_SHAPE, dtype=np.float32)

    def ours(fwd, bwd):
        def fwd_bwd():
            _, mean, rstd = fwd(x, weight, bias, GROUPS, 1e-5)
            bwd(dy, x, weight, mean, rstd, GROUPS)
        return (lambda: fwd(x, weight, bias, GROUPS, 1e-5)), fwd_bwd

    impls = {"reference": ours(K.group_norm_forward_ref, K.group_norm_backward_ref),
             "numba": ours(K.group_norm_forward, K.group_norm_backward)}
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, weight, bias))
        tdy = torch.from_numpy(dy)

        def t_fwd():
            with torch.no_grad():
                return F.group_norm(tx, GROUPS, tw, tb, 1e-5)

        def t_fwd_bwd():
            for t in (tx, tw, tb):
                t.grad = None
            F.group_norm(tx, GROUPS, tw, tb, 1e-5).backward(tdy)
        impls["torch"] = (t_fwd, t_fwd_bwd)
    return impls, None, None


# ----------------------------------------------------------------------------------------------
# running and reporting
# ----------------------------------------------------------------------------------------------

def threading_layer():
    """Numba picks its threading layer at the first parallel launch: run one, then ask."""
    start_threading_layer(np.ones(4))
    return numba.threading_layer()


def environment():
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
        "torch": torch.__version__ if torch is not None else "not installed",
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": threading_layer(),
        "numpy_blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "cpu_count": os.cpu_count(),
        "blas_env": {k: v for k, v in os.environ.items()
                     if k.startswith(("OPENBLAS", "OMP_", "MKL"))},
    }


def start_run(repeats):
    """Give torch Numba's thread count, print the environment and the measured sgemm speed;
    returns (environment dict, sgemm GFLOP/s)."""
    if torch is not None:
        torch.set_num_threads(numba.get_num_threads())
    env = environment()
    print("  ".join(f"{k}={v}" for k, v in env.items()))
    if not env["blas_env"]:
        print("(no OPENBLAS_*/OMP_*/MKL* variables set)")
    sgemm = sgemm_gflops(repeats)
    print(f"measured sgemm (float32 2048^2, NumPy): {sgemm:.1f} GFLOP/s\n")
    return env, sgemm


def run_case(name, impls, flops_fwd, flops_fb, repeats, ref_repeats, skip_reference):
    """Time fwd and fwd+bwd of every implementation of one case.

    Numba and torch are timed in alternating blocks (numba, torch, numba, torch), so that load
    from elsewhere on the machine falls on both columns alike; each block starts with untimed
    calls, because the other library's threads (OpenMP workers, OpenBLAS's pool) may still be
    spinning from its last call and that cost belongs to neither. The reference runs on its own,
    fewer times.
    """
    rows = []
    for passname, index, flops in (("fwd", 0, flops_fwd), ("fwd+bwd", 1, flops_fb)):
        row = {"case": name, "pass": passname, "gflop": None if flops is None else flops / 1e9}
        fast = [impl for impl in ("numba", "torch") if impl in impls]
        times = {impl: [] for impl in fast}
        for block in range(2):
            for impl in fast:
                times[impl] += timings_ms(impls[impl][index], (repeats + 1 - block) // 2, 2)
        for impl in ("reference", "numba", "torch"):
            if impl not in impls:
                row[impl] = {"ms": None, "note": "not installed"}
                continue
            if impl == "reference" and skip_reference:
                row[impl] = {"ms": None, "note": "skipped"}
                continue
            ms = (float(np.median(timings_ms(impls[impl][index], ref_repeats, 1)))
                  if impl == "reference" else float(np.median(times[impl])))
            row[impl] = {"ms": ms, "gflops": None if flops is None else flops / (ms * 1e6)}
        rows.append(row)
    return rows


def print_winograd_vs_im2col(rng, repeats):
    """Forward+backward of each 3x3 conv shape, Winograd against im2col, calls alternating."""
    print("\n3x3 conv forward+backward, batch 64: Winograd F(2x2,3x3) vs im2col, same process")
    print(f"{'case':<29}{'im2col ms':>10}{'Winograd ms':>13}  {'speed-up':>8}")
    for c_in, c_out, hw in CONV_SHAPES:
        impls, _, _ = conv_case(c_in, c_out, hw, rng)
        fwd_bwd = impls["numba"][1]
        times = {True: [], False: []}
        for block in range(2):
            for enabled in (False, True):
                with conv_kernels.winograd_enabled(enabled):
                    times[enabled] += timings_ms(fwd_bwd, (repeats + 1 - block) // 2, 2)
        slow, fast = float(np.median(times[False])), float(np.median(times[True]))
        winograd = conv_path((3, 3), 1, 1, c_in, c_out).startswith("Winograd")
        note = f"{slow / fast:.2f}x" if winograd else "(im2col in both: too few channels)"
        print(f"{f'conv3x3 {c_in}->{c_out} {hw}x{hw}':<29}{slow:>10.2f}{fast:>13.2f}  {note:>8}")


def fmt(cell, key, spec):
    value = cell.get(key)
    if value is not None:
        return format(value, spec)
    return cell.get("note", "-") if key == "ms" else "-"


def print_table(rows, sgemm):
    head = (f"{'case':<29}{'pass':<9}{'ref ms':>14}{'ref GF/s':>10}{'numba ms':>10}"
            f"{'numba GF/s':>11}{'torch ms':>14}{'torch GF/s':>11}{'numba/torch':>12}"
            f"{'% sgemm':>9}")
    print(head)
    print("-" * len(head))
    for row in rows:
        ratio = pct = "-"
        if row["torch"].get("ms") and row["numba"].get("ms"):
            row["speedup_vs_torch"] = row["torch"]["ms"] / row["numba"]["ms"]
            ratio = f"{row['speedup_vs_torch']:.2f}x"
        if row["numba"].get("gflops") and row["case"].startswith("conv"):
            row["pct_sgemm"] = 100 * row["numba"]["gflops"] / sgemm
            pct = f"{row['pct_sgemm']:.0f}%"
        ref = row["reference"]
        print(f"{row['case']:<29}{row['pass']:<9}"
              f"{fmt(ref, 'ms', '.2f'):>14}{fmt(ref, 'gflops', '.1f'):>10}"
              f"{fmt(row['numba'], 'ms', '.2f'):>10}{fmt(row['numba'], 'gflops', '.1f'):>11}"
              f"{fmt(row['torch'], 'ms', '.2f'):>14}{fmt(row['torch'], 'gflops', '.1f'):>11}"
              f"{ratio:>12}{pct:>9}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip slow references")
    parser.add_argument("--only", choices=["conv", "attention", "groupnorm"],
                        help="run one family of cases")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "kernels.json")
    args = parser.parse_args(argv)
    repeats, ref_repeats = (3, 1) if args.quick else (9, 2)
    env, sgemm = start_run(repeats)

    rng = np.random.default_rng(0)
    rows, paths = [], {}
    wanted = {"conv", "attention", "groupnorm"} if args.only is None else {args.only}
    for c_in, c_out, hw in CONV_SHAPES if "conv" in wanted else []:
        name = f"conv3x3 {c_in}->{c_out} {hw}x{hw}"
        impls, f1, f2 = conv_case(c_in, c_out, hw, rng)
        paths[name] = conv_path((3, 3), 1, 1, c_in, c_out)
        rows += run_case(name, impls, f1, f2, repeats, ref_repeats, skip_reference=False)
    for heads, tokens, d in ATTENTION_SHAPES if "attention" in wanted else []:
        name = f"attn h{heads} N=M={tokens} d={d}"
        impls, f1, f2 = attention_case(heads, tokens, d, rng)
        paths[name] = ("Numba loop over (batch, head) on plain threads; np.dot on blocks of "
                       f"{attention_rows(tokens, d)} query rows; polynomial exp; lse saved")
        rows += run_case(name, impls, f1, f2, repeats, ref_repeats,
                         skip_reference=args.quick and tokens > 64)
    if "groupnorm" in wanted:
        impls, _, _ = group_norm_case(rng)
        name = "groupnorm (64,64,16,16) g32"
        paths[name] = "Numba loop over (sample, group) on plain threads"
        rows += run_case(name, impls, None, None, repeats, ref_repeats, skip_reference=False)
    print_table(rows, sgemm)
    if args.quick:
        print("(--quick: 3 repeats; the reference is not timed for attention at 256 tokens)")

    if "conv" in wanted:
        print_winograd_vs_im2col(rng, repeats)

    print("\npaths that ran (numba column):")
    for name, path in paths.items():
        print(f"  {name:<28}{path}")

    print("\nattention fwd+bwd peak memory, MB (RSS growth in a fresh process; tracemalloc of "
          "NumPy allocations in brackets):")
    memory = {}
    for heads, tokens, d in ATTENTION_SHAPES if "attention" in wanted else []:
        name = f"attn h{heads} N=M={tokens} d={d}"
        impls, _, _ = attention_case(heads, tokens, d, np.random.default_rng(1))
        cells = {}
        for impl in ("reference", "numba", "torch"):
            if impl not in impls:
                cells[impl] = "not installed"
                continue
            entry = {"rss_mb": rss_peak_mb(impl, heads, tokens, d, BATCH)}
            if impl != "torch":
                entry["tracemalloc_mb"] = tracemalloc_peak_mb(impls[impl][1])
            memory.setdefault(name, {})[impl] = entry
            cells[impl] = f"{entry['rss_mb']:.1f}" + (
                f" [{entry['tracemalloc_mb']:.1f}]" if "tracemalloc_mb" in entry else "")
        print(f"  {name:<28}" + "  ".join(f"{k}: {v}" for k, v in cells.items()))
    print("  (inputs q, k, v, dout alone take "
          + ", ".join(f"{4 * 4 * BATCH * h * n * d / 2**20:.1f} MB (N={n})"
                      for h, n, d in ATTENTION_SHAPES) + ")")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "sgemm_gflops": sgemm, "batch": BATCH,
                                    "rows": rows, "paths": paths, "attention_memory": memory},
                                   indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
