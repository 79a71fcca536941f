# %% [markdown]
# # Lesson 05 — How many steps does sampling need?
#
# **What you will see.** The shipped glyph model sampled with three samplers — DDPM (ancestral,
# Ho et al. 2020), DDIM (Song et al. 2021) and DPM-Solver++ 2M (Lu et al. 2022) — at step
# counts from a handful to 1000, all from the same starting noise. A table and two plots give
# the quality of each run (measured with the glyph classifier, see lesson 04), and a figure
# shows the samples of each sampler at few steps side by side.
#
# **Why it matters.** The network was trained on 1000 noise levels, and DDPM takes a small
# random step at each: every step only removes a little noise, and skipping levels breaks the
# Gaussian approximation each step relies on. DDIM uses the same trained network but follows a
# deterministic path (an ODE in disguise) that can take big steps; Song et al. 2021 (Table 1)
# found 50 DDIM steps about as good as 1000 DDPM steps on CIFAR-10, and DDPM at 10 steps far
# worse. DPM-Solver++ is a second-order solver of that ODE: it reuses the previous step's
# prediction to cancel most of the error, and needs 10-20 steps.
#
# **What to expect here.** Glyphs are an easy data set and the model is class-conditional: the
# label decides most of the picture, and the model's guess of x_0 is clipped to [-1, 1] at
# every step. So every sampler draws recognisable digits from a handful of steps on (in the
# run we measured, 96-100% at every step count), and the differences are in the Frechet
# distance and in the pictures: 50-step DDIM (0.50) was as close to real glyphs as 1000-step
# DDPM (0.48) and as another set of real glyphs (0.51), while 10-step DDPM was further away
# (0.59). With 50 samples per run these distances carry noise of a few hundredths; raise
# --num for firmer numbers. On harder data (lesson 06's shapes, or CIFAR-10) few-step DDPM
# falls apart much more visibly.
#
# Run: `python lessons/05_steps_and_samplers.py [--num N] [--out DIR] [--fast]` (about 7
# minutes on 2 cores; the 1000-step DDPM run is most of it).

# %%
import argparse
import os
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/__init__.py)
import numpy as np

from tinydiff.data import GlyphDataset
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
from tinydiff.pretrained import glyph_judge, glyph_model_dir
from tinydiff.viz import new_figure, plot_curves, save_figure
from tinydiff.viz.tiles import tile_images

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md. In a notebook, where flags cannot be
# passed, TINYDIFF_LESSON_FAST=1 and TINYDIFF_LESSON_OUT=DIR (figures in DIR/<lesson>) stand in for them.
parser = argparse.ArgumentParser(description="Lesson 05: steps and samplers")
parser.add_argument("--out", help="folder for the figures",
                    default=os.path.join(os.environ.get("TINYDIFF_LESSON_OUT", "outputs"), "05_steps_and_samplers"))
parser.add_argument("--num", type=int, default=50, help="samples per run (default 50)")
parser.add_argument("--model", type=Path, default=None, help="a model folder instead of the shipped one")
parser.add_argument("--fast", action="store_true", default=os.environ.get("TINYDIFF_LESSON_FAST") == "1",
                    help="few samples and steps, for smoke tests (or TINYDIFF_LESSON_FAST=1)")
args, _ = parser.parse_known_args()  # tolerate the extra arguments a notebook kernel passes
OUT = Path(args.out)
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures go to {OUT.resolve()}")

# %% [markdown]
# ## One model, one starting noise, many samplers
# Every run draws x_T from the same seed, and DDPM's per-step noise from the same seed too, so
# differences come from the sampler and the number of steps alone.

# %%
model, scheduler_config = load_pipeline(args.model or glyph_model_dir())
size = model.config["sample_size"]
num = 10 if args.fast else args.num
labels = np.arange(num) % 10
STEPS = {"ddpm": [10, 50, 250, 1000], "ddim": [5, 10, 25, 50, 100], "dpm": [5, 10, 20, 50]}
if args.fast:
    STEPS = {"ddpm": [4, 8], "ddim": [4, 8], "dpm": [4, 8]}
NAMES = {"ddpm": "DDPM", "ddim": "DDIM", "dpm": "DPM-Solver++"}

judge = glyph_judge(200 if args.fast else 1000)
reals = GlyphDataset(seed=3000, size=size)  # real glyphs of the same digits as the samples
real = judge.score(reals.get(reals.indices_with_labels(labels))[0])
results, grids = [], {}
for kind, counts in STEPS.items():
    for steps in counts:
        scheduler = scheduler_from_config(kind, scheduler_config)
        started = time.perf_counter()
        x = sample(model, scheduler, (num, 1, size, size), np.random.default_rng(0), steps, class_labels=labels)
        seconds = time.perf_counter() - started
        score = judge.score(x, labels)
        results.append(dict(sampler=kind, steps=steps, seconds=seconds, **score))
        grids[kind, steps] = x[:10]
        print(f"{NAMES[kind]:>12} {steps:5d} steps: recognised {score['recognised']:6.1%}  "
              f"as asked {score['agreement']:6.1%}  Frechet {score['frechet']:7.2f}  ({seconds:.1f} s)")

# %% [markdown]
# ## The table
# "recognised" is the share the classifier reads with probability >= 0.9, "as asked" the share
# read as the requested digit, "Frechet" the distance of classifier features to real glyphs
# (the last row: two sets of real glyphs of the same size, the floor this number can reach).

# %%
header = f"{'sampler':>12} {'steps':>6} {'recognised':>11} {'as asked':>9} {'Frechet':>8} {'seconds':>8}"
lines = [header, "-" * len(header)]
for r in results:
    lines.append(f"{NAMES[r['sampler']]:>12} {r['steps']:>6} {r['recognised']:>11.1%} {r['agreement']:>9.1%} "
                 f"{r['frechet']:>8.2f} {r['seconds']:>8.1f}")
lines.append(f"{'real glyphs':>12} {'-':>6} {real['recognised']:>11.1%} {'-':>9} {real['frechet']:>8.2f} {'-':>8}")
table = "\n".join(lines)
print(table)
(OUT / "quality_vs_steps.txt").write_text(table + "\n")

# %% [markdown]
# ## Quality against steps
# Left: the Frechet distance (lower is better); right: the recognised share. DDIM and
# DPM-Solver++ flatten out after a few dozen steps; DDPM needs hundreds.

# %%
fig, axes = new_figure(1, 2, panel_size=(5.0, 3.6), squeeze=True)
for metric, ax, label in (("frechet", axes[0], "Frechet distance to real glyphs"),
                          ("recognised", axes[1], "share recognised (p >= 0.9)")):
    for kind in STEPS:
        rows = [r for r in results if r["sampler"] == kind]
        ax.plot([r["steps"] for r in rows], [r[metric] for r in rows], "o-", label=NAMES[kind])
    ax.axhline(real[metric], color="grey", ls="--", lw=1, label="real glyphs")
    ax.set_xscale("log")
    used = sorted({r["steps"] for r in results})
    ticks = [t for t in used if not (t == 25 and 20 in used)]  # 20 and 25 would overlap
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps (log scale)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
axes[0].set_title("closer to real data: lower")
axes[1].set_title("recognisable digits: higher")
save_figure(fig, OUT / "quality_vs_steps.png")

# %% [markdown]
# ## What few steps look like
# Rows: DDPM, DDIM and DPM-Solver++ at their smallest and a middle step count; each row shows
# the digits 0-9 drawn from the same noise.

# %%
picks = [(kind, counts[0]) for kind, counts in STEPS.items()] + [(kind, counts[1]) for kind, counts in STEPS.items()]
fig, axes = new_figure(len(picks), 1, panel_size=(7.0, 1.0), squeeze=False)
for ax, (kind, steps) in zip(axes[:, 0], picks):
    ax.imshow(tile_images(grids[kind, steps], ncols=10))
    ax.set_title(f"{NAMES[kind]}, {steps} steps", fontsize=9, loc="left")
    ax.axis("off")
save_figure(fig, OUT / "few_steps_side_by_side.png")

# %% [markdown]
# ## Checks
# The claims above, as numbers.

# %%
def best(kind):
    return min(r["frechet"] for r in results if r["sampler"] == kind)


def at(kind, steps):
    return next(r for r in results if r["sampler"] == kind and r["steps"] == steps)


assert len(results) == sum(len(v) for v in STEPS.values())
if not args.fast:
    # DDIM at 50 steps is about as good as DDPM at 1000 (Song et al. 2021, Table 1) ...
    assert at("ddim", 50)["frechet"] <= 1.5 * at("ddpm", 1000)["frechet"] + 1.0
    # ... while DDPM at 10 steps is clearly worse than DDIM at 10
    assert at("ddpm", 10)["frechet"] > at("ddim", 10)["frechet"]
    assert at("dpm", 20)["recognised"] >= 0.85
print("all checks passed")
