"""Peak memory of a UNet2DModel's training and sampling step: tinydiff against PyTorch + diffusers.

For each case (train_cases.py) and step kind, the rise of the resident set size during one
step: each framework runs in a fresh child process that builds the model and a batch, runs one
whole step at batch 1 (tinydiff: an image per process, so every process has run; kernels are
loaded and parameters, gradients and optimizer state exist), resets the kernel's high-water
mark (writing 5 to /proc/self/clear_refs, Linux), runs one step at the benchmark batch and
reports VmHWM minus the RSS before that step, summed over tinydiff's processes (training runs
in as many as `tinydiff train` uses, sampling in one). The same method for both frameworks; it
counts activations and temporaries, not weights. tinydiff's NumPy allocations of the
one-process step are also traced with tracemalloc (peak minus the allocations alive before the
step), in brackets.

    python benchmarks/bench_train_memory.py            # reference UNet at 32x32 and 16x16, glyph UNet
    python benchmarks/bench_train_memory.py --quick    # 16x16 only
"""

import argparse
import json
import tracemalloc

import tinydiff  # noqa: F401  -- before NumPy (tinydiff/runtime/process_settings.py)
import numba
import numpy as np
from train_cases import (TinydiffSteps, TorchSteps, check_args, child_probe, environment, fmt, import_torch,
                         json_config, load_cases, parser_for, processes_for, write_results)

from tinydiff.models import UNet2DModel
from tinydiff.runtime.parallel import reset_peak_rss, status_kib


def probe_memory(spec):
    """Run in a child process: RSS rise (MiB) of one step at the benchmark batch."""
    framework, kind, config, batch = spec["framework"], spec["kind"], spec["config"], spec["batch"]
    config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}
    if framework == "torch":
        torch, diffusers = import_torch()
        torch.set_num_threads(numba.get_num_threads())
        state = UNet2DModel(rng=np.random.default_rng(0), **config).state_dict()
        warm, steps = TorchSteps(torch, diffusers, config, 1, state), TorchSteps(torch, diffusers, config, batch, state)
        steps.model, steps.optimizer = warm.model, warm.optimizer  # one model; two batches
    else:
        # the warm-up batch has an image for each process, so every process has run a step;
        # both batches run on the one model (and its worker processes)
        processes = spec["processes"]
        steps = TinydiffSteps(config, batch, processes)
        warm = TinydiffSteps(config, processes)
        warm.model, warm.optimizer, warm.net = steps.model, steps.optimizer, steps.net
    getattr(warm, kind)()  # kernels loaded; gradients and optimizer state allocated
    workers = framework == "tinydiff" and steps.net is not steps.model
    if workers:
        steps.net.reset_worker_peaks()
    before = reset_peak_rss()  # VmHWM := the RSS now
    getattr(steps, kind)()
    rise = (status_kib("VmHWM") - before) / 1024
    if workers:  # the worker processes' rises count too
        rise += sum(steps.net.worker_peak_rises_mib())
        steps.close()
    return rise


def child_memory(framework, kind, config, batch, processes=1):
    spec = {"framework": framework, "kind": kind, "config": config, "batch": batch, "processes": processes}
    return child_probe(__file__, "--probe-memory", spec, f"memory probe ({framework}, {kind})")


def traced_numpy_peak(step):
    """Peak MiB of memory traced by tracemalloc (NumPy's arrays) during step(), above what was
    allocated before it."""
    tracemalloc.start()
    try:
        step()  # allocations that persist (caches) now exist
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return (tracemalloc.get_traced_memory()[1] - base) / 2**20
    finally:
        tracemalloc.stop()


def run_case(name, config, args, torch):
    print(f"== {name}: batch {args.batch}, tinydiff training in {args.processes} process(es)")
    row = {"case": name, "config": json_config(config), "batch": args.batch, "processes": args.processes}
    single = TinydiffSteps(config, args.batch)  # tracemalloc sees this process only
    row["tinydiff"] = {"train_rss_mib": child_memory("tinydiff", "train", row["config"], args.batch, args.processes),
                       "sample_rss_mib": child_memory("tinydiff", "sample", row["config"], args.batch),
                       "train_numpy_traced_mib": traced_numpy_peak(single.train),
                       "sample_numpy_traced_mib": traced_numpy_peak(single.sample)}
    if torch is not None:
        row["torch"] = {"train_rss_mib": child_memory("torch", "train", row["config"], args.batch),
                        "sample_rss_mib": child_memory("torch", "sample", row["config"], args.batch)}
    return row


def print_table(rows, torch_note):
    print("\npeak memory (RSS rise during one step; tinydiff's NumPy allocations traced by tracemalloc in brackets)")
    head = f"{'case':<22}{'step':<7}{'tinydiff MiB':>20}{'torch MiB':>10}{'mem ratio':>10}"
    print(head)
    print("-" * len(head))
    for row in rows:
        for kind in ("train", "sample"):
            ours, theirs = row["tinydiff"], row.get("torch")
            mem = None
            if theirs and ours[f"{kind}_rss_mib"] and theirs[f"{kind}_rss_mib"]:
                mem = ours[f"{kind}_rss_mib"] / theirs[f"{kind}_rss_mib"]
            ours_mem = f"{fmt(ours[f'{kind}_rss_mib'], '.0f')} [{ours[f'{kind}_numpy_traced_mib']:.0f}]"
            print(f"{row['case']:<22}{kind:<7}{ours_mem:>20}"
                  f"{fmt(theirs and theirs[f'{kind}_rss_mib'], '.0f'):>10}{fmt(mem, '.2f'):>10}")
    print("mem ratio = tinydiff RSS rise (all its processes) / torch's; in brackets, NumPy allocations of "
          "the one-process step traced by tracemalloc")
    if torch_note:
        print(f"torch / diffusers: {torch_note}")


def main():
    parser = parser_for(__doc__, "train_memory.json")
    parser.add_argument("--probe-memory", help=argparse.SUPPRESS)  # internal: a memory probe's child process
    args = parser.parse_args()
    if args.probe_memory:
        print(probe_memory(json.loads(args.probe_memory)))
        return
    check_args(parser, args)
    cases = load_cases(args)
    torch, diffusers = import_torch()  # before Numba's threading layer starts (see train_cases.environment)
    args.processes = processes_for(args)
    env = environment(torch, diffusers)
    rows = [run_case(name, config, args, torch) for name, config in cases]
    print_table(rows, None if torch is not None else diffusers)
    write_results(args.out, {**env, "memory_method": "RSS rise (VmHWM after clear_refs) during one step in a "
                             "fresh process after a batch-1 warm-up step; tracemalloc for NumPy", "cases": rows})


if __name__ == "__main__":
    main()
