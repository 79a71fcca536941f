"""The shipped text-to-image pipeline on captioned Shapes: does it draw what the prompt says, what
guidance buys, and what a step costs against diffusers.

Measures tinydiff.pretrained.text2image_dir() (TextToImagePipeline.from_pretrained; --model DIR
for another folder) with tinydiff.metrics.prompt_adherence, which reads every sample's shape,
colour, size and position back from its pixels:

1. adherence at the folder's recommended guidance scale, DDIM --steps steps, --num samples over
   random FULL captions of the train split (data.captions.random_full_caption: attribute
   combinations training covered, images it never saw): each attribute right, all four right,
   a valid single shape, both (adherent); with binomial standard errors sqrt(p (1 - p) / n);
2. the same on the held-out (colour, shape) pairs (split="heldout", combinations no caption in
   training named), and what fails there: per pair, what was drawn instead, and the colour and
   shape confusion (asked against read);
3. adherence and validity against the guidance scale s (diffusers' convention: s = 1 is no
   guidance), on the first --sweep-num of the same prompts and initial latents (a paired
   comparison); a table and benchmarks/results/text2image_guidance.png;
4. cost: one text-conditional training step (forward, MSE, backward, AdamW; batch 64 of the
   pipeline's 4x8x8 latents with (64, 16, 64) text states) and one guided sampling step (an
   eval forward of batch 2 x 64), tinydiff's UNet2DConditionModel against diffusers' with the
   same config and weights (torch, float32, the same threads, alternated in one process;
   skipped when torch or diffusers is not importable).

    python benchmarks/bench_text2image.py               # 1000 samples, s in 1 2 3 5 8, DDIM 50
    python benchmarks/bench_text2image.py --quick       # 64 samples, 2 scales, 10 steps: runs, no more
    python benchmarks/bench_text2image.py --num 300 --sweep-num 200

Seeds are fixed: the same prompts and initial latents on every run. Writes the numbers as JSON
(default benchmarks/results/text2image.json).
"""

import argparse
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/runtime/process_settings.py)
import numpy as np
from tqdm.auto import tqdm
from train_cases import environment, fmt, import_torch, interleaved_medians, write_results

from tinydiff.data.captions import ATTRIBUTES, parse_caption, random_full_caption
from tinydiff.data.shapes import COLOUR_NAMES, SHAPES
from tinydiff.metrics.prompt_adherence import prompt_adherence
from tinydiff.nn import mse_loss
from tinydiff.optim import AdamW
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import text2image_dir
from tinydiff.pretrained.train_text2image import TEXT2IMAGE_UNET
from tinydiff.viz import new_figure, save_figure

SCALES = (1.0, 2.0, 3.0, 5.0, 8.0)
QUICK_SCALES = (1.0, 5.0)
PROMPT_SEED, LATENT_SEED, COST_SEED = 0, 1, 2  # each split draws from (seed, split number)
SPLITS = ("train", "heldout")
CHUNK = 100  # prompts per pipeline call: a guided UNet forward of 200
COST_BATCH = 64
LR, WEIGHT_DECAY = 1e-4, 0.01  # as benchmarks/train_cases.py
MEASURES = ATTRIBUTES + ("all four", "valid", "adherent")
# the targets (issue 14, "Measured") at the recommended scale
TARGETS = {"train": {**{a: 0.90 for a in ATTRIBUTES}, "all four": 0.75, "valid": 0.90}, "heldout": {"all four": 0.50}}
FEATURES = ("AVX2", "FMA3", "AVX512F", "AVX512_SKX", "ASIMD", "SVE")


def cpu_features():
    """The SIMD features NumPy found on this CPU, of those that matter to Numba's and BLAS's code."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as found
    except ImportError:
        return "unknown"
    return " ".join(f for f in FEATURES if found.get(f)) or "none of " + " ".join(FEATURES)


def prompts_and_latents(split, num, latent_shape):
    """num random full captions of `split` and one initial latent z_T per caption, fixed seeds."""
    k = SPLITS.index(split)
    rng = np.random.default_rng((PROMPT_SEED, k))
    prompts = [random_full_caption(rng, split) for _ in range(num)]
    latents = np.random.default_rng((LATENT_SEED, k)).standard_normal((num, *latent_shape), dtype=np.float32)
    return prompts, latents


def generate(pipe, prompts, latents, scale, steps, desc):
    """Images (N, 3, H, W) for the prompts from the given initial latents, CHUNK at a time, and
    the wall seconds per image. DDIM with eta = 0 draws no noise after z_T, so image i depends on
    prompts[i] and latents[i] alone, whatever the chunking."""
    images = []
    started = time.perf_counter()
    with tqdm(total=len(prompts), desc=desc, unit="img", leave=False) as bar:
        for i in range(0, len(prompts), CHUNK):
            images.append(pipe(prompts[i:i + CHUNK], guidance_scale=scale, num_inference_steps=steps,
                               rng=np.random.default_rng(0), latents=latents[i:i + CHUNK]))
            bar.update(len(images[-1]))
    return np.concatenate(images), (time.perf_counter() - started) / len(prompts)


def flags(result):
    """measure -> (N,) bool per sample: each attribute right, all four, valid, adherent."""
    return {**{a: result.right[:, k] for k, a in enumerate(ATTRIBUTES)}, "all four": result.all_named_right,
            "valid": result.valid, "adherent": result.valid & result.all_named_right}


def rates(result):
    """measure -> {"rate", "se", "n"}: the share of samples and its binomial standard error."""
    n = len(result.valid)
    return {name: {"rate": float(hit.mean()), "se": float(np.sqrt(hit.mean() * (1.0 - hit.mean()) / n)), "n": n}
            for name, hit in flags(result).items()}


def cell(r):
    return f"{r['rate']:.1%} +- {r['se']:.1%}"


def print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


def print_rates(title, by_split):
    rows = []
    for name in MEASURES:
        row = [name]
        for split, r in by_split.items():
            target = TARGETS[split].get(name)
            verdict = "" if target is None else f" ({'>=' if r[name]['rate'] >= target else '<'} {target:.0%})"
            row.append(cell(r[name]) + verdict)
        rows.append(row)
    print_table(title, ["measure"] + [f"{s} split" for s in by_split], rows)


def label(index, names):
    return names[index] if index >= 0 else "none"


def asked_pairs(prompts):
    """'colour shape' each prompt asks for (parse_caption), e.g. 'yellow circle'."""
    return [f"{COLOUR_NAMES[a['colour']]} {SHAPES[a['shape']]}" for a in map(parse_caption, prompts)]


def failures(result, prompts):
    """What goes wrong: how many samples miss each attribute or are not a valid single shape,
    and per asked (colour, shape) pair, the (colour, shape) pairs read back, most frequent first."""
    hit = flags(result)
    missed = {name: int((~hit[name]).sum()) for name in ATTRIBUTES + ("valid",)}
    drawn = {}
    for asked, colour, shape in zip(asked_pairs(prompts), result.read.colour, result.read.shape):
        got = f"{label(colour, COLOUR_NAMES)} {label(shape, SHAPES)}"
        drawn.setdefault(asked, {}).setdefault(got, 0)
        drawn[asked][got] += 1
    drawn = {a: dict(sorted(d.items(), key=lambda kv: -kv[1])) for a, d in sorted(drawn.items())}
    return {"samples_missing": missed, "drawn_for_pair": drawn}


def confusion(asked, read, names):
    """{asked name: {read name or 'none': count}} for one attribute; asked, read (N,) indices."""
    return {names[a]: {label(v, names): int((read[asked == a] == v).sum())
                       for v in [*range(len(names)), -1] if (read[asked == a] == v).any()}
            for a in np.unique(asked)}


def print_heldout(result, prompts):
    info = failures(result, prompts)
    all_four = flags(result)["all four"]
    pairs = np.array(asked_pairs(prompts))
    print("\nheld-out combinations: what was drawn for each asked (colour, shape) pair")
    for asked, drawn in info["drawn_for_pair"].items():
        mask = pairs == asked
        n = int(mask.sum())
        top = ", ".join(f"{got} {count / n:.0%}" for got, count in list(drawn.items())[:4])
        print(f"  {asked:<16} n={n:<4} all four right {all_four[mask].mean():.1%}; drawn: {top}")
    print("samples missing each attribute (one sample may miss several): "
          + ", ".join(f"{k} {v}" for k, v in info["samples_missing"].items()))
    asked = [parse_caption(p) for p in prompts]
    for name, read, names in (("colour", result.read.colour, COLOUR_NAMES), ("shape", result.read.shape, SHAPES)):
        table = confusion(np.array([a[name] for a in asked]), read, names)
        print(f"{name} asked -> read: " + "; ".join(f"{a}: " + ", ".join(f"{r} {c}" for r, c in d.items())
                                                      for a, d in table.items()))
        info[f"{name}_confusion"] = table
    return info


def plot_sweep(sweep, recommended, num, steps, path):
    """Each measure's rate against the guidance scale, with standard errors."""
    fig, ax = new_figure(1, 1, panel_size=(6.4, 4.4), squeeze=True)
    scales = sorted(sweep)
    for name, style in zip(MEASURES, ("o-", "s-", "^-", "v-", "D-", "x--", "*--")):
        ax.errorbar(scales, [sweep[s]["rates"][name]["rate"] for s in scales],
                    yerr=[sweep[s]["rates"][name]["se"] for s in scales], fmt=style, capsize=3, label=name, lw=1.5)
    if recommended is not None:
        ax.axvline(recommended, color="0.5", ls=":", label=f"recommended s = {recommended:g}")
    ax.set_xlabel("guidance scale s (1 = no guidance)")
    ax.set_ylabel("share of samples")
    ax.set_title(f"prompt adherence against guidance ({num} samples per s, DDIM {steps})", fontsize="medium")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)
    return path


# ---- cost ------------------------------------------------------------------------------------

def tinydiff_steps(model, case):
    """(train, sample) of tinydiff's UNet: a training step (forward, MSE, backward, AdamW) on
    case's x, t, states, target, and a guided sampling step (an eval forward of x2, t2, states2)."""
    optimizer = AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def train():
        model.train()
        _, grad = mse_loss(model(case["x"], case["t"], case["states"]), case["target"])
        model.zero_grad()
        model.backward(grad)
        optimizer.step()

    def sample():
        model.eval()
        model(case["x2"], case["t2"], case["states2"])

    return train, sample


def torch_steps(torch, diffusers, model, case):
    """The same two steps on diffusers' UNet2DConditionModel holding model's config and weights."""
    theirs = diffusers.UNet2DConditionModel(**{k: v for k, v in model.config.items() if not k.startswith("_")})
    missing, unexpected = theirs.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()},
                                                 strict=False)
    if missing or unexpected:
        raise RuntimeError(f"parameter names differ from diffusers': missing {missing}, unexpected {unexpected}")
    optimizer = torch.optim.AdamW(theirs.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    c = {k: torch.tensor(v) for k, v in case.items()}

    def train():
        theirs.train()
        loss = torch.nn.functional.mse_loss(theirs(c["x"], c["t"], c["states"]).sample, c["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sample():
        theirs.eval()
        with torch.inference_mode():
            theirs(c["x2"], c["t2"], c["states2"])

    return train, sample


def cost(folder, pipe, repeats, torch, diffusers):
    """Median seconds of each step in both frameworks, alternated, on a fresh copy of the
    folder's UNet (the AdamW steps change its weights)."""
    model = load_model(folder / "unet")
    same = all(np.array_equal(model.config.get(k), v) for k, v in TEXT2IMAGE_UNET.items())
    rng = np.random.default_rng(COST_SEED)
    c, s = model.config["in_channels"], model.config["sample_size"]
    x = rng.standard_normal((COST_BATCH, c, s, s), dtype=np.float32)
    prompts, _ = prompts_and_latents("train", COST_BATCH, (c, s, s))
    states = pipe.encode(prompts)  # (64, 16, 64): the text encoder's last hidden state
    case = {"x": x, "t": rng.integers(0, 1000, COST_BATCH), "states": states,
            "target": rng.standard_normal(x.shape, dtype=np.float32),
            "x2": np.concatenate([x, x]), "t2": np.full(2 * COST_BATCH, 501),  # (prompt, "") stacked
            "states2": np.concatenate([states, pipe.encode([""] * COST_BATCH)])}
    frameworks = [tinydiff_steps(model, case)]
    if torch is not None:
        frameworks.append(torch_steps(torch, diffusers, model, case))
    out = {"batch": COST_BATCH, "states_shape": list(states.shape), "config_is_TEXT2IMAGE_UNET": same,
           "repeats": repeats}
    for k, kind in enumerate(("train", "sample")):
        medians = interleaved_medians([f[k] for f in frameworks], repeats, warmup=1)
        out[kind] = {"tinydiff_s": medians[0], "torch_s": medians[1] if torch is not None else None}
    return out


def print_cost(result, threads, torch_note):
    rows = []
    for kind, what in (("train", f"training step, batch {result['batch']}"),
                       ("sample", f"guided sampling step, batch 2x{result['batch']}")):
        r = result[kind]
        ratio = r["torch_s"] / r["tinydiff_s"] if r["torch_s"] else None
        rows.append([what, f"{1e3 * r['tinydiff_s']:.1f}", fmt(r["torch_s"] and 1e3 * r["torch_s"], ".1f"),
                     fmt(ratio, ".2f")])
    print_table(f"Cost of a step (median of {result['repeats']}, ms; {threads})",
                ["step", "tinydiff ms", "diffusers ms", "torch / tinydiff"], rows)
    print(f"text states {tuple(result['states_shape'])}; config "
          + ("= TEXT2IMAGE_UNET" if result["config_is_TEXT2IMAGE_UNET"] else "differs from TEXT2IMAGE_UNET")
          + "; training step = forward, MSE, backward (tinydiff's also returns the gradients to the sample and "
            "the text states), AdamW; ratio >= 1: tinydiff at least as fast")
    if torch_note:
        print(f"diffusers column skipped: torch / diffusers {torch_note}")


# ---- the run ---------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=None, help="samples per split at the recommended scale "
                        "(default 1000; 64 with --quick)")
    parser.add_argument("--sweep-num", type=int, default=None, help="samples per guidance scale (default --num)")
    parser.add_argument("--scales", type=float, nargs="+", default=None,
                        help=f"guidance scales of the sweep (default {' '.join(f'{s:g}' for s in SCALES)}; "
                             f"{' '.join(f'{s:g}' for s in QUICK_SCALES)} with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 50; 10 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps of the cost (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a small run that checks everything runs")
    parser.add_argument("--model", type=Path, default=None,
                        help="a text-to-image pipeline folder (default: the shipped one)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "text2image.json")
    parser.add_argument("--plot", type=Path, default=Path(__file__).parent / "results" / "text2image_guidance.png")
    args = parser.parse_args(argv)
    quick = args.quick
    args.num = args.num or (64 if quick else 1000)
    args.sweep_num = args.sweep_num or args.num
    args.scales = args.scales or list(QUICK_SCALES if quick else SCALES)
    args.steps = args.steps or (10 if quick else 50)
    args.repeats = args.repeats or (2 if quick else 5)
    for name in ("num", "sweep_num", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(args, name)}")
    if args.sweep_num > args.num:
        parser.error(f"--sweep-num: expected at most --num ({args.num}), got {args.sweep_num}")
    if any(s < 0 for s in args.scales):
        parser.error(f"--scales: expected values >= 0, got {args.scales}")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch, diffusers = import_torch()  # torch before any Numba kernel runs (DESIGN.md)
    env = environment(torch, diffusers)
    torch_note = None if torch is not None else diffusers
    diffusers = None if torch is None else diffusers
    threads = f"numba {env['numba_threads']} threads" + (f", torch {torch.get_num_threads()}" if torch else "")
    print(f"CPU features: {cpu_features()}; {threads}")
    folder = args.model or text2image_dir()
    pipe = TextToImagePipeline.from_pretrained(folder)
    recommended = pipe.guidance_scale
    latent_shape = (pipe.unet.config["in_channels"], pipe.unet.config["sample_size"], pipe.unet.config["sample_size"])
    print(f"pipeline {folder}: recommended guidance scale {recommended:g}; DDIM {args.steps} steps")
    started = time.perf_counter()

    # 1 and 2: the recommended scale on both splits
    results, data = {}, {}
    for split in SPLITS:
        prompts, latents = prompts_and_latents(split, args.num, latent_shape)
        images, seconds = generate(pipe, prompts, latents, recommended, args.steps, f"{split} s={recommended:g}")
        data[split] = (prompts, latents, images)
        results[split] = {"result": prompt_adherence(images, prompts), "seconds_per_image": seconds}
    by_split = {split: rates(r["result"]) for split, r in results.items()}
    print_rates(f"1-2. Prompt adherence at the recommended s = {recommended:g} (DDIM {args.steps}, {args.num} samples "
                f"per split, random full captions; rate +- binomial standard error; target in brackets)", by_split)
    train_failures = failures(results["train"]["result"], data["train"][0])
    print("train split, samples missing each attribute: "
          + ", ".join(f"{k} {v}" for k, v in train_failures["samples_missing"].items()))
    heldout_info = print_heldout(results["heldout"]["result"], data["heldout"][0])

    # 3: the guidance sweep on the first sweep_num train prompts (the recommended scale's reused)
    prompts, latents, images = (d[:args.sweep_num] for d in data["train"])
    sweep = {}
    for s in sorted(set(args.scales) | {recommended}):
        if s == recommended:
            result, seconds = prompt_adherence(images, prompts), results["train"]["seconds_per_image"]
        else:
            sampled, seconds = generate(pipe, prompts, latents, s, args.steps, f"sweep s={s:g}")
            result = prompt_adherence(sampled, prompts)
        sweep[s] = {"rates": rates(result), "seconds_per_image": seconds}
    print_table(f"3. Adherence against guidance scale (train split, the same {args.sweep_num} prompts and initial "
                f"latents per s, DDIM {args.steps}; rate +- standard error)",
                ["s"] + list(MEASURES) + ["s/img"],
                [[f"{s:g}" + (" (recommended)" if s == recommended else "")]
                 + [cell(r["rates"][m]) for m in MEASURES] + [f"{r['seconds_per_image']:.3f}"]
                 for s, r in sweep.items()])
    print(f"wrote {plot_sweep(sweep, recommended, args.sweep_num, args.steps, args.plot)}")
    sampling_minutes = (time.perf_counter() - started) / 60

    # 4: cost
    cost_result = cost(folder, pipe, args.repeats, torch, diffusers)
    print_cost(cost_result, threads, torch_note)
    minutes = (time.perf_counter() - started) / 60
    print(f"\nrun time: {minutes:.1f} min ({sampling_minutes:.1f} sampling and measuring)")

    report = {"model": str(folder), "recommended_scale": recommended, "steps": args.steps, "num": args.num,
              "sweep_num": args.sweep_num, "environment": {**env, "cpu_features": cpu_features()},
              "adherence": {split: {"rates": by_split[split], "seconds_per_image": results[split]["seconds_per_image"]}
                            for split in SPLITS},
              "train_failures": train_failures, "heldout_failures": heldout_info,
              "guidance_sweep": [{"guidance_scale": s, **r} for s, r in sweep.items()],
              "cost": cost_result, "minutes": minutes}
    write_results(args.json, report)
    return report


if __name__ == "__main__":
    main()
