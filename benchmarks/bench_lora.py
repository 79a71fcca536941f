"""What LoRA saves: a frozen-base LoRA training step against a full training step of the shipped
text-to-image UNet (tinydiff.pretrained.text2image_dir(): a 64-channel UNet2DConditionModel on
4x8x8 latents), and the adapter's size.

For the full model and for LoRA at each rank (Hu et al. 2021; adapters on to_q, to_k, to_v,
to_out.0, as diffusers' DreamBooth-LoRA script puts them):
- trainable parameters: sum over adapted matrices of r * (d_in + d_out) (cross-attention's
  to_k / to_v take the text width as d_in), checked against lora_parameters' sizes;
- adapter file size (pytorch_lora_weights.safetensors, float32) against the full UNet's
  weights saved the same way;
- time of one training step (forward, MSE against a noise target, backward, AdamW over the
  trainable parameters), median of interleaved repeats in this process, one process (no
  DataParallel: its workers rebuild the model without adapters);
- memory, two ways: the NumPy memory at the peak of two steps, traced by tracemalloc from
  before the model is built (weights, gradients, optimizer moments, cached activations and
  temporaries; exact for NumPy arrays, blind to Numba's scratch), and the peak RSS rise of a
  fresh child process over the same span (after a warm-up on a tiny model loads the kernels).

    python benchmarks/bench_lora.py            # batch 16, ranks 1 2 4 8, 5 repeats
    python benchmarks/bench_lora.py --quick    # batch 2, rank 4, 1 repeat, no child processes
"""

import argparse
import json
import tempfile
import tracemalloc
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy (tinydiff/runtime/process_settings.py)
import numpy as np
from train_cases import (LR, RESULTS, WEIGHT_DECAY, child_probe, environment, fmt, interleaved_medians,
                         write_results)

from tinydiff.models.unet_condition import UNet2DConditionModel
from tinydiff.nn import mse_loss
from tinydiff.nn.lora_model import DEFAULT_TARGETS, add_lora, count_lora_parameters, lora_layers, lora_parameters
from tinydiff.optim import AdamW
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.lora_files import save_lora_weights
from tinydiff.pretrained import text2image_dir
from tinydiff.runtime.parallel import reset_peak_rss, status_kib

TOKENS = 16  # encoder_hidden_states length (the shipped tokenizer pads to fewer; the cost is in the UNet)


def unet_config():
    config = ckpt.read_json(Path(text2image_dir()) / "unet" / ckpt.CONFIG_NAME)
    return config


class Steps:
    """One model (rank None: full fine-tuning; else LoRA of that rank on a frozen base) and a
    fixed batch; train() is one step."""

    def __init__(self, rank, batch, seed=0, config=None):
        self.model = ckpt.load_model(Path(text2image_dir()) / "unet") if config is None else \
            UNet2DConditionModel(rng=np.random.default_rng(seed), **config)
        if rank is not None:
            add_lora(self.model, rank=rank, target_modules=DEFAULT_TARGETS, rng=np.random.default_rng(seed))
        params = self.model.parameters() if rank is None else lora_parameters(self.model)
        self.optimizer = AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
        cfg = self.model.config
        rng = np.random.default_rng(seed + 1)
        s, c, d = cfg["sample_size"], cfg["in_channels"], cfg["cross_attention_dim"]
        self.x = rng.standard_normal((batch, c, s, s)).astype(np.float32)
        self.t = rng.integers(0, 1000, batch)
        self.context = rng.standard_normal((batch, TOKENS, d)).astype(np.float32)
        self.target = rng.standard_normal((batch, c, s, s)).astype(np.float32)

    def train(self):
        self.model.train()
        loss, dpred = mse_loss(self.model(self.x, self.t, self.context), self.target)
        self.optimizer.zero_grad()
        self.model.backward(dpred)
        self.optimizer.step()
        return loss


def lora_count_by_formula(model):
    """sum of r * (d_in + d_out) over adapted matrices, from the base layers' weight shapes."""
    total = 0
    for _, layer in lora_layers(model):
        w = layer.weight.shape
        d_in = int(np.prod(w[1:]))  # a conv's d_in is C * kH * kW
        total += sum(r * (d_in + w[0]) for r in layer.ranks.values())
    return total


def traced_peak_mib(rank, batch, steps=2):
    """Peak NumPy memory (MiB) from before the model is built through `steps` training steps."""
    tracemalloc.start()
    try:
        run = Steps(rank, batch)
        for _ in range(steps):
            run.train()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def probe_rss(spec):
    """In a child process: peak RSS rise (MiB) from before the model is built through 2 steps."""
    tiny = dict(unet_config())
    tiny.update(block_out_channels=[8] * len(tiny["block_out_channels"]), norm_num_groups=4, attention_head_dim=2)
    tiny = {k: (tuple(v) if isinstance(v, list) else v) for k, v in tiny.items() if not k.startswith("_")}
    Steps(spec["rank"], 1, config=tiny).train()  # the same kernels, loaded
    before = reset_peak_rss()
    run = Steps(spec["rank"], spec["batch"])
    run.train()
    run.train()
    return (status_kib("VmHWM") - before) / 1024


def child_rss(rank, batch):
    return child_probe(__file__, "--probe-rss", {"rank": rank, "batch": batch}, f"RSS probe (rank {rank})")


def sizes(ranks):
    """{rank: (trainable parameters, adapter file bytes)} and the full UNet's (parameters, bytes)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        full = Steps(None, 1).model
        path = Path(tmp) / "unet.safetensors"
        ckpt.save_arrays(path, full.state_dict(), np.float32)
        full_row = (full.num_parameters(), path.stat().st_size)
        for rank in ranks:
            model = Steps(rank, 1).model
            count = count_lora_parameters(model)
            if count != lora_count_by_formula(model):
                raise AssertionError(f"rank {rank}: lora_parameters hold {count} values, r (d_in + d_out) "
                                     f"summed gives {lora_count_by_formula(model)}")
            file = save_lora_weights(Path(tmp) / f"r{rank}", unet=model)
            out[rank] = (count, file.stat().st_size)
    return out, full_row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 2, rank 4, 1 repeat, no RSS child processes")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 16; 2 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per row (default 5; 1 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lora.json", help="JSON results")
    parser.add_argument("--probe-rss", help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args()
    if args.probe_rss:
        print(probe_rss(json.loads(args.probe_rss)))
        return
    batch = args.batch or (2 if args.quick else 16)
    repeats = args.repeats or (1 if args.quick else 5)
    if batch < 1 or repeats < 1:
        parser.error(f"--batch and --repeats must be >= 1, got {batch} and {repeats}")
    ranks = (4,) if args.quick else (1, 2, 4, 8)
    env = environment(None, "not used")
    print(f"shipped text-to-image UNet ({text2image_dir()}), batch {batch}, {TOKENS} text tokens, "
          f"{repeats} timed repeat(s), LoRA targets {list(DEFAULT_TARGETS)}")

    by_rank, (full_params, full_bytes) = sizes(ranks)
    kinds = [None] + list(ranks)
    runs = [Steps(kind, batch) for kind in kinds]
    seconds = interleaved_medians([run.train for run in runs], repeats, warmup=1)
    del runs
    rows = []
    for kind, sec in zip(kinds, seconds):
        params, size = (full_params, full_bytes) if kind is None else by_rank[kind]
        rows.append({"kind": "full" if kind is None else f"LoRA r={kind}", "rank": kind,
                     "trainable_parameters": params, "file_bytes": size, "step_seconds": sec,
                     "numpy_peak_mib": traced_peak_mib(kind, batch),
                     "rss_rise_mib": None if args.quick else child_rss(kind, batch)})

    full = rows[0]
    head = (f"{'':<11}{'trainable':>11}{'% of full':>10}{'file KiB':>10}{'step s':>9}{'x full':>8}"
            f"{'NumPy peak MiB':>16}{'RSS rise MiB':>14}")
    print("\n" + head + "\n" + "-" * len(head))
    for row in rows:
        print(f"{row['kind']:<11}{row['trainable_parameters']:>11,}"
              f"{100 * row['trainable_parameters'] / full['trainable_parameters']:>9.2f}%"
              f"{row['file_bytes'] / 1024:>10.1f}{row['step_seconds']:>9.3f}"
              f"{row['step_seconds'] / full['step_seconds']:>8.2f}{row['numpy_peak_mib']:>16.1f}"
              f"{fmt(row['rss_rise_mib'], '.1f'):>14}")
    print("trainable = r (d_in + d_out) summed over the adapted matrices (full: every parameter); file = "
          "pytorch_lora_weights.safetensors (full: the UNet's weights), float32; step = forward + MSE + "
          "backward + AdamW; NumPy peak = tracemalloc from before the model is built through 2 steps "
          "(weights included); RSS rise = a fresh process's peak over the same span")
    write_results(args.out, {**env, "batch": batch, "repeats": repeats, "tokens": TOKENS,
                             "targets": list(DEFAULT_TARGETS), "rows": rows})


if __name__ == "__main__":
    main()
