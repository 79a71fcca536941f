# %% [markdown]
# # Lesson 05 — How many steps does sampling need?
#
# **What you will see.** The shipped glyph model sampled with three samplers — DDPM (ancestral,
# Ho et al. 2020), DDIM (Song et al. 2021) and DPM-Solver++ 2M (Lu et al. 2022) — from 2 to 50
# steps, each run repeated with several seeds. First the ruler: how far apart two sets of
# *real* glyphs are by the Frechet distance we use, so that we know which differences are
# real. Then quality against steps (mean +- spread over seeds), how accurately DDIM and
# DPM-Solver++ solve the ODE they share, and the samples of each sampler at few steps.
#
# **Why it matters.** The network was trained on 1000 noise levels, and DDPM takes a small
# random step at each: every step removes a little noise and adds some back, and with few big
# steps the noise it adds is not removed again. DDIM uses the same trained network but follows
# a deterministic path (an ODE in disguise) that can take big steps; DPM-Solver++ solves that
# same ODE to second order, reusing the previous step's prediction to cancel most of the error.
# How many steps you need is a property of the sampler *and* of the data: Song et al. 2021
# (Table 1) needed about 1000 DDPM steps on CIFAR-10; here you measure it on glyphs.
#
# **What you will find** (numbers from our run, printed again when you run it): on these easy
# 16x16 glyphs DDPM is clearly worse than DDIM at 5 and 10 steps, within the spread at 20,
# and at the floor by 50; DDIM and DPM-Solver++ reach the floor of the ruler from about 10 steps on, where it
# cannot separate them (nor two sets of real glyphs); and measured against the exact ODE
# solution DPM-Solver++ is the more accurate solver from 5 steps on, once its timesteps start
# at t = 999 (the config's "leading" spacing starts it late, which an earlier version of this
# lesson mistook for a worse sampler).
#
# Run: `python lessons/05_steps_and_samplers.py [--num N] [--out DIR] [--fast]`. Measured on a quiet 2-core machine (nothing else running):
# 3.7 minutes, most of it the 50-step runs and the 100-step reference; 18 s with --fast (11.4
# minutes while other jobs kept the cores busy, load average 4-7).

# %%
import time
from pathlib import Path

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np

from tinydiff.data import GlyphDataset
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
from tinydiff.pretrained import glyph_judge, glyph_model_dir
from tinydiff.viz import new_figure, save_figure
from tinydiff.viz.tiles import tile_images

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md.
parser = LessonParser("05_steps_and_samplers", "Lesson 05: steps and samplers",
                      fast_help="few samples and steps, for smoke tests")
parser.add_argument("--num", type=int, default=100, help="samples per run and seed (default 100)")
parser.add_argument("--model", type=Path, default=None, help="a model folder instead of the shipped one")
args = parser.parse()
OUT = args.out

# %% [markdown]
# ## The ruler first: how far apart are two sets of *real* glyphs?
# The Frechet distance fits a Gaussian to the classifier's 64 features of each set and compares
# the two Gaussians. With a finite set the fitted mean and covariance are noisy, and that noise
# adds distance on average (it is squared): two independent sets of real glyphs are far from
# 0 apart, the more so the smaller they are (we measured 0.48 +- 0.06 at 50 images, 0.35 +-
# 0.04 at 100, 0.28 +- 0.02 at 200, 0.22 +- 0.01 at 1000, each against the judge's 1000
# reference glyphs; mean +- standard deviation over 5 seeds). No sampler can
# score below this floor except by luck, and two samplers whose scores differ by less than its
# spread are not shown to differ. So every number below is a mean over several seeds, printed
# with its spread, beside the floor measured here at the same sample size.

# %%
model, scheduler_config = load_pipeline(args.model or glyph_model_dir())
size = model.config["sample_size"]
num = 10 if args.fast else args.num
SEEDS = [0, 1] if args.fast else [0, 1, 2]
labels = np.arange(num) % 10
judge = glyph_judge(200 if args.fast else 1000)

floor = []
for seed in range(5):
    reals = GlyphDataset(seed=3000 + seed, size=size)  # real glyphs of the same digits as the samples
    floor.append(judge.score(reals.get(reals.indices_with_labels(labels))[0])["frechet"])
floor = np.array(floor)
print(f"real glyphs vs real glyphs, {num} images: Frechet {floor.mean():.3f} +- {floor.std(ddof=1):.3f} "
      f"(5 seeds: {np.round(floor, 3).tolist()})")

# %% [markdown]
# ## One model, many samplers, several seeds
# Each seed fixes x_T (and DDPM's per-step noise), so within a seed the samplers start from the
# same noise and differ only in how they step. All three use `timestep_spacing="trailing"`
# (Lin et al. 2023), which starts every run at the last training timestep t = 999 where x_T
# really is pure noise. The shipped model's config says "leading" (diffusers' DDPM default):
# a 5-step run would then start at t = 800 for DDIM and t = 830 for DPM-Solver++, where the
# sample should still hold 26-31% of the image (sqrt(alpha_bar)); the ODE section below
# measures what that costs.

# %%
SPACING = "trailing"
STEPS = [2, 4] if args.fast else [2, 5, 10, 20, 50]
KINDS = ("ddpm", "ddim", "dpm")
NAMES = {"ddpm": "DDPM", "ddim": "DDIM", "dpm": "DPM-Solver++"}


def run(kind, steps, seed, spacing=SPACING, clip=True):
    """num samples of `kind` with `steps` steps from seed `seed`; clip=False turns off the clipping of
    DDPM's and DDIM's x_0 guesses to [-1, 1] (DPM-Solver++ never clips)"""
    config = {**scheduler_config, "timestep_spacing": spacing, "clip_sample": clip and scheduler_config["clip_sample"]}
    scheduler = scheduler_from_config(kind, config)
    return sample(model, scheduler, (num, 1, size, size), np.random.default_rng(seed), steps, class_labels=labels)


started = time.perf_counter()
scores, samples = {}, {}  # (kind, steps) -> list of judge scores (one per seed); seed 0's samples
for kind in KINDS:
    for steps in STEPS:
        for seed in SEEDS:
            x = run(kind, steps, seed)
            scores.setdefault((kind, steps), []).append(judge.score(x, labels))
            if seed == 0:
                samples[kind, steps] = x
        f = np.array([s["frechet"] for s in scores[kind, steps]])
        print(f"{NAMES[kind]:>12} {steps:4d} steps: Frechet {f.mean():.3f} +- {f.std(ddof=1):.3f}  "
              f"recognised {np.mean([s['recognised'] for s in scores[kind, steps]]):.1%}  "
              f"({time.perf_counter() - started:.0f} s so far)")


def frechet(kind, steps):
    """mean and standard deviation over the seeds"""
    f = np.array([s["frechet"] for s in scores[kind, steps]])
    return f.mean(), f.std(ddof=1)


# %% [markdown]
# ## The table
# "Frechet" is the mean +- standard deviation over the seeds of the distance of classifier
# features to 1000 real glyphs (lower is closer); "recognised" the share the classifier reads
# with probability >= 0.9, and "as asked" the share read as the requested digit, both averaged
# over the seeds.

# %%
header = f"{'sampler':>12} {'steps':>6} {'Frechet (mean +- sd)':>21} {'recognised':>11} {'as asked':>9}"
lines = [f"{num} samples per run, seeds {SEEDS}, timestep_spacing={SPACING!r}", header, "-" * len(header)]
for kind in KINDS:
    for steps in STEPS:
        m, s = frechet(kind, steps)
        rec = np.mean([r["recognised"] for r in scores[kind, steps]])
        agree = np.mean([r["agreement"] for r in scores[kind, steps]])
        lines.append(f"{NAMES[kind]:>12} {steps:>6} {m:>13.3f} +- {s:.3f} {rec:>11.1%} {agree:>9.1%}")
lines.append(f"{'real glyphs':>12} {'-':>6} {floor.mean():>13.3f} +- {floor.std(ddof=1):.3f} {'':>11} {'':>9}"
             "   (5 sets of real glyphs: the floor)")
table = "\n".join(lines)
print(table)
(OUT / "quality_vs_steps.txt").write_text(table + "\n")

# %% [markdown]
# ## Quality against steps
# Error bars: one standard deviation over the seeds; grey band: the floor (real glyphs against
# real glyphs, mean +- one standard deviation). The y-axis starts at 0, so distances are drawn
# to scale.

# %%
fig, ax = new_figure(1, 1, panel_size=(6.0, 4.0), squeeze=True)
for kind, shift in zip(KINDS, (0.94, 1.0, 1.06)):  # nudge the three apart so their error bars stay visible
    stats = np.array([frechet(kind, steps) for steps in STEPS])
    ax.errorbar(np.array(STEPS) * shift, stats[:, 0], yerr=stats[:, 1], fmt="o-", capsize=3, label=NAMES[kind])
lo, hi = floor.mean() - floor.std(ddof=1), floor.mean() + floor.std(ddof=1)
ax.axhspan(lo, hi, color="grey", alpha=0.25, label=f"real vs real glyphs ({num} images)")
ax.set_xscale("log")
ax.set_xticks(STEPS, [str(s) for s in STEPS])
ax.minorticks_off()
ax.set_ylim(0, 1.15 * max([hi] + [sum(frechet(k, s)) for k in KINDS for s in STEPS]))
ax.set_xlabel("sampling steps (log scale)")
ax.set_ylabel(f"Frechet distance to real glyphs ({num} samples)")
ax.set_title(f"lower is closer to real glyphs; mean +- sd over {len(SEEDS)} seeds")
ax.grid(alpha=0.3)
ax.legend(fontsize="small")
save_figure(fig, OUT / "quality_vs_steps.png")

# %% [markdown]
# What to notice (our run: 100 samples, 3 seeds, mean +- sd; the floor 0.35 +- 0.04): with
# 2 steps every sampler is far from real glyphs (0.63-0.76). DDPM stays clearly worse than
# DDIM at 5 and 10 steps (0.49 +- 0.04 against 0.39 +- 0.02, 0.41 +- 0.01 against 0.36 +-
# 0.00): each DDPM step adds fresh noise, and a few big steps cannot remove it again, while
# the deterministic samplers only follow the ODE. At 20 steps DDPM is still behind (0.37 +-
# 0.03 against 0.34 +- 0.02), but by less than the two spreads together. DDIM and
# DPM-Solver++ are at the floor from 10 steps on, DDPM only by 50 (0.35 +- 0.01). So on these
# easy 16x16 glyphs DDPM needs about 50 steps, not the hundreds Song et al. 2021 found on
# CIFAR-10, and beyond 10 steps this ruler cannot tell DDIM from DPM-Solver++. Recognition is
# near 100% everywhere: the class label decides the digit (lesson 04).

# %% [markdown]
# ## How close does each solver get to the exact ODE solution?
# DDIM and DPM-Solver++ are two numerical solvers of one ordinary differential equation (the
# probability-flow ODE): from the same x_T they should land on the same image, and they differ
# in how fast their error shrinks with steps. So measure that directly, without a classifier:
# solve the ODE very accurately once (DPM-Solver++ with 100 steps), and measure the
# root-mean-square pixel difference of each few-step result from it (seed 0, pixels in
# [-1, 1]). One detail matters here: the config clips DDIM's guess of x_0 to [-1, 1] at every
# step, which changes the equation it solves (DPM-Solver++ does not clip). So DDIM runs here
# without clipping too; the dotted line is the clipped DDIM of the table above, for
# comparison. The dashed lines use the config's "leading" spacing instead of "trailing".

# %%
REF_STEPS = 8 if args.fast else 100
ODE_STEPS = [s for s in STEPS if s < REF_STEPS]
reference = run("dpm", REF_STEPS, 0)
CURVES = {  # name -> (kind, spacing, clip, line style, colour)
    "DPM-Solver++, trailing": ("dpm", SPACING, False, "o-", "tab:green"),
    "DDIM, trailing": ("ddim", SPACING, False, "o-", "tab:orange"),
    "DDIM, trailing, clipped x_0": ("ddim", SPACING, True, "o:", "tab:orange"),
    "DPM-Solver++, leading": ("dpm", "leading", False, "s--", "tab:green"),
    "DDIM, leading": ("ddim", "leading", False, "s--", "tab:orange"),
}
distance = {}
for name, (kind, spacing, clip, _, _) in CURVES.items():
    for steps in ODE_STEPS:
        reuse = spacing == SPACING and (kind == "dpm" or clip)  # the runs of the table above, seed 0
        x = samples[kind, steps] if reuse else run(kind, steps, 0, spacing, clip)
        distance[name, steps] = float(np.sqrt(np.mean((x - reference) ** 2)))
fig, ax = new_figure(1, 1, panel_size=(6.0, 4.0), squeeze=True)
for name, (_, _, _, style, colour) in CURVES.items():
    ax.plot(ODE_STEPS, [distance[name, s] for s in ODE_STEPS], style, color=colour, label=name)
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xticks(ODE_STEPS, [str(s) for s in ODE_STEPS])
ax.minorticks_off()
ax.set_xlabel("sampling steps (log scale)")
ax.set_ylabel(f"RMS pixel distance to the {REF_STEPS}-step solution")
ax.set_title("error of the ODE solvers, seed 0 (lower is better)")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize="small")
save_figure(fig, OUT / "ode_error_vs_steps.png")
print(f"RMS pixel distance to the {REF_STEPS}-step DPM-Solver++ solution (seed 0):")
for name in CURVES:
    print(f"  {name:>28}: " + "  ".join(f"{s} steps {distance[name, s]:.4f}" for s in ODE_STEPS))

# %% [markdown]
# What to notice (our run): with trailing spacing DPM-Solver++ is closer to the ODE's solution
# than DDIM from 5 steps on, and pulls away as the steps grow (0.060 against 0.077 at 5 steps,
# 0.007 against 0.011 at 50); at 2 steps both are equally far off (0.160), since its first
# step is DDIM's and it has had only one more. Clipping stops DDIM near 0.03 whatever the
# steps: it solves a slightly different equation. With leading spacing both lose ground at
# few steps; DDIM recovers by 20-50 steps, DPM-Solver++ does not (0.036 at 50 steps, five
# times its trailing error). Its timesteps are n+1 points with the last dropped, so it starts
# later than DDIM (t = 830 against 800 for 5 steps, 950 against 980 for 50), and what it
# misses at the start is never recovered. On the exact denoiser of lesson 02 that start alone
# stops DPM-Solver++ at an error of 0.11 with 50 leading steps, against 0.003 with trailing
# ones (tests/diffusion/test_dpm_solver.py). An earlier version of this lesson used the
# config's leading spacing and 50 samples per run, and so found DPM-Solver++ "worse than DDIM
# at every step count": the spacing, plus differences of a few hundredths read off a ruler
# whose floor at 50 samples is 0.48 +- 0.06.

# %% [markdown]
# ## What few steps look like
# Rows: each sampler at 2, 5 and 10 steps (seed 0); each row shows the digits 0-9 drawn from
# the same noise.

# %%
few = STEPS[:3] if len(STEPS) >= 3 else STEPS
picks = [(kind, steps) for steps in few for kind in KINDS]
fig, axes = new_figure(len(picks), 1, panel_size=(7.0, 1.05), squeeze=False)
for ax, (kind, steps) in zip(axes[:, 0], picks):
    ax.imshow(tile_images(samples[kind, steps][:10], ncols=10, scale=3), interpolation="nearest")
    m, s = frechet(kind, steps)
    ax.set_title(f"{NAMES[kind]}, {steps} steps (Frechet {m:.2f} +- {s:.2f})", fontsize=9, loc="left")
    ax.axis("off")
save_figure(fig, OUT / "few_steps_side_by_side.png")

# %% [markdown]
# What to notice: the differences are subtle to the eye. At 2 steps DDPM's digits have soft
# edges on a faint grey haze, and DDIM's and DPM-Solver++'s are a little blurred; from 5 steps
# on they all look clean, and only the Frechet distance (over 300 samples) separates DDPM from
# the other two. DDPM draws *other* digits than DDIM from the same x_T, because it adds fresh
# noise on the way; DDIM and DPM-Solver++ draw nearly the same ones, since they solve the same
# ODE from the same start.
#
# ## Checks
# The claims above, as numbers.

# %%
assert len(scores) == len(KINDS) * len(STEPS)
if not args.fast:
    for steps in (5, 10):
        # DDPM is clearly worse than DDIM at few steps: further apart than both spreads together
        (m_ddpm, s_ddpm), (m_ddim, s_ddim) = frechet("ddpm", steps), frechet("ddim", steps)
        assert m_ddpm - m_ddim > s_ddpm + s_ddim, (steps, m_ddpm, m_ddim)
    for kind in KINDS:
        # with 50 steps every sampler is within 3 standard deviations of the real-vs-real floor
        assert frechet(kind, 50)[0] < floor.mean() + 3 * floor.std(ddof=1), (kind, frechet(kind, 50), floor)
    for steps in (5, 10, 20, 50):
        # DPM-Solver++ solves the ODE more accurately than DDIM with the same steps ...
        assert distance["DPM-Solver++, trailing", steps] < distance["DDIM, trailing", steps], steps
        # ... and the config's leading spacing costs it accuracy
        assert distance["DPM-Solver++, trailing", steps] < distance["DPM-Solver++, leading", steps], steps
    # second order pays off with more steps: from 10 to 50 steps its error falls more than DDIM's
    dpm_gain = distance["DPM-Solver++, trailing", 10] / distance["DPM-Solver++, trailing", 50]
    assert dpm_gain > distance["DDIM, trailing", 10] / distance["DDIM, trailing", 50], dpm_gain
    assert np.mean([s["recognised"] for s in scores["dpm", 10]]) >= 0.9
print("all checks passed")
