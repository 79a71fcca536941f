"""Where tinydiff's training step goes: a profile of a UNet2DModel's step, in one process.

For each case (train_cases.py) it runs a few training steps under Python's cProfile and adds
up, per stage, the time spent inside the kernel functions the layers call: the convolutions
(im2col or Winograd transforms and the BLAS products), group norm, SiLU, the fused group norm +
SiLU, attention; the AdamW update; and the rest (linear layers, element-wise arithmetic, the
Python between kernels). A stage's time is its functions' cumulative time when called from
outside the stage (conv2d_backward calling conv2d_backward_input counts once). Then the
functions with the most time of their own, for a look past the stages.

The profiler costs about a microsecond per Python call, so the profiled step is somewhat slower
than bench_train_time.py's one-process step; the overhead lands in "the rest". cProfile sees
the calling thread only: time the kernels' helper threads spend is inside the kernel call that
waits for them.

    python benchmarks/bench_train_profile.py           # reference UNet at 32x32 and 16x16, glyph UNet
    python benchmarks/bench_train_profile.py --quick   # 16x16 only, 2 steps
"""

import cProfile
import pstats

import tinydiff  # noqa: F401  -- before NumPy (tinydiff/runtime/process_settings.py)
from train_cases import (TinydiffSteps, check_args, environment, import_torch, json_config, load_cases, parser_for,
                         write_results)

from tinydiff import kernels
from tinydiff.kernels.conv import describe_path
from tinydiff.optim import AdamW

# stage -> the functions the layers call for it (public kernel functions, AdamW.step)
STAGES = {
    "convolutions": [kernels.conv2d_forward, kernels.conv2d_backward_input, kernels.conv2d_backward_weight,
                     kernels.conv2d_backward],
    "group norm": [kernels.group_norm_forward, kernels.group_norm_backward],
    "SiLU": [kernels.silu_forward, kernels.silu_backward],
    "group norm + SiLU (fused)": [kernels.group_norm_silu_forward, kernels.group_norm_silu_backward],
    "attention": [kernels.attention_forward, kernels.attention_backward],
    "AdamW update": [AdamW.step],
}


def profile_key(fn):
    """The (file, first line, name) by which pstats names function `fn`."""
    code = fn.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def stage_seconds(stats):
    """{stage: seconds} from pstats' table, each stage's functions counted when called from
    outside the stage."""
    keys = {stage: {profile_key(fn) for fn in fns} for stage, fns in STAGES.items()}
    seconds = {}
    for stage, own in keys.items():
        total = 0.0
        for key in own:
            if key not in stats:
                continue
            callers = stats[key][4]  # {caller: (primitive calls, calls, own time, cumulative time)}
            total += sum(timing[3] for caller, timing in callers.items() if caller not in own)
        if total:
            seconds[stage] = total
    return seconds


def breakdown(ours, steps):
    """Seconds per training step in each stage, the rest and the total; and the ten functions
    with the most time of their own."""
    ours.train()  # warm: kernels compiled, optimizer state allocated
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        ours.train()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    seconds = stage_seconds(stats.stats)
    seconds["the rest"] = total - sum(seconds.values())
    own = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:10]
    top = [(f"{name} ({file.rsplit('/', 1)[-1]}:{line})", tt / steps) for (file, line, name), (_, _, tt, _, _) in own]
    return {stage: s / steps for stage, s in seconds.items()} | {"total": total / steps}, top


def print_breakdown(row):
    stages = row["stages"]
    total = stages["total"]
    print(f"\n{row['case']}: where tinydiff's training step goes, in one process (mean of "
          f"{row['steps']} profiled steps, {1e3 * total:.0f} ms; 3x3 convolutions: "
          f"{describe_path((3, 3), 1, 1).split(':')[0]})")
    for stage in sorted((s for s in stages if s != "total"), key=stages.get, reverse=True):
        print(f"  {stage:<27}{1e3 * stages[stage]:>8.0f} ms {100 * stages[stage] / total:>6.1f}%")
    print("  most time of their own:")
    for name, seconds in row["own_time"]:
        print(f"    {1e3 * seconds:>7.1f} ms  {name}")


def main():
    parser = parser_for(__doc__, "train_profile.json")
    args = parser.parse_args()
    check_args(parser, args)
    cases = load_cases(args)
    env = environment(*import_torch())
    rows = []
    for name, config in cases:
        steps = max(2, args.repeats // 2)
        stages, top = breakdown(TinydiffSteps(config, args.batch), steps)
        rows.append({"case": name, "config": json_config(config), "batch": args.batch, "steps": steps,
                     "stages": stages, "own_time": top})
        print_breakdown(rows[-1])
    write_results(args.out, {**env, "cases": rows})


if __name__ == "__main__":
    main()
