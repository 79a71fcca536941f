"""Time a UNet2DModel's training and sampling step: tinydiff against PyTorch + diffusers.

For each case (train_cases.py: the reference UNet at 32x32 and 16x16 and the glyph UNet, batch
64 by default) it prints the median wall time of a training step and of a sampling step, and
their compute rate:

- time: tinydiff trains as `tinydiff train` does (one process per core, each a slice of the
  batch) and also in one process, its kernels split over the cores; torch runs with
  torch.set_num_threads(numba.get_num_threads()). The two frameworks alternate step by step in
  one process, so that load changes hit both alike (torch measured slower after tinydiff's
  steps than after its own, by up to 15%, so the one-process steps are timed in a second pair
  of their own with torch);
- compute rate: FLOPs per step over its time, in GFLOP/s, against the float32 2048^2
  matrix-multiply speed of NumPy's BLAS (the best of several products, at the start and at the
  end of the run: the ceiling any BLAS-based framework works under). FLOPs are counted by
  tinydiff.metrics.cost on the forward pass (2 per multiply-add of every convolution, linear
  layer and attention product); a training step is counted as 3 forwards.

bench_train_memory.py measures the same steps' memory, bench_train_profile.py where tinydiff's
training step goes.

    python benchmarks/bench_train_time.py              # reference UNet at 32x32 and 16x16, glyph UNet
    python benchmarks/bench_train_time.py --quick      # fewer repeats, 16x16 only
    python benchmarks/bench_train_time.py --model DIR  # another model's architecture
"""

import tinydiff  # noqa: F401  -- before NumPy (tinydiff/runtime/process_settings.py)
import numpy as np
from train_cases import (TinydiffSteps, TorchSteps, check_args, environment, fmt, import_torch,
                         interleaved_medians, json_config, load_cases, parser_for, processes_for, timed,
                         write_results)

from tinydiff.metrics.cost import count_macs


def sgemm_gflops(repeats=8):
    """NumPy BLAS's float32 matrix-multiply speed at 2048^2: the best of `repeats`, a ceiling."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    a @ b
    return 2 * 2048**3 / min(timed(lambda: a @ b) for _ in range(repeats)) / 1e9


def run_case(name, config, args, torch, diffusers):
    print(f"\n== {name}: batch {args.batch}, tinydiff in {args.processes} process(es) ==")
    ours = TinydiffSteps(config, args.batch, args.processes)  # as `tinydiff train` runs
    single = ours if args.processes == 1 else TinydiffSteps(config, args.batch)  # one process
    num_params = sum(p.data.size for p in ours.model.parameters())
    row = {"case": name, "config": json_config(config), "batch": args.batch, "num_params": int(num_params),
           "processes": args.processes}
    macs = count_macs(single.forward) / args.batch
    row["forward_gflop_per_image"] = 2 * macs / 1e9
    print(f"{num_params / 1e6:.2f} M parameters, {2 * macs / 1e6:.1f} MFLOPs per image forward")
    # sampling (`tinydiff sample`) runs in one process: its step is the one-process model's
    fns_train, fns_sample = [ours.train], [single.sample]
    if torch is not None:
        theirs = TorchSteps(torch, diffusers, config, args.batch, ours.model.state_dict())
        fns_train.append(theirs.train)
        fns_sample.append(theirs.sample)
    train = interleaved_medians(fns_train, args.repeats, warmup=1)
    sample = interleaved_medians(fns_sample, args.repeats, warmup=1)
    ours.close()
    row["tinydiff"] = {"train_s": train[0], "sample_s": sample[0]}
    if single is not ours:
        one_train = interleaved_medians([single.train] + fns_train[1:], args.repeats, warmup=1)
        row["tinydiff_one_process"] = {"train_s": one_train[0]}
        if torch is not None:
            row["tinydiff_one_process"]["torch_train_s"] = one_train[1]
    if torch is not None:
        row["torch"] = {"train_s": train[1], "sample_s": sample[1]}
    return row


def print_table(rows, torch_note):
    print("\ntime per step (median)")
    head = f"{'case':<22}{'step':<7}{'tinydiff s':>11}{'torch s':>9}{'speed ratio':>12}{'1 process s':>12}{'ratio':>7}"
    print(head)
    print("-" * len(head))
    for row in rows:
        for kind in ("train", "sample"):
            ours, theirs = row["tinydiff"], row.get("torch")
            speed = theirs[f"{kind}_s"] / ours[f"{kind}_s"] if theirs else None
            one = row.get("tinydiff_one_process", {}).get(f"{kind}_s")
            one_ratio = row["tinydiff_one_process"][f"torch_{kind}_s"] / one if theirs and one else None
            print(f"{row['case']:<22}{kind:<7}{ours[f'{kind}_s']:>11.3f}"
                  f"{fmt(theirs and theirs[f'{kind}_s'], '.3f'):>9}{fmt(speed, '.2f'):>12}"
                  f"{fmt(one, '.3f'):>12}{fmt(one_ratio, '.2f'):>7}")
    print("tinydiff s: as tinydiff runs it -- training in the processes the header names (each a slice of "
          "the batch, tinydiff.runtime.parallel), sampling in one; 1 process s: training in one process, its "
          "kernels split over the cores")
    print("speed ratio = torch time / tinydiff time (>= 1: tinydiff is at least as fast); ratio: the same "
          "for 1 process (timed in a pair of its own with torch)")
    if torch_note:
        print(f"torch / diffusers: {torch_note}")


def print_rates(rows, sgemm):
    print(f"\ncompute rate, GFLOP/s (share of the {sgemm:.0f} GFLOP/s that NumPy's BLAS reaches on a "
          f"2048^2 float32 product)")
    head = f"{'case':<22}{'step':<7}{'GFLOP/step':>11}{'tinydiff':>16}{'torch':>16}"
    print(head)
    print("-" * len(head))
    for row in rows:
        for kind, passes in (("train", 3), ("sample", 1)):
            flop = passes * row["forward_gflop_per_image"] * row["batch"]
            cells = []
            for framework in ("tinydiff", "torch"):
                if framework not in row:
                    cells.append(f"{'-':>16}")
                    continue
                rate = flop / row[framework][f"{kind}_s"]
                row[framework][f"{kind}_gflops"] = rate
                cells.append(f"{rate:>9.1f} ({100 * rate / sgemm:>3.0f}%)")
            print(f"{row['case']:<22}{kind:<7}{flop:>11.2f}" + "".join(cells))
    print("a training step is counted as 3 forward passes; element-wise work (norms, activations) is not counted")


def main():
    parser = parser_for(__doc__, "train_time.json")
    args = parser.parse_args()
    check_args(parser, args)
    cases = load_cases(args)
    # torch before anything starts Numba's threading layer (processes_for asks Numba for its
    # thread count): with Numba's OpenMP layer started first, torch's steps took 1.75x as long
    torch, diffusers = import_torch()
    args.processes = processes_for(args)
    env = environment(torch, diffusers)
    torch_note = None if torch is not None else diffusers
    diffusers = None if torch is None else diffusers
    sgemm = sgemm_gflops()
    print(f"NumPy BLAS float32 sgemm 2048^2: {sgemm:.1f} GFLOP/s")
    rows = [run_case(name, config, args, torch, diffusers) for name, config in cases]
    # measured again at the end, the higher figure kept: one measurement can land on a slow moment
    sgemm = max(sgemm, sgemm_gflops())
    print_table(rows, torch_note)
    print_rates(rows, sgemm)
    write_results(args.out, {**env, "sgemm_2048_gflops": sgemm, "cases": rows})


if __name__ == "__main__":
    main()
