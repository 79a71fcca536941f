# %% [markdown]
# # Lesson 02 — Reverse diffusion with an exact denoiser
#
# **What you will see.** Points of pure noise flowing into a three-mode 2-D data
# distribution: their trajectories under DDPM (stochastic) and DDIM (deterministic), an
# animation of the whole cloud, and a side-by-side of DDPM, DDIM and DPM-Solver++ at 1000,
# 50 and 10 steps, with three measures of how far each result is from the data, each given
# as mean +- spread over several seeds beside its "data vs data" noise floor.
#
# **Why it matters.** A trained network only *approximates* E[eps | x_t]. Here the data is a
# mixture of Gaussians, whose E[eps | x_t] is known in closed form
# (`tinydiff.diffusion.GaussianMixture`), so the denoiser is perfect and every error you see
# belongs to the *sampler*: how it discretises the reverse process, how many steps it takes,
# and whether it injects noise. That is the cleanest way to compare samplers.
#
# Run: `python lessons/02_reverse_with_an_exact_denoiser.py [--out DIR] [--fast]`. Measured
# on a quiet 2-core machine (nothing else running): 55 s; `--fast` 6 s. Other jobs on the cores slow it
# several times (2 min 26 s at load average 7.6). The numbers quoted in the text are
# the full run's.

# %%
import os

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np

from tinydiff.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    example_mixture_2d,
)
from tinydiff.metrics import energy_distance
from tinydiff.viz import (
    figure_to_array,
    new_figure,
    plot_points,
    plot_trajectories,
    save_figure,
    write_gif,
)

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md.
parser = LessonParser("02_reverse_with_an_exact_denoiser", "Lesson 02: reverse diffusion with an exact denoiser",
                      fast_help="fewer points and steps, for smoke tests")
args = parser.parse()
OUT = args.out
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
data = mixture.sample(N, np.random.default_rng(100))          # the data, drawn behind the trajectories


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
ode_gap = np.linalg.norm(ddim_path[-1] - dpm_path[-1], axis=1).mean()
sde_gap = np.linalg.norm(ddim_path[-1] - ddpm_path[-1], axis=1).mean()
print(f"mean distance between the end points from the same noise: DDIM ({STEP_COUNTS[1]} steps) vs "
      f"DPM-Solver++ ({STEP_COUNTS[2]} steps) {ode_gap:.2f}; DDIM vs DDPM {sde_gap:.2f}")

# %% [markdown]
# What to notice. DDIM and DPM-Solver++ solve the same probability-flow ODE (DDIM as an ODE:
# Song et al. 2021, sec. 4.3; DPM-Solver++: Lu et al. 2022), one with 50 first-order steps,
# the other with 10 second-order ones, so from the same starting noise they end close
# together: 0.07 apart on average in the full run (printed above), against 1.01 between
# DDIM's and DDPM's end points — DDPM's fresh noise at every step sends each point wherever
# chance takes it, often to another mode.

# %% [markdown]
# ## The whole cloud, step by step (animated GIF)
# DDIM with 50 steps on 1500 points (10 steps on 500 with `--fast`), saved as a GIF and as
# five of its frames side by side.

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
# What to notice. For most of the run the cloud hardly changes: the signal is buried under
# noise and the denoiser can only nudge points towards the mixture's overall mean. The three
# modes appear only in the last quarter of the steps, once the signal-to-noise ratio climbs
# past 1: the linear schedule crosses SNR = 1 at t = 259 (lesson 01), which this run reaches
# after step 37 of 50 (the frames show steps 35 and 42 either side of it). That is one reason
# schedules that spend more steps at moderate SNR (cosine) sample better.

# %% [markdown]
# ## DDPM vs DDIM vs DPM-Solver++ at 1000, 50 and 10 steps
# How far are the samples from the data? Three measures, each a number that two draws of the
# data itself would also produce by chance:
#
# - the **energy distance** (Szekely & Rizzo 2013, eq. 1, halved) between the samples and a
#   fresh draw of the data. We use its *unbiased* estimate (`unbiased=True`, a U-statistic):
#   its average over repeated draws is the true distance, 0 when the sampler is exact. The
#   plain V-statistic (every pair counted, each point's zero distance to itself included) is
#   biased upwards by about E|X - X'| / N: two draws of the same data score about 0.0005 at
#   N = 3000, not 0 (printed below). This is why an earlier version of this lesson showed
#   1000-step samplers *below* its "data vs data" floor: that floor was the median of 5 draws,
#   each sampler one draw, and single draws scatter by as much as the floor itself.
# - the share of samples in the data's **least likely 1%**: the region where the exact density
#   p(x) (`mixture.log_prob`) is below the level that 1% of the data falls under. Exact
#   samples put 1% there, up to chance; stragglers between the modes put more.
# - the largest error of a **mode's weight** (0.5 / 0.3 / 0.2), each sample counted in its most
#   likely mode.
#
# Every number is a mean +- standard deviation over several seeds; each seed draws new
# starting noise and a new set of data to compare with. The first row, "data vs data", puts
# an independent draw of the data in the sampler's place: the noise floor. A sampler is only
# shown to differ from the data where its mean is further from the floor than a few of these
# standard deviations.

# %%
SEEDS = range(3) if args.fast else range(5)
kinds = ("DDPM", "DDIM", "DPM-Solver++")
big = mixture.sample(200_000, np.random.default_rng(99))
low_level = np.quantile(mixture.log_prob(big), 0.01)  # 1% of the data has log p below this


def measures(x, reference):
    """(unbiased energy distance, share in the least likely 1%, max mode weight error) of x (N, 2)."""
    weights = np.bincount(mixture.responsibilities(x).argmax(1), minlength=3) / len(x)
    return (energy_distance(x, reference, unbiased=True), np.mean(mixture.log_prob(x) < low_level),
            np.abs(weights - mixture.weights).max())


runs = {("data vs data", 0): []}
runs.update({(kind, steps): [] for kind in kinds for steps in STEP_COUNTS})
shown = {}
biased_floor = []
for seed in SEEDS:
    reference = mixture.sample(N, np.random.default_rng(100 + seed))
    other = mixture.sample(N, np.random.default_rng(200 + seed))
    runs["data vs data", 0].append(measures(other, reference))
    biased_floor.append(energy_distance(other, reference))
    for kind in kinds:
        for steps in STEP_COUNTS:
            x, _, _ = sample(kind, steps, N, seed=seed)
            runs[kind, steps].append(measures(x, reference))
            if seed == SEEDS[0]:
                shown[kind, steps] = x
mean = {key: np.mean(v, axis=0) for key, v in runs.items()}
spread = {key: np.std(v, axis=0, ddof=1) for key, v in runs.items()}

print(f"\n{N} samples against {N} fresh data points; mean +- sd over {len(SEEDS)} seeds")
print(f"{'sampler':<14}{'steps':>6}{'energy (unbiased)':>22}{'in least likely 1%':>22}{'max mode weight err':>22}")
for (kind, steps), m in mean.items():
    sd = spread[kind, steps]
    print(f"{kind:<14}{steps or '-':>6}{m[0]:>13.4f} +- {sd[0]:.4f}{100 * m[1]:>13.1f}% +- {100 * sd[1]:.1f}%"
          f"{m[2]:>14.3f} +- {sd[2]:.3f}")
print(f"the biased (V-statistic) energy distance of data vs data: {np.mean(biased_floor):.4f} +- "
      f"{np.std(biased_floor, ddof=1):.4f}; its bias E|X - X'| / N is about "
      f"{np.mean([np.linalg.norm(big[:N] - big[N:2 * N], axis=1).mean()]) / N:.4f}")

reference_0 = mixture.sample(N, np.random.default_rng(100 + SEEDS[0]))  # the data the shown samples met
fig, axes = new_figure(3, 3, panel_size=(3.3, 3.5))
for r, kind in enumerate(kinds):
    for c, steps in enumerate(STEP_COUNTS):
        x = shown[kind, steps]
        low = mixture.log_prob(x) < low_level
        plot_points(axes[r, c], reference_0, color="tab:blue", size=2, alpha=0.12)
        plot_points(axes[r, c], x[~low], color="tab:red", size=2, alpha=0.35)
        m, sd = mean[kind, steps], spread[kind, steps]
        plot_points(axes[r, c], x[low], color="black", size=4, alpha=0.8,
                    title=f"{kind}, {steps} steps\nenergy {m[0]:.4f} +- {sd[0]:.4f}\n"
                          f"in least likely 1%: {100 * m[1]:.1f}% +- {100 * sd[1]:.1f}%")
fig.suptitle(f"red: samples (seed {SEEDS[0]}); black: those in the data's least likely 1%; blue: data\n"
             f"numbers: mean +- sd over {len(SEEDS)} seeds; data vs data: energy {mean['data vs data', 0][0]:.4f} +- "
             f"{spread['data vs data', 0][0]:.4f}, least likely 1%: {100 * mean['data vs data', 0][1]:.1f}% +- "
             f"{100 * spread['data vs data', 0][1]:.1f}%")
print("saved", save_figure(fig, os.path.join(OUT, "samplers_side_by_side.png")))

# The same numbers against the step count: error bars are +- 1 sd over the seeds, the grey band
# the data-vs-data floor (mean +- 1 sd).
fig, axes = new_figure(1, 3, panel_size=(4.2, 3.4), squeeze=True)
names = ("energy distance (unbiased)", "% of samples in the data's least likely 1%", "max mode weight error")
for j, (ax, name) in enumerate(zip(axes, names)):
    scale = 100.0 if j == 1 else 1.0  # the share in percent, as in the table
    f_mean, f_sd = scale * mean["data vs data", 0][j], scale * spread["data vs data", 0][j]
    ax.axhspan(f_mean - f_sd, f_mean + f_sd, color="0.85", label="data vs data (mean +- sd)")
    ax.axhline(f_mean, color="0.5", lw=1)
    for i, kind in enumerate(kinds):
        offset = 1.0 + 0.06 * (i - 1)  # nudge the three samplers apart so their bars do not overlap
        ax.errorbar(np.array(STEP_COUNTS) * offset, [scale * mean[kind, st][j] for st in STEP_COUNTS],
                    yerr=[scale * spread[kind, st][j] for st in STEP_COUNTS], marker="o", capsize=3, label=kind)
    ax.set_xscale("log")
    ax.set_xticks(STEP_COUNTS, [str(st) for st in STEP_COUNTS])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps")
    ax.set_title(name, fontsize="medium")
    ax.grid(alpha=0.3)
axes[0].legend(fontsize="small")
fig.suptitle(f"{N} samples vs {N} fresh data points: mean +- sd over {len(SEEDS)} seeds\n"
             "grey: the data-vs-data floor, where an exact sampler lands (below it in the middle panel: too few "
             "samples in the tails)")
print("saved", save_figure(fig, os.path.join(OUT, "samplers_over_seeds.png")))

# %% [markdown]
# What to notice (numbers from the full run, printed above; `--fast` uses 600 points and
# 200 / 20 / 5 steps, and its spreads are wider).
#
# - **The floor.** Data vs data scores -0.0001 +- 0.0002 in unbiased energy distance: 0 up to
#   chance, as it must. The biased estimate of the same pairs is 0.0005 +- 0.0002, which is
#   just its bias E|X - X'| / N. Of the fresh data, 0.9% +- 0.2% lands in the least likely 1%.
# - **1000 steps.** All three samplers are within about one standard error of the floor on every
#   measure (energy 0.0000 to 0.0002, 0.9% in the least likely 1%): with an exact denoiser and
#   small steps, sampling is exact, and these measures cannot tell the samples from data.
# - **50 steps.** DDIM and DPM-Solver++ are still at the floor. DDPM is not: energy
#   0.0007 +- 0.0003, about 5 standard errors above the floor, and only 0.4% +- 0.1% of its
#   samples in the least likely 1%: its modes came out too narrow, with too few points in their
#   tails. Its Gaussian reverse step (Ho et al. 2020, eq. 6-7) is only right for small steps.
# - **10 steps.** All three separate from the data and from each other: energy
#   0.0087 +- 0.0014 (DDPM), 0.0047 +- 0.0009 (DDIM), 0.0024 +- 0.0004 (DPM-Solver++), and
#   5.4%, 4.6% and 3.2% of the samples in the least likely 1% — the black stragglers between
#   the modes in the side-by-side figure, points that had too few steps to commit to one mode.
#   The largest error of a mode's weight is 0.050 for DDPM, 0.023 for DDIM and 0.012 for
#   DPM-Solver++, against the floor's 0.007 +- 0.004. DPM-Solver++'s
#   second-order multistep update (Lu et al. 2022, Algorithm 2) makes the smallest error of the three.
# - Look at the 10-step panels again: besides the stragglers, each mode's core is *narrower*
#   than the data's (blue shows around the red). No single number here says everything; the
#   figure and the three measures together do.
#
# A note for readers of diffusers: its DDIMScheduler steps from t to t - T // n whatever the
# spacing, which for `linspace` (or `trailing` when n does not divide T) is not the next
# timestep of its own schedule. tinydiff always steps to the next entry of `timesteps`; the two
# agree for `leading` spacing and for the trailing 1000/50/10 steps used here.
# %% [markdown]
# ## What we demonstrated

# %%
def apart(a, b, j):
    """How many standard errors of the difference separate the means of runs a and b in measure j."""
    se = np.sqrt((spread[a][j] ** 2 + spread[b][j] ** 2) / len(SEEDS))
    return (mean[a][j] - mean[b][j]) / se


FLOOR = ("data vs data", 0)
few, many = STEP_COUNTS[2], STEP_COUNTS[0]
print("standard errors from the floor (energy, least likely 1%):")
for kind in kinds:
    print(f"{kind:<14}", "  ".join(f"{st} steps: {apart((kind, st), FLOOR, 0):+5.1f} "
                                   f"{apart((kind, st), FLOOR, 1):+5.1f}" for st in STEP_COUNTS))
assert abs(mean[FLOOR][0]) < 3 * spread[FLOOR][0] / np.sqrt(len(SEEDS)), \
    "the unbiased energy distance of data vs data is 0 up to chance"
assert np.mean(biased_floor) > 3 * np.std(biased_floor, ddof=1) / np.sqrt(len(SEEDS)), \
    "the biased (V-statistic) one is clearly above 0 for the same pairs"
for kind in kinds:
    assert abs(apart((kind, many), FLOOR, 0)) < 3 and abs(apart((kind, many), FLOOR, 1)) < 3, \
        f"{kind} with {many} steps cannot be told from the data"
    assert apart((kind, few), FLOOR, 0) > 4 and apart((kind, few), FLOOR, 1) > 4, \
        f"{kind} with {few} steps is measurably off, and leaves stragglers in the least likely 1%"
for j in (0, 1):
    assert mean["DPM-Solver++", few][j] < mean["DDIM", few][j] < mean["DDPM", few][j], \
        f"with {few} steps: DPM-Solver++ beats DDIM, which beats DDPM"
assert np.allclose(sample("DDIM", 20, 50, seed=5)[0], sample("DDIM", 20, 50, seed=5)[0]), "DDIM is deterministic"
assert ode_gap < 0.3 * sde_gap, "DDIM and DPM-Solver++ follow one ODE from the same noise; DDPM goes elsewhere"
print("all checks passed")
