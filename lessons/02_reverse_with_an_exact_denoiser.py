# %% [markdown]
# # Lesson 02 — Reverse diffusion with an exact denoiser
#
# **What you will see.** Points of pure noise flowing into a three-mode 2-D data
# distribution: their trajectories under DDPM (stochastic) and DDIM (deterministic), an
# animation of the whole cloud, and a side-by-side of DDPM, DDIM and DPM-Solver++ at 1000,
# 50 and 10 steps, with a table measuring how far each result is from the data.
#
# **Why it matters.** A trained network only *approximates* E[eps | x_t]. Here the data is a
# mixture of Gaussians, whose E[eps | x_t] is known in closed form
# (`tinydiff.diffusion.GaussianMixture`), so the denoiser is perfect and every error you see
# belongs to the *sampler*: how it discretises the reverse process, how many steps it takes,
# and whether it injects noise. That is the cleanest way to compare samplers.
#
# Run: `python lessons/02_reverse_with_an_exact_denoiser.py [--out DIR] [--fast]`

# %%
import argparse
import os

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/__init__.py)
import numpy as np

from tinydiff.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    example_mixture_2d,
)
from tinydiff.metrics import energy_distance, sliced_wasserstein
from tinydiff.viz import (
    figure_to_array,
    new_figure,
    plot_points,
    plot_trajectories,
    save_figure,
    write_gif,
)

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md. In a notebook, where flags cannot be
# passed, TINYDIFF_LESSON_FAST=1 and TINYDIFF_LESSON_OUT=DIR (figures in DIR/<lesson>) stand in for them.
parser = argparse.ArgumentParser(description="Lesson 02: reverse diffusion with an exact denoiser")
parser.add_argument("--out", help="folder for the figures",
                    default=os.path.join(os.environ.get("TINYDIFF_LESSON_OUT", "outputs"), "02_reverse_with_an_exact_denoiser"))
parser.add_argument("--fast", action="store_true", default=os.environ.get("TINYDIFF_LESSON_FAST") == "1",
                    help="fewer points and steps, for smoke tests (or TINYDIFF_LESSON_FAST=1)")
args, _ = parser.parse_known_args()  # tolerate the extra arguments a notebook kernel passes
OUT = args.out
os.makedirs(OUT, exist_ok=True)
print(f"figures go to {os.path.abspath(OUT)}")
N = 600 if args.fast else 3000                  # points per sampler run
STEP_COUNTS = (200, 20, 5) if args.fast else (1000, 50, 10)

# %% [markdown]
# ## The data and its exact denoiser
# Three Gaussian modes with weights 0.5 / 0.3 / 0.2 and different shapes. For x_t at noise
# level alpha_bar, Bayes' rule gives each mode's responsibility r_k(x_t), and Gaussian
# conditioning gives E[eps | x_t, mode k]; their weighted sum is E[eps | x_t] — what a network
# trained with the usual MSE loss converges to. `as_model` wraps it as `model(x_t, t)`.
#
# All three samplers use `timestep_spacing="trailing"` (Lin et al. 2023): their first step
# then starts at the last training timestep t = 999, where x_t really is pure noise. The
# default "leading" spacing of DDPM/DDIM would start 10 steps at t = 900.

# %%
mixture = example_mixture_2d()
data = mixture.sample(N, np.random.default_rng(100))          # fresh data to compare against


def make_scheduler(kind):
    if kind == "DDPM":
        return DDPMScheduler(clip_sample=False, timestep_spacing="trailing")
    if kind == "DDIM":
        return DDIMScheduler(clip_sample=False, timestep_spacing="trailing")
    return DPMSolverMultistepScheduler(timestep_spacing="trailing")


def sample(kind, steps, num_points, seed, keep_every=0):
    """Run one sampler from N(0, I); optionally keep every k-th intermediate x_t."""
    scheduler = make_scheduler(kind)
    scheduler.set_timesteps(steps)
    model = mixture.as_model(scheduler.alphas_cumprod)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_points, 2)) * scheduler.init_noise_sigma
    path = [x]
    for i, t in enumerate(scheduler.timesteps):
        eps = model(x, int(t))
        if kind == "DDPM":  # ancestral sampling draws fresh noise at every step
            x = scheduler.step(eps, int(t), x, generator=rng).prev_sample
        else:               # DDIM (eta = 0) and DPM-Solver++ follow the probability-flow ODE
            x = scheduler.step(eps, int(t), x).prev_sample
        if keep_every and ((i + 1) % keep_every == 0 or i + 1 == len(scheduler.timesteps)):
            path.append(x)
    return x, np.stack(path), scheduler


# %% [markdown]
# ## Trajectories: stochastic vs deterministic
# 20 points, each followed from noise (grey) to its final position (red). DDPM's paths
# jitter — every step adds fresh noise — and may cross. DDIM's paths are smooth curves of an
# ODE: the same starting noise always ends at the same point, which is what makes DDIM
# inversion (noise <- image) possible.

# %%
fig, axes = new_figure(1, 3, panel_size=(4.0, 4.0), squeeze=True)
for ax in axes:
    plot_points(ax, data, color="tab:blue", size=2, alpha=0.15)
_, ddpm_path, _ = sample("DDPM", STEP_COUNTS[0], 20, seed=7, keep_every=max(1, STEP_COUNTS[0] // 50))
_, ddim_path, _ = sample("DDIM", STEP_COUNTS[1], 20, seed=7, keep_every=1)
_, dpm_path, _ = sample("DPM-Solver++", STEP_COUNTS[2], 20, seed=7, keep_every=1)
plot_trajectories(axes[0], ddpm_path, title=f"DDPM, {STEP_COUNTS[0]} steps (stochastic; drawn every {max(1, STEP_COUNTS[0] // 50)})")
plot_trajectories(axes[1], ddim_path, title=f"DDIM, {STEP_COUNTS[1]} steps (deterministic)")
plot_trajectories(axes[2], dpm_path, title=f"DPM-Solver++, {STEP_COUNTS[2]} steps")
fig.suptitle("20 points from the same starting noise in each panel; blue: the data")
print("saved", save_figure(fig, os.path.join(OUT, "trajectories.png")))

# %% [markdown]
# ## The whole cloud, step by step (animated GIF)
# DDIM with 50 steps on 1500 points. For most of the run the cloud hardly changes: the signal
# is buried under noise and the denoiser can only nudge points towards the mixture's overall
# mean. The three modes appear only in the last third of the steps, once the signal-to-noise
# ratio climbs past about 1 — one reason schedules and spacings that spend more steps there
# (cosine, trailing) sample better.

# %%
gif_steps = 10 if args.fast else 50
_, cloud_path, cloud_sched = sample("DDIM", gif_steps, 500 if args.fast else 1500, seed=3, keep_every=1)
frames = []
reached = [f"t = {t}" for t in cloud_sched.timesteps[1:]] + ["clean data"]
labels = ["start: x_T ~ N(0, I)"] + [f"step {i + 1}/{gif_steps}: now at {r}" for i, r in enumerate(reached)]
for x, label in zip(cloud_path, labels):
    fig, ax = new_figure(1, 1, panel_size=(4.0, 4.0), squeeze=True)
    plot_points(ax, x, title=f"DDIM: {label}", size=3)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    frames.append(figure_to_array(fig, dpi=80))
print("saved", write_gif(os.path.join(OUT, "ddim_sampling.gif"), frames, duration_ms=90))
fig, axes = new_figure(1, 5, panel_size=(3.2, 3.2), squeeze=True)
for ax, k in zip(axes, (np.array([0.0, 0.5, 0.7, 0.85, 1.0]) * (len(cloud_path) - 1)).round().astype(int)):
    plot_points(ax, cloud_path[k], title=labels[k], size=2)
fig.suptitle("frames of ddim_sampling.gif")
print("saved", save_figure(fig, os.path.join(OUT, "ddim_sampling_frames.png")))

# %% [markdown]
# ## DDPM vs DDIM vs DPM-Solver++ at 1000, 50 and 10 steps
# Same starting noise for every run. Distances to a fresh draw of the data (lower is better):
# the **energy distance** (Szekely & Rizzo 2013) and the **sliced Wasserstein-2** distance; the
# first row of the table is the noise floor — independent draws of the data itself.
#
# With many steps all three samplers are at the noise floor: the exact denoiser makes them
# exact up to discretisation. With 10 steps they separate and leave stragglers between the
# modes — points that had too few steps to commit to one. DDPM suffers most (its Gaussian
# reverse step is only right for small steps), DDIM's first-order ODE steps less, and
# DPM-Solver++'s second-order multistep update least.
#
# A note for readers of diffusers: its DDIMScheduler steps from t to t - T // n whatever the
# spacing, which for `linspace` (or `trailing` when n does not divide T) is not the next
# timestep of its own schedule. tinydiff always steps to the next entry of `timesteps`; the two
# agree for `leading` spacing and for the trailing 1000/50/10 steps used here.

# %%
kinds = ("DDPM", "DDIM", "DPM-Solver++")
results = {}
fig, axes = new_figure(3, 3, panel_size=(3.3, 3.3))
for r, kind in enumerate(kinds):
    for c, steps in enumerate(STEP_COUNTS):
        x, _, _ = sample(kind, steps, N, seed=1)
        weights = np.bincount(mixture.responsibilities(x).argmax(1), minlength=3) / N
        results[kind, steps] = (energy_distance(x, data),
                                sliced_wasserstein(x, data, np.random.default_rng(0)),
                                np.abs(weights - mixture.weights).max())
        plot_points(axes[r, c], data, color="tab:blue", size=2, alpha=0.12)
        plot_points(axes[r, c], x, color="tab:red", size=2, alpha=0.35,
                    title=f"{kind}, {steps} steps\nenergy distance {results[kind, steps][0]:.4f}")
fig.suptitle("red: samples; blue: data")
print("saved", save_figure(fig, os.path.join(OUT, "samplers_side_by_side.png")))

# The noise floor: distances between independent draws of the data itself (median of 5).
floors = []
for seed in range(101, 106):
    other = mixture.sample(N, np.random.default_rng(seed))
    other_weights = np.bincount(mixture.responsibilities(other).argmax(1), minlength=3) / N
    floors.append((energy_distance(other, data), sliced_wasserstein(other, data, np.random.default_rng(0)),
                   np.abs(other_weights - mixture.weights).max()))
floor = np.median(np.array(floors), axis=0)
print(f"\ndistance to {N} fresh data points ({N} samples each)")
print(f"{'sampler':<14}{'steps':>6}{'energy dist':>13}{'sliced W2':>11}{'max |mode weight err|':>23}")
print(f"{'data vs data':<14}{'-':>6}{floor[0]:>13.4f}{floor[1]:>11.4f}{floor[2]:>23.3f}   (median of 5 draws)")
for (kind, steps), (e, sw, w) in results.items():
    print(f"{kind:<14}{steps:>6}{e:>13.4f}{sw:>11.4f}{w:>23.3f}")

# %% [markdown]
# ## What we demonstrated

# %%
few = STEP_COUNTS[2]
for kind in kinds:
    for steps in STEP_COUNTS[:2]:
        assert results[kind, steps][0] < 3 * floor[0] + 1e-3, f"{kind} with {steps} steps matches the data"
assert results["DPM-Solver++", few][0] < results["DDIM", few][0] < results["DDPM", few][0], \
    f"with {few} steps: DPM-Solver++ beats DDIM, which beats DDPM"
assert np.allclose(sample("DDIM", 20, 50, seed=5)[0], sample("DDIM", 20, 50, seed=5)[0]), "DDIM is deterministic"
print("all checks passed")
