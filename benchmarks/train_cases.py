"""What the three training benchmarks share: the UNet cases, a batch, one step of each framework.

bench_train_time.py (time per step against PyTorch + diffusers, and the compute rate),
bench_train_memory.py (peak memory of a step) and bench_train_profile.py (where tinydiff's
training step goes) run the same cases with the same flags:

- by default the reference architecture: block_out_channels (32, 64, 128), layers_per_block 1,
  DownBlock2D, DownBlock2D, AttnDownBlock2D / AttnUpBlock2D, UpBlock2D, UpBlock2D (attention
  at the lowest resolution, plus the mid block's), 3 channels, attention_head_dim 8,
  norm_num_groups 32 (diffusers' default), at 32x32 and at 16x16; then the glyph UNet that
  tinydiff ships (tinydiff.pretrained.train_glyphs.GLYPH_UNET);
- --config FILE (a JSON file of UNet2DModel arguments, e.g. a model's config.json) or --model
  DIR (a model folder: DIR/config.json or DIR/unet/config.json) benchmarks that config instead,
  at its sample_size. Only the config is read: weights do not change the timings.

A train step is forward, MSE loss against a noise target, backward and an AdamW step (lr 1e-4,
weight decay 0.01 in both frameworks); a sampling step is one eval-mode forward pass (torch
under inference_mode). tinydiff trains as `tinydiff train` does, in one process per core
(--processes), each running the model on a slice of the batch (tinydiff.runtime.parallel), and
samples in one process, as `tinydiff sample` does. The float64 check of outputs and gradients
against diffusers lives in the tests (tests/models/test_unet_against_diffusers.py).
"""

import argparse
import inspect
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- the process settings first (tinydiff/runtime/process_settings.py)
import numba
import numpy as np

from tinydiff.models import UNet2DModel
from tinydiff.nn import mse_loss
from tinydiff.optim import AdamW
from tinydiff.runtime import process_settings
from tinydiff.runtime.parallel import DataParallel, default_processes

REFERENCE = dict(
    in_channels=3, out_channels=3, block_out_channels=(32, 64, 128), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    attention_head_dim=8, norm_num_groups=32,
)
LR, WEIGHT_DECAY = 1e-4, 0.01
RESULTS = Path(__file__).resolve().parent / "results"


def import_torch():
    """(torch, diffusers) or (None, reason): the comparison is optional."""
    try:
        import torch
        import diffusers
    except ImportError as err:
        return None, f"not installed ({err.name})"
    return torch, diffusers


# ---- the command line -------------------------------------------------------------------------

def parser_for(doc, default_out):
    """The flags every training benchmark takes; `doc` is the script's docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0], epilog=doc.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 timed repeats; reference at 16x16 and glyph UNet")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per case (default 5; 2 with --quick)")
    parser.add_argument("--config", help="JSON file of UNet2DModel arguments to benchmark instead of the reference")
    parser.add_argument("--model", help="model folder whose config.json (or unet/config.json) to benchmark")
    parser.add_argument("--processes", type=int, default=None,
                        help="tinydiff's training processes (default: as `tinydiff train` chooses, one per core, "
                             "at most batch/2)")
    parser.add_argument("--out", type=Path, default=RESULTS / default_out,
                        help=f"where to write the JSON results (default benchmarks/results/{default_out})")
    return parser


def check_args(parser, args):
    """Refuse bad flags in one line each; fill in the defaults that depend on others."""
    for name in ("batch", "repeats", "processes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name}: expected an integer >= 1, got {value}")
    if args.config and args.model:
        parser.error("give --config or --model, not both")
    args.repeats = args.repeats or (2 if args.quick else 5)


def environment(torch, diffusers):
    """Print and return (as a dict) the versions and threads the numbers were measured with.
    Call it after import_torch() (see DESIGN.md: torch before Numba's threading layer starts)."""
    if torch is None:
        print(f"torch / diffusers: {diffusers}; timing tinydiff alone")
    else:
        torch.set_num_threads(numba.get_num_threads())
        print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), diffusers {diffusers.__version__}")
    print(f"tinydiff {tinydiff.__version__}, numpy {np.__version__}, numba {numba.__version__} "
          f"({numba.get_num_threads()} threads), {platform.processor() or platform.machine()}, "
          f"OPENBLAS_THREAD_TIMEOUT {process_settings.blas_thread_timeout()}")
    return {"torch": diffusers if torch is None else torch.__version__, "numba_threads": numba.get_num_threads()}


def child_probe(script, flag, spec, what):
    """Run `script flag JSON(spec)` in a fresh Python process and read the float its last stdout
    line prints (a memory probe); None, with a line saying why, if it failed."""
    done = subprocess.run([sys.executable, script, flag, json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return float(done.stdout.strip().splitlines()[-1])


def write_results(path, results):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


# ---- configs ------------------------------------------------------------------------------------

def unet_arguments(config, source):
    """Keep the keys UNet2DModel takes; say which were dropped (diffusers-only keys such as
    act_fn, or metadata such as _class_name)."""
    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self", "rng"}
    kept = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in accepted}
    dropped = sorted(k for k in config if k not in accepted and not k.startswith("_"))
    if dropped:
        print(f"{source}: ignoring keys UNet2DModel does not take: {dropped}")
    return kept


def load_cases(args):
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
    from tinydiff.pretrained.train_glyphs import GLYPH_UNET
    return cases + [(f"glyph UNet {GLYPH_UNET['sample_size']}x{GLYPH_UNET['sample_size']}", dict(GLYPH_UNET))]


def json_config(config):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}


def batch_for(config, batch, seed=0):
    """(x, timesteps, class labels or None, target) float32, like one training batch."""
    rng = np.random.default_rng(seed)
    c, s = config["in_channels"], config.get("sample_size", 32)
    x = rng.standard_normal((batch, c, s, s), dtype=np.float32)
    t = rng.integers(0, 1000, size=batch)
    labels = rng.integers(0, config["num_class_embeds"], size=batch) if config.get("num_class_embeds") else None
    target = rng.standard_normal((batch, config["out_channels"], s, s), dtype=np.float32)
    return x, t, labels, target


def processes_for(args):
    """tinydiff's training processes: --processes, or as `tinydiff train` chooses. Asks Numba for
    its thread count, so call it after import_torch()."""
    return args.processes or default_processes(args.batch)


# ---- one step of each framework -----------------------------------------------------------------

class TinydiffSteps:
    """tinydiff's steps, in one process (processes=1) or, as `tinydiff train` runs them, in
    `processes` processes that each take a slice of the batch (tinydiff.runtime.parallel)."""

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
    """The same steps in PyTorch, on diffusers' UNet2DModel holding tinydiff's weights."""

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


# ---- timing -------------------------------------------------------------------------------------

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


def fmt(value, spec):
    return "-" if value is None else format(value, spec)

