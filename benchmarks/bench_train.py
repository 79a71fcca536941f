"""Benchmark a UNet2DModel's training step and sampling step: tinydiff vs PyTorch + diffusers.

For each case (a UNet config at one resolution, batch 64 by default) it measures tinydiff as
`tinydiff train` runs it -- in one process per core (--processes), each running the model on a
slice of the batch (tinydiff.parallel.DataParallel) -- and in one process, its kernels split
over the cores:

- train step: forward, MSE loss against a noise target, backward, AdamW step (lr 1e-4,
  weight decay 0.01 in both frameworks); median wall time over --repeats steps;
- sampling step: one eval-mode forward pass (torch under inference_mode), median wall time;
  tinydiff in one process, as `tinydiff sample` runs;
- peak memory of one step of each kind, as the rise of the resident set size: each framework
  runs in a fresh child process that builds the model and a batch, runs one whole step at batch
  1 (tinydiff: an image per process, so every process has run; kernels are loaded and
  parameters, gradients and optimizer state exist), resets the kernel's high-water mark
  (writing 5 to /proc/self/clear_refs, Linux), runs one step at the benchmark batch and reports
  VmHWM minus the RSS before that step, summed over tinydiff's processes. The same method for
  both frameworks; it counts activations and temporaries, not weights. tinydiff's NumPy allocations
  are also traced with tracemalloc (peak minus the allocations alive before the step).

- compute rate: FLOPs per step over its time, in GFLOP/s, for both frameworks, against the
  float32 2048^2 matrix-multiply speed of NumPy's BLAS (the best of several products, at the
  start and at the end of the run: the ceiling any BLAS-based framework works under). FLOPs
  are counted by tinydiff.metrics.cost on the forward pass (2 per multiply-add of every
  convolution, linear layer and attention product); a training step is counted as 3 forwards
  (the input and weight gradients each cost about one);
- where tinydiff's training step goes: wall time inside each kind of kernel, summed over a few
  steps (the kernels are wrapped with timers for this part only): the convolutions (im2col and
  BLAS products), group norm, SiLU, attention, the AdamW update, and the rest (linear layers,
  element-wise arithmetic, Python); and, as part of the convolutions, the time spent in
  im2col/col2im summed over the threads that run it (with the batch split over 2 threads,
  up to twice its share of the wall time).

When torch and diffusers are importable it also builds diffusers' UNet2DModel from the same
config, loads tinydiff's weights into it by name, and checks a float64 forward and backward on a
small batch: the output, the input gradient and the gradient of every parameter (the whole
hand-written backward at once), reporting the largest relative error
max|tinydiff - torch| / max|torch| per tensor (for gradients that are zero in exact arithmetic,
such as attention's key bias, the denominator is 1e-6 of the network's largest gradient). Timing alternates the two frameworks step by step
in one process, torch with torch.set_num_threads(numba.get_num_threads()).

Cases: by default the reference architecture of the project's issue — block_out_channels
(32, 64, 128), layers_per_block 1, DownBlock2D, DownBlock2D, AttnDownBlock2D / AttnUpBlock2D,
UpBlock2D, UpBlock2D (attention at the lowest resolution, plus the mid block's), 3 channels,
attention_head_dim 8, norm_num_groups 32 (diffusers' default), at 32x32 and at 16x16; then the
default glyph UNet that tinydiff ships (tinydiff.pretrained.train_glyphs.GLYPH_UNET).
--config FILE (a JSON file of UNet2DModel arguments, e.g. a model's config.json) or --model DIR
(a model folder: DIR/config.json or DIR/unet/config.json) benchmarks that config instead, at its
sample_size. Only the config is read: weights do not change the timings.

    python benchmarks/bench_train.py                    # reference UNet at 32x32 and 16x16, glyph UNet
    python benchmarks/bench_train.py --quick            # fewer repeats, 16x16 only
    python benchmarks/bench_train.py --model DIR        # another model's architecture
"""

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/__init__.py)
import numba
import numpy as np

from tinydiff import kernels
from tinydiff.kernels import conv as conv_kernels
from tinydiff.kernels.conv import im2col
from tinydiff.kernels.conv import winograd_transforms as winograd
from tinydiff.metrics.cost import count_macs
from tinydiff.models import UNet2DModel
from tinydiff.nn import mse_loss
from tinydiff.optim import AdamW
from tinydiff.parallel import DataParallel, default_processes, reset_peak_rss, status_kib

REFERENCE = dict(
    in_channels=3, out_channels=3, block_out_channels=(32, 64, 128), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    attention_head_dim=8, norm_num_groups=32,
)
LR, WEIGHT_DECAY = 1e-4, 0.01
# diffusers computes the sinusoidal timestep features in float32 even in a float64 model, so
# the two agree to float32 round-off there (relative errors ~1e-6), not to float64's.
AGREEMENT = 1e-4


def import_torch():
    """(torch, diffusers) or (None, reason): the comparison is optional."""
    try:
        import torch
        import diffusers
    except ImportError as err:
        return None, f"not installed ({err.name})"
    return torch, diffusers


# ----------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------

def unet_arguments(config, source):
    """Keep the keys UNet2DModel takes; say which were dropped (diffusers-only keys such as
    act_fn, or metadata such as _class_name)."""
    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self", "rng"}
    kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in accepted}
    dropped = sorted(k for k in config if k not in accepted and not k.startswith("_"))
    if dropped:
        print(f"{source}: ignoring keys UNet2DModel does not take: {dropped}")
    return kept


def load_config(args):
    """[(case name, UNet2DModel arguments)] from the command line."""
    if args.model or args.config:
        if args.model:
            folder = Path(args.model)
            path = next((p for p in (folder / "config.json", folder / "unet" / "config.json") if p.is_file()), None)
            if path is None:
                raise SystemExit(f"--model {folder}: no config.json in it or in its unet/ folder")
        else:
            path = Path(args.config)
            if not path.is_file():
                raise SystemExit(f"--config {path}: no such file")
        config = unet_arguments(json.loads(path.read_text()), str(path))
        size = config.get("sample_size", 32)
        label = folder.name if args.model else path.stem
        return [(f"{label} {size}x{size}", config)]
    sizes = (16,) if args.quick else (32, 16)
    cases = [(f"reference {s}x{s}", dict(REFERENCE, sample_size=s)) for s in sizes]
    # the default glyph UNet, the one tinydiff ships (1 channel, 16x16, 10 classes)
    from tinydiff.pretrained.train_glyphs import GLYPH_UNET
    return cases + [(f"glyph UNet {GLYPH_UNET['sample_size']}x{GLYPH_UNET['sample_size']}", dict(GLYPH_UNET))]


def batch_for(config, batch, seed=0):
    """(x, timesteps, class labels or None, target) float32, like one training batch."""
    rng = np.random.default_rng(seed)
    c, s = config["in_channels"], config.get("sample_size", 32)
    x = rng.standard_normal((batch, c, s, s), dtype=np.float32)
    t = rng.integers(0, 1000, size=batch)
    labels = rng.integers(0, config["num_class_embeds"], size=batch) if config.get("num_class_embeds") else None
    target = rng.standard_normal((batch, config["out_channels"], s, s), dtype=np.float32)
    return x, t, labels, target


# ----------------------------------------------------------------------------------------------
# one step of each framework, as closures
# ----------------------------------------------------------------------------------------------

class TinydiffSteps:
    """tinydiff's steps, in one process (processes=1) or, as `tinydiff train` runs them, in
    `processes` processes that each take a slice of the batch (tinydiff.parallel)."""

    def __init__(self, config, batch, processes=1):
        self.model = UNet2DModel(rng=np.random.default_rng(0), **config)
        self.optimizer = AdamW(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        self.x, self.t, self.labels, self.target = batch_for(config, batch)
        self.net = self.model if processes == 1 else DataParallel(self.model, processes)

    def forward(self):
        if self.labels is None:
            return self.net(self.x, self.t)
        return self.net(self.x, self.t, self.labels)

    def train(self):
        self.net.train()
        loss, dpred = mse_loss(self.forward(), self.target)
        self.model.zero_grad()
        self.net.backward(dpred)
        self.optimizer.step()
        return loss

    def sample(self):
        self.net.eval()
        return self.forward()

    def close(self):
        if self.net is not self.model:
            self.net.close()


class TorchSteps:
    def __init__(self, torch, diffusers, config, batch, state_dict):
        self.torch = torch
        self.model = diffusers.UNet2DModel(**config)
        missing, unexpected = self.model.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()},
                                                         strict=False)
        if missing or unexpected:
            raise RuntimeError(f"parameter names differ from diffusers': missing {missing}, unexpected {unexpected}")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        x, t, labels, target = batch_for(config, batch)
        self.x, self.t, self.target = torch.tensor(x), torch.tensor(t), torch.tensor(target)
        self.labels = None if labels is None else torch.tensor(labels)

    def forward(self):
        return self.model(self.x, self.t, class_labels=self.labels).sample

    def train(self):
        self.model.train()
        loss = self.torch.nn.functional.mse_loss(self.forward(), self.target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach().item()

    def sample(self):
        self.model.eval()
        with self.torch.inference_mode():
            return self.forward()


# ----------------------------------------------------------------------------------------------
# correctness: float64 outputs and every gradient against diffusers
# ----------------------------------------------------------------------------------------------

def relative_error(ours, theirs, floor=1e-300):
    """max|ours - theirs| / max|theirs|, the denominator at least `floor`."""
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), floor))


def check_against_diffusers(torch, diffusers, config, batch=2):
    """Max relative errors of output, input gradient and parameter gradients, float64."""
    ours = UNet2DModel(rng=np.random.default_rng(1), **config).to(np.float64)
    theirs = diffusers.UNet2DModel(**config).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    rng = np.random.default_rng(2)
    x, t, labels, _ = batch_for(config, batch, seed=3)
    x = x.astype(np.float64)
    ours.train()
    theirs.train()
    y = ours(x, t) if labels is None else ours(x, t, labels)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx, torch.tensor(t), class_labels=None if labels is None else torch.tensor(labels)).sample
    g = rng.standard_normal(y.shape)
    ours.zero_grad()
    dx = ours.backward(g)
    ty.backward(torch.tensor(g))
    their_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    # Some gradients are zero in exact arithmetic (attention's key bias: adding the same q.b to
    # every score of a query leaves the softmax unchanged), so both sides hold round-off; such
    # tensors are measured against 1e-6 of the largest gradient of the network instead.
    floor = 1e-6 * max(np.max(np.abs(g)) for g in their_grads.values())
    grads = {name: relative_error(p.grad, their_grads[name], floor) for name, p in ours.named_parameters()}
    worst = max(grads, key=grads.get)
    return {"output": relative_error(y, ty.detach().numpy()), "input_grad": relative_error(dx, tx.grad.numpy()),
            "param_grads_max": grads[worst], "param_grads_worst": worst, "num_params_checked": len(grads)}


# ----------------------------------------------------------------------------------------------
# memory: a fresh child process per framework and step kind
# ----------------------------------------------------------------------------------------------

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
    spec = json.dumps({"framework": framework, "kind": kind, "config": config, "batch": batch,
                       "processes": processes})
    result = subprocess.run([sys.executable, __file__, "--probe-memory", spec], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"memory probe ({framework}, {kind}) failed: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return float(result.stdout.strip().splitlines()[-1])


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


# ----------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------

def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(fns, repeats, warmup):
    """Median seconds of each fn, the fns called in turn so load changes hit all alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            times[i].append(timed(fn))
    return [float(np.median(t)) for t in times]


def sgemm_gflops(repeats=8):
    """NumPy BLAS's float32 matrix-multiply speed at 2048^2: the best of `repeats`, a ceiling."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    a @ b
    return 2 * 2048**3 / min(timed(lambda: a @ b) for _ in range(repeats)) / 1e9


# ----------------------------------------------------------------------------------------------
# where the training step's time goes
# ----------------------------------------------------------------------------------------------

# inside the convolutions, and timed on every thread that runs them
CONV_DATA_MOVES = "im2col/col2im and Winograd transforms"
# (stage, owner, attribute): the functions the layers call, looked up at call time so that
# replacing them on their module reaches every caller
TIMED_KERNELS = [
    ("convolutions", kernels, "conv2d_forward"), ("convolutions", kernels, "conv2d_backward_input"),
    ("convolutions", kernels, "conv2d_backward_weight"), ("convolutions", kernels, "conv2d_backward"),
    (CONV_DATA_MOVES, im2col, "im2col"), (CONV_DATA_MOVES, im2col, "col2im"),
    (CONV_DATA_MOVES, winograd, "input_forward"), (CONV_DATA_MOVES, winograd, "input_adjoint"),
    (CONV_DATA_MOVES, winograd, "output_forward"), (CONV_DATA_MOVES, winograd, "output_adjoint"),
    ("group norm", kernels, "group_norm_forward"), ("group norm", kernels, "group_norm_backward"),
    ("SiLU", kernels, "silu_forward"), ("SiLU", kernels, "silu_backward"),
    ("group norm + SiLU (fused)", kernels, "group_norm_silu_forward"),
    ("group norm + SiLU (fused)", kernels, "group_norm_silu_backward"),
    ("attention", kernels, "attention_forward"), ("attention", kernels, "attention_backward"),
]


@contextmanager
def kernel_timers(seconds):
    """Within the block, calls of the TIMED_KERNELS add their wall time to seconds[stage]."""
    originals = [(owner, name, getattr(owner, name)) for _, owner, name in TIMED_KERNELS]

    def timer(stage, fn):
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
        return wrapped

    for (stage, owner, name), (_, _, fn) in zip(TIMED_KERNELS, originals):
        setattr(owner, name, timer(stage, fn))
    try:
        yield seconds
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def train_breakdown(ours, steps):
    """Seconds per training step in each stage (see TIMED_KERNELS), the AdamW update and the
    rest; CONV_DATA_MOVES is part of "convolutions", summed over threads."""
    seconds = {}
    step = ours.optimizer.step

    def timed_update():
        start = time.perf_counter()
        step()
        seconds["AdamW update"] = seconds.get("AdamW update", 0.0) + time.perf_counter() - start

    ours.optimizer.step = timed_update
    try:
        with kernel_timers(seconds):
            total = sum(timed(ours.train) for _ in range(steps))
    finally:
        del ours.optimizer.step  # the instance attribute hid the method
    seconds["the rest"] = total - sum(v for stage, v in seconds.items() if stage != CONV_DATA_MOVES)
    return {stage: s / steps for stage, s in seconds.items()} | {"total": total / steps}


def print_breakdown(row):
    stages = row["tinydiff_train_breakdown"]
    total = stages["total"]
    print(f"\n{row['case']}: where tinydiff's training step goes, in one process (mean of "
          f"{row['breakdown_steps']} steps, {1e3 * total:.0f} ms)")
    for stage in sorted((s for s in stages if s not in ("total", CONV_DATA_MOVES)), key=stages.get, reverse=True):
        print(f"  {stage:<27}{1e3 * stages[stage]:>8.0f} ms {100 * stages[stage] / total:>6.1f}%")
        if stage == "convolutions" and CONV_DATA_MOVES in stages:
            print(f"    of which {CONV_DATA_MOVES} {1e3 * stages[CONV_DATA_MOVES]:.0f} ms of thread time "
                  f"({conv_kernels.describe_path((3, 3), 1, 1).split(':')[0]})")


def run_case(name, config, args, torch, diffusers):
    print(f"\n== {name}: batch {args.batch}, tinydiff in {args.processes} process(es) ==")
    ours = TinydiffSteps(config, args.batch, args.processes)  # as `tinydiff train` runs
    single = ours if args.processes == 1 else TinydiffSteps(config, args.batch)  # one process
    num_params = sum(p.data.size for p in ours.model.parameters())
    row = {"case": name, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()},
           "batch": args.batch, "num_params": int(num_params), "processes": args.processes}
    macs = count_macs(single.forward) / args.batch
    row["forward_gflop_per_image"] = 2 * macs / 1e9
    print(f"{num_params / 1e6:.2f} M parameters, {2 * macs / 1e6:.1f} MFLOPs per image forward")
    # sampling (`tinydiff sample`) runs in one process: its step is the one-process model's
    fns_train, fns_sample = [ours.train], [single.sample]
    if torch is not None:
        check = check_against_diffusers(torch, diffusers, config)
        row["diffusers_check"] = check
        worst = max(check["output"], check["input_grad"], check["param_grads_max"])
        check["agrees"] = worst < AGREEMENT
        print(f"float64 check against diffusers (batch 2): output {check['output']:.1e}, input grad "
              f"{check['input_grad']:.1e}, {check['num_params_checked']} parameter grads max "
              f"{check['param_grads_max']:.1e} ({check['param_grads_worst']}): "
              + ("agree" if check["agrees"] else f"MISMATCH (above {AGREEMENT:.0e})"))
        theirs = TorchSteps(torch, diffusers, config, args.batch, ours.model.state_dict())
        fns_train.append(theirs.train)
        fns_sample.append(theirs.sample)
    # each framework's step always right after the other's (torch measured slower after
    # tinydiff's steps than after its own, by up to 15% here): the one-process steps in a
    # second pair of their own
    train = interleaved_medians(fns_train, args.repeats, warmup=1)
    sample = interleaved_medians(fns_sample, args.repeats, warmup=1)
    ours.close()
    if single is not ours:
        one_train = interleaved_medians([single.train] + fns_train[1:], args.repeats, warmup=1)
    # tracemalloc sees this process only, so it is taken of the one-process steps
    row["tinydiff"] = {"train_s": train[0], "sample_s": sample[0],
                       "train_rss_mib": child_memory("tinydiff", "train", row["config"], args.batch, args.processes),
                       "sample_rss_mib": child_memory("tinydiff", "sample", row["config"], args.batch),
                       "train_numpy_traced_mib": traced_numpy_peak(single.train),
                       "sample_numpy_traced_mib": traced_numpy_peak(single.sample)}
    if single is not ours:
        row["tinydiff_one_process"] = {"train_s": one_train[0]}
        if torch is not None:
            row["tinydiff_one_process"]["torch_train_s"] = one_train[1]
    if torch is not None:
        row["torch"] = {"train_s": train[1], "sample_s": sample[1],
                        "train_rss_mib": child_memory("torch", "train", row["config"], args.batch),
                        "sample_rss_mib": child_memory("torch", "sample", row["config"], args.batch)}
    row["breakdown_steps"] = max(2, args.repeats // 2)
    row["tinydiff_train_breakdown"] = train_breakdown(single, row["breakdown_steps"])
    return row


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


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


def print_table(rows, torch_note):
    print(f"\ntime per step (median) and peak memory (RSS rise during one step; tinydiff's NumPy "
          f"allocations traced by tracemalloc in brackets)")
    head = (f"{'case':<22}{'step':<7}{'tinydiff s':>11}{'torch s':>9}{'speed ratio':>12}"
            f"{'1 process s':>12}{'ratio':>7}{'tinydiff MiB':>20}{'torch MiB':>10}{'mem ratio':>10}")
    print(head)
    print("-" * len(head))
    for row in rows:
        for kind in ("train", "sample"):
            ours, theirs = row["tinydiff"], row.get("torch")
            speed = mem = None
            if theirs:
                speed = theirs[f"{kind}_s"] / ours[f"{kind}_s"]
                if ours[f"{kind}_rss_mib"] and theirs[f"{kind}_rss_mib"]:
                    mem = ours[f"{kind}_rss_mib"] / theirs[f"{kind}_rss_mib"]
            ours_mem = f"{fmt(ours[f'{kind}_rss_mib'], '.0f')} [{ours[f'{kind}_numpy_traced_mib']:.0f}]"
            one = row.get("tinydiff_one_process", {}).get(f"{kind}_s")
            one_ratio = row["tinydiff_one_process"][f"torch_{kind}_s"] / one if theirs and one else None
            print(f"{row['case']:<22}{kind:<7}{ours[f'{kind}_s']:>11.3f}"
                  f"{fmt(theirs and theirs[f'{kind}_s'], '.3f'):>9}{fmt(speed, '.2f'):>12}"
                  f"{fmt(one, '.3f'):>12}{fmt(one_ratio, '.2f'):>7}"
                  f"{ours_mem:>20}{fmt(theirs and theirs[f'{kind}_rss_mib'], '.0f'):>10}{fmt(mem, '.2f'):>10}")
    print("tinydiff s: as tinydiff runs it -- training in the processes the header names (each a slice of "
          "the batch, tinydiff.parallel), sampling in one; 1 process s: training in one process, its kernels "
          "split over the cores")
    print("speed ratio = torch time / tinydiff time (>= 1: tinydiff is at least as fast); ratio: the same "
          "for 1 process (timed in a pair of its own with torch); mem ratio = tinydiff RSS rise (all its processes) / torch's; in brackets, "
          "NumPy allocations of the one-process step traced by tracemalloc")
    if torch_note:
        print(f"torch / diffusers: {torch_note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--quick", action="store_true", help="2 timed repeats; reference at 16x16 and glyph UNet")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per case (default 5; 2 with --quick)")
    parser.add_argument("--config", help="JSON file of UNet2DModel arguments to benchmark instead of the reference")
    parser.add_argument("--model", help="model folder whose config.json (or unet/config.json) to benchmark")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "train.json"),
                        help="where to write the JSON results (default benchmarks/results/train.json)")
    parser.add_argument("--processes", type=int, default=None,
                        help="tinydiff's processes (default: as `tinydiff train` chooses, one per core, at "
                             "most batch/2); the one-process step is timed beside it")
    parser.add_argument("--probe-memory", help=argparse.SUPPRESS)  # internal: the child process of a memory probe
    args = parser.parse_args()
    if args.probe_memory:
        print(probe_memory(json.loads(args.probe_memory)))
        return
    if args.batch < 1:
        parser.error(f"--batch: expected an integer >= 1, got {args.batch}")
    if args.config and args.model:
        parser.error("give --config or --model, not both")
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.processes is not None and args.processes < 1:
        parser.error(f"--processes: expected an integer >= 1, got {args.processes}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected an integer >= 1, got {args.repeats}")
    cases = load_config(args)

    # torch before anything starts Numba's threading layer (default_processes asks Numba for its
    # thread count): with Numba's OpenMP layer started first, torch's steps took 1.75x as long
    torch, diffusers = import_torch()
    args.processes = args.processes or default_processes(args.batch)
    torch_note = None
    if torch is None:
        torch_note, diffusers = diffusers, None
        print(f"torch / diffusers: {torch_note}; timing tinydiff alone")
    else:
        torch.set_num_threads(numba.get_num_threads())
        print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), diffusers {diffusers.__version__}")
    print(f"tinydiff {tinydiff.__version__}, numpy {np.__version__}, numba {numba.__version__} "
          f"({numba.get_num_threads()} threads), {platform.processor() or platform.machine()}, "
          f"OPENBLAS_THREAD_TIMEOUT {tinydiff.blas_thread_timeout()}")

    sgemm = sgemm_gflops()
    print(f"NumPy BLAS float32 sgemm 2048^2: {sgemm:.1f} GFLOP/s")

    rows = [run_case(name, config, args, torch, diffusers) for name, config in cases]
    # measured again at the end, the higher figure kept: one measurement can land on a slow moment
    sgemm = max(sgemm, sgemm_gflops())
    print_table(rows, torch_note)
    print_rates(rows, sgemm)
    for row in rows:
        print_breakdown(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch_note or torch.__version__, "numba_threads": numba.get_num_threads(),
                               "sgemm_2048_gflops": sgemm,
                               "memory_method": "RSS rise (VmHWM after clear_refs) during one step in a fresh "
                                                "process after a batch-1 warm-up step; tracemalloc for NumPy",
                               "cases": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
