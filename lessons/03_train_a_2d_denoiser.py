# %% [markdown]
# # Lesson 03 — Train a denoiser on 2-D data
#
# **What you will see.** A small MLP learns to predict the noise in noised points of a
# Swiss roll: its loss curve (overall and per noise level), the *denoising field* it learned —
# an arrow from every point x_t of a grid to where the network thinks the clean point is — at
# four noise levels, and samples drawn with DDPM and DDIM next to the data, measured two ways:
# by distances between the sample and data sets, and by the share of samples that lie off the
# data, each with its spread over several seeds.
#
# **Why it matters.** Lesson 02 sampled with a perfect denoiser that exists only for Gaussian
# mixtures. For real data the denoiser must be *learned*, and the whole of training is one
# regression (Ho et al. 2020, Algorithm 1):
#
#     x_0 ~ data,  t ~ U{0..T-1},  eps ~ N(0, I)
#     x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps          (eq. 4)
#     loss = || eps - eps_theta(x_t, t) ||^2                            (eq. 14, "simple" loss)
#
# The minimiser of that loss is E[eps | x_t] — exactly the quantity the exact denoiser of
# lesson 02 computed — so a trained network plugs into the same samplers unchanged. In 2-D
# you can *see* what it learned, which no image model lets you do.
#
# Run: `python lessons/03_train_a_2d_denoiser.py [--out DIR] [--fast]`. Measured on a quiet 2-core machine (nothing else running):
# 79 s, of which training 8000 steps takes about 36 s (4.5 ms a step; the lesson prints its own
# time); `--fast` 20 s. Other jobs slow it a lot: 2 min 43 s at load average ~4, 9 min at 6-7. The numbers
# quoted in the text are the full run's.

# %%
import os
import time

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np

from tinydiff.data import swiss_roll
from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, epsilon_to_x0
from tinydiff.metrics import energy_distance, in_knn_manifold, knn_precision_recall, sliced_wasserstein
from tinydiff.models import MLPDenoiser
from tinydiff.nn import mse_loss
from tinydiff.pipelines import TrainConfig, Trainer, sample
from tinydiff.pipelines.data_sources import ToyPoints
from tinydiff.viz import new_figure, plot_curves, plot_points, save_figure

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md.
parser = LessonParser("03_train_a_2d_denoiser", "Lesson 03: train a 2-D denoiser",
                      fast_help="a few hundred training steps, for smoke tests")
args = parser.parse()
OUT = args.out
SEED = 0
STEPS = 600 if args.fast else 8000          # batches of 256 points; 4.5 ms a step measured on 2 cores
N = 800 if args.fast else 2000              # points per sample set
DDPM_STEPS = 100 if args.fast else 1000

# %% [markdown]
# ## Data, network, noise schedule
# The Swiss roll is scaled so that each coordinate has variance 1 on average, like the noise
# the forward process adds. The network is `MLPDenoiser`: the point and a sinusoidal embedding
# of t go in, a 2-vector (its guess of eps) comes out, through three residual hidden layers of
# 128 units (54 274 parameters, printed below). The schedule is DDPM's linear one with
# T = 1000 steps; `timestep_spacing="trailing"` makes samplers start at t = 999, as in lesson 02.
#
# We also build the *same network before training* (same seed, so the same initial weights):
# its samples are the baseline the trained model must beat.

# %%
def make_model():
    return MLPDenoiser(data_dim=2, hidden=128, num_blocks=3, time_embed_dim=32, rng=np.random.default_rng(SEED))


model, untrained = make_model(), make_model()
scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                          timestep_spacing="trailing")
data = swiss_roll(N, np.random.default_rng(100))              # fresh data to compare against
print(f"MLPDenoiser: {sum(p.data.size for p in model.parameters())} parameters")

# %% [markdown]
# ## One training step, looked at by hand
# `Trainer.batch(step)` returns everything step `step` trains on: noised points x_t, their
# timesteps t, and the target (the noise eps, for `prediction_type="epsilon"`). Batches are
# keyed by (seed, step), so a run can be resumed exactly. Before training, the network's
# guess is about as good as guessing 0: the loss is near E|eps|^2 / 2 = 1 per coordinate.

# %%
config = TrainConfig(steps=STEPS, batch_size=256, lr=2e-3, warmup_steps=min(200, STEPS // 4),
                     ema_decay=0.995, grad_clip=1.0, seed=SEED, checkpoint_every=STEPS, log_every=20)
trainer = Trainer(model, scheduler, ToyPoints(swiss_roll, config.batch_size, SEED), config,
                  os.path.join(OUT, "training_run"), progress=False)
x_t, t, _, target, _ = trainer.batch(0)
print(f"x_t {x_t.shape}, t {t.shape} in [{t.min()}, {t.max()}], target eps {target.shape}")
model.train()
loss, dloss = mse_loss(model(x_t, t), target)
print(f"loss of the untrained network on batch 0: {loss:.3f}")
model.zero_grad()
model.backward(dloss)  # the hand-written backward fills every parameter's .grad
print("gradient norm before clipping:",
      f"{np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in model.parameters())):.3f}")
held_out = list(range(10**6, 10**6 + 20))                     # batches training never sees
loss_before = trainer.evaluate(held_out)

# %% [markdown]
# ## Training
# `Trainer.run()` repeats that step: predict, loss, backward, clip the gradient norm to 1,
# AdamW with warm-up and a cosine learning-rate decay, and an exponential moving average
# (EMA) of the weights, which we sample with: it smooths out the last steps' noise. It writes
# a checkpoint and the final model (EMA weights) under `training_run/`.

# %%
start = time.perf_counter()
log = trainer.run()
seconds = time.perf_counter() - start
loss_after = trainer.evaluate(held_out)
print(f"{STEPS} steps in {seconds:.1f} s ({1e3 * seconds / STEPS:.1f} ms/step); "
      f"held-out loss {loss_before:.3f} -> {loss_after:.3f}")
trainer.ema.copy_to()  # from here on the model holds the averaged weights
model.eval()

# %% [markdown]
# ## The loss curve, and why it stops falling
# Left: the training loss (mean over 20 steps). It falls fast, then flattens well above 0.
# Right: the loss at each noise level t on fresh points (the table printed below).

# %%
def loss_per_timestep(net, timesteps, n=2000):
    rng = np.random.default_rng(5)
    out = []
    for step in timesteps:
        x0 = swiss_roll(n, rng)
        eps = rng.standard_normal(x0.shape).astype(np.float32)
        xt = scheduler.add_noise(x0, eps, np.full(n, step)).astype(np.float32)
        out.append(float(np.mean((net(xt, np.full(n, step)) - eps) ** 2)))
    return np.array(out)


t_grid = np.array([0, 5, 10, 20, 40, 70, 100, 150, 200, 300, 400, 500, 650, 800, 999])
untrained.eval()
per_t = {"trained (EMA weights)": loss_per_timestep(model, t_grid),
         "untrained": loss_per_timestep(untrained, t_grid)}
fig, axes = new_figure(1, 2, panel_size=(5.0, 3.6), squeeze=True)
steps_logged, losses_logged = np.array(log).T
plot_curves(axes[0], steps_logged, {"training loss (mean of 20 steps)": losses_logged}, "training step",
            "MSE between eps and its prediction", title="training loss", logy=True)
plot_curves(axes[1], t_grid, per_t, "timestep t (noise level grows to the right)",
            "MSE between eps and its prediction", title="loss per noise level, fresh points", logy=True)
print("saved", save_figure(fig, os.path.join(OUT, "loss_curves.png")))
print("t:        ", " ".join(f"{v:6d}" for v in t_grid))
for name, values in per_t.items():
    print(f"{name[:10]:<10}", " ".join(f"{v:6.3f}" for v in values))

# %% [markdown]
# What to notice. Where t is large, x_t is almost pure noise, so eps ≈ x_t is easy to predict
# and the loss goes to 0. Where t is small, the noise is a tiny shift of a point of the roll.
# At t = 0 (noise std 0.01) it is thinner than the roll itself, so a noised point looks just
# like another data point and eps cannot be predicted at all: the loss is 1, the variance of
# eps, for any network. At middle t the noise *across* the roll shows (the point sits off the
# roll) but the noise *along* it does not: that part of eps, one of its two coordinates on
# average, stays unpredictable, so the loss cannot fall much below 0.5 there. The printed
# table has 0.57 to 0.72 for t = 40 to 200, highest near t = 100, where the noise
# (std sqrt(1 - alpha_bar) = 0.32) is a third of the gap between neighbouring arms (about
# 0.9) and a noised point may have come from either arm. Averaged over t, that irreducible error is the
# floor of the curve on the left (about 0.24) — a low loss is not zero loss.

# %% [markdown]
# ## The learned denoising field
# For a point x_t at noise level t, the network's eps gives its estimate of the clean point,
#
#     x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_bar_t)     (eq. 4 solved for x_0)
#
# and x0_hat - x_t is, up to a positive factor, the score grad log p_t(x_t): by Tweedie's
# formula sqrt(alpha_bar) x0_hat - x_t = (1 - alpha_bar) grad log p_t(x_t).
#
# Top row: that direction on a grid (arrows rescaled per panel so that they can be read; the
# factor is in the title). Bottom row: noised data points x_t (grey) and the network's x0_hat
# for each (red), at the same noise levels, at true scale.

# %%
field_t = (10, 50, 150, 400)
g = np.linspace(-2.7, 2.7, 19)
grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2).astype(np.float32)  # (19, 19, 2) -> (361, 2)
rng_field = np.random.default_rng(9)
x0_field = swiss_roll(600, rng_field)
eps_field = rng_field.standard_normal(x0_field.shape).astype(np.float32)
fig, axes = new_figure(2, len(field_t), panel_size=(4.0, 4.0))
for col, step in enumerate(field_t):
    alpha_bar = scheduler.alphas_cumprod[step]
    ax = axes[0, col]
    x0_hat = epsilon_to_x0(model(grid, np.full(len(grid), step)), grid, alpha_bar)
    arrows = x0_hat - grid
    # draw the 90th-percentile arrow as long as the grid spacing
    factor = (g[1] - g[0]) / np.quantile(np.linalg.norm(arrows, axis=1), 0.9)
    plot_points(ax, data, color="tab:blue", size=2, alpha=0.25)
    ax.quiver(grid[:, 0], grid[:, 1], factor * arrows[:, 0], factor * arrows[:, 1], angles="xy",
              scale_units="xy", scale=1.0, width=0.005, color="tab:red")
    ax.set_title(f"t = {step}, alpha_bar = {alpha_bar:.2f}\nred: x0_hat - x_t drawn {factor:.2g} x true length",
                 fontsize="medium")
    ax = axes[1, col]
    noised = scheduler.add_noise(x0_field, eps_field, np.full(len(x0_field), step)).astype(np.float32)
    denoised = epsilon_to_x0(model(noised, np.full(len(noised), step)), noised, alpha_bar)
    plot_points(ax, noised, color="0.55", size=3, alpha=0.5, label="x_t: noised data")
    plot_points(ax, denoised, color="tab:red", size=3, alpha=0.6, label="x0_hat: the network's guess",
                title=f"t = {step}: one step from x_t to x0_hat")
    ax.legend(loc="lower right", fontsize="small", markerscale=3)
for ax in axes.ravel():
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
fig.suptitle("the learned denoising field. Top: its direction on a grid (blue: the data). "
             "Bottom: where it sends noised data points")
print("saved", save_figure(fig, os.path.join(OUT, "denoising_field.png")))

# %% [markdown]
# What to notice. At small t, x0_hat lands back on the roll (bottom left): the network
# removes the noise. On the grid, far from the roll at t = 10, the arrows point the right way
# but are far too short: the true x0_hat there is on the roll, about 1 away, which needs a
# predicted |eps| near 1 / sqrt(1 - alpha_bar) = 22, while training never showed the network
# an eps much beyond 4 — no noised point lands that far from the data at t = 10. A network
# knows the field only where the noised data goes, which is also the only place sampling
# visits. As t grows the network knows less about where x_0 was: x0_hat becomes an average,
# first of nearby arms of the spiral, and at large t the centre of the whole data set.

# %% [markdown]
# ## Samples against the data
# Every sampler starts from the same N(0, I) points. DDPM takes 1000 stochastic steps, DDIM 50
# deterministic ones (Song et al. 2021, eq. 12 with sigma = 0) — the same network serves both
# — and, as a control, DDIM also takes 1000 steps. Left: a fresh draw of the data; next to it
# the untrained network sampled with DDIM, which is what "not learned" looks like: its eps is
# wrong, and each step's estimate x0_hat divides by sqrt(alpha_bar), which is 0.006 at
# t = 999, so the error is magnified a hundredfold and the points fly far off.
#
# How close are the samples to the data? Two kinds of measure, each as a mean +- sd over
# several seeds (each seed: new starting noise and a new draw of the data to compare with),
# beside the "data vs data" floor — what a second, independent draw of the data scores:
#
# - distances between the two sets, which average over all points: the energy distance
#   (Szekely & Rizzo 2013, unbiased estimate, 0 on average for equal laws; see lesson 02) and
#   the sliced Wasserstein-2 distance (biased upwards by the finite samples, so the floor is
#   not 0);
# - a per-point question: is the sample *on* the data? k-NN precision (Kynkaanniemi et al.
#   2019) puts a ball around every data point reaching to its 3rd nearest neighbour; a sample
#   outside all the balls is **off the data**. Recall asks the reverse: the share of the data
#   that lies inside the balls around the samples (low recall: parts of the roll missed).

# %%
SEEDS = range(2) if args.fast else range(4)


def ddim():
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                         timestep_spacing="trailing")


def measures(x, reference):
    """(energy distance, sliced W2, precision, recall) of samples x (N, 2) against reference data."""
    return (energy_distance(x, reference, unbiased=True), sliced_wasserstein(x, reference, np.random.default_rng(0)),
            *knn_precision_recall(x, reference, k=3))


ddpm_name, ddim_name, ddim_long = f"DDPM {DDPM_STEPS} steps", "DDIM 50 steps", f"DDIM {DDPM_STEPS} steps"
samplers = {ddpm_name: (scheduler, DDPM_STEPS), ddim_name: (ddim(), 50)}  # all run on the trained network
if not args.fast:  # the control: is it the step count or the determinism?
    samplers[ddim_long] = (ddim(), DDPM_STEPS)
runs = {"data vs data": [], "untrained, DDIM 50 steps": []}
runs.update({name: [] for name in samplers})
shown = {}
for seed in SEEDS:
    reference = swiss_roll(N, np.random.default_rng(100 + seed))
    drawn = {"data vs data": swiss_roll(N, np.random.default_rng(200 + seed)),
             "untrained, DDIM 50 steps": sample(untrained, ddim(), (N, 2), np.random.default_rng(1 + seed), 50)}
    drawn.update({name: sample(model, sched, (N, 2), np.random.default_rng(1 + seed), steps)
                  for name, (sched, steps) in samplers.items()})
    for name, x in drawn.items():
        runs[name].append(measures(x, reference))
    if seed == SEEDS[0]:
        shown, shown_reference = drawn, reference
mean = {name: np.mean(v, axis=0) for name, v in runs.items()}
spread = {name: np.std(v, axis=0, ddof=1) for name, v in runs.items()}

print(f"\n{N} samples against {N} fresh data points; mean +- sd over {len(SEEDS)} seeds")
print(f"{'':<26}{'energy dist':>20}{'sliced W2':>18}{'off the data':>18}{'recall':>16}")
for name, m in mean.items():
    sd = spread[name]
    print(f"{name:<26}{m[0]:>11.4f} +- {sd[0]:.4f}{m[1]:>9.4f} +- {sd[1]:.4f}"
          f"{100 * (1 - m[2]):>9.1f}% +- {100 * sd[2]:.1f}%{m[3]:>9.3f} +- {sd[3]:.3f}")

panels = ["data vs data", "untrained, DDIM 50 steps", *samplers]
fig, axes = new_figure(1, len(panels), panel_size=(3.6, 4.6), squeeze=True)
for ax, name in zip(axes, panels):
    x = shown[name]
    reach = max(3.0, float(np.ceil(np.abs(x).max() * 1.05)))  # widen the axes if samples fly off
    color = "tab:blue" if name == "data vs data" else "tab:red"
    off = ~in_knn_manifold(x, shown_reference, k=3)
    plot_points(ax, x[~off], color=color, size=2, limits=(-reach, reach))
    plot_points(ax, x[off], color="black", size=3, alpha=0.8, limits=(-reach, reach),
                title=("a fresh draw of the data" if name == "data vs data" else name)
                + f"\noff the data: {100 * (1 - mean[name][2]):.1f}% +- {100 * spread[name][2]:.1f}%"
                + f"\nenergy {mean[name][0]:.4f} +- {spread[name][0]:.4f}"
                + ("" if reach == 3.0 else f"\n(note the axes: +-{reach:.0f})"))
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
fig.suptitle(f"samples (red) from the network before and after training, and fresh data (blue); black: points off the "
             f"data (outside every data point's 3-NN ball)\nseed {SEEDS[0]} shown; numbers: mean +- sd over "
             f"{len(SEEDS)} seeds")
print("saved", save_figure(fig, os.path.join(OUT, "samples_vs_data.png")))

names = ["data vs data", *samplers]
off_mean = {n: 100 * (1 - mean[n][2]) for n in names}  # % of samples off the data = 100 (1 - precision)
bars = {"energy distance (unbiased; lower is better)": ([mean[n][0] for n in names], [spread[n][0] for n in names]),
        "off the data (%; lower is better)": ([off_mean[n] for n in names], [100 * spread[n][2] for n in names]),
        "recall: share of the data covered (low: data missed)": ([mean[n][3] for n in names],
                                                                 [spread[n][3] for n in names])}
fig, axes = new_figure(1, 3, panel_size=(4.4, 3.4), squeeze=True)
for ax, (label, (values, errors)) in zip(axes, bars.items()):
    colors = ["0.6", "tab:red", "tab:orange", "tab:olive"][:len(names)]
    if label.startswith("recall"):  # all near 1: dots on a zoomed axis show the differences, bars would not
        for i, (v, e, c) in enumerate(zip(values, errors, colors)):
            ax.errorbar(i, v, yerr=e, fmt="o", color=c, capsize=4, markersize=7)
        ax.set_xlim(-0.6, len(names) - 0.4)
    else:
        ax.bar(range(len(names)), values, yerr=errors, capsize=4, color=colors)
    ax.set_xticks(range(len(names)), [n.replace(" steps", "") for n in names], fontsize="small")
    ax.set_title(f"{label}\nmean +- sd over {len(SEEDS)} seeds", fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    if not label.startswith("recall"):
        ax.axhline(0.0, color="0.3", lw=0.8)
fig.suptitle("the trained samplers against the data-vs-data floor (grey)")
print("saved", save_figure(fig, os.path.join(OUT, "sample_quality_over_seeds.png")))

# %% [markdown]
# What to notice (numbers of the full run, printed above; `--fast` trains 600 steps and its
# samples are far rougher).
#
# - **The distances cannot tell the trained samplers apart.** Energy distance: data vs data
#   -0.0002 +- 0.0002, DDPM 0.0003 +- 0.0007, DDIM 50 steps 0.0002 +- 0.0006, DDIM 1000 steps
#   0.0000 +- 0.0005: all at the floor, with spreads over seeds as large as the values. Sliced
#   W2 agrees (0.042 +- 0.006 for data vs data, 0.046 to 0.053 +- 0.013 for the samplers). An
#   earlier version of this lesson ranked "DDIM 50" above "DDPM 1000" from one seed each
#   (0.0005 against 0.0015); that was chance.
# - **Off the data, they differ, as the eye says.** 12.7% +- 0.8% of DDIM's samples lie off the
#   data against 10.2% +- 0.7% of DDPM's — and 3.8% +- 0.5% for a fresh draw of the data, the
#   floor (a fresh point can fall just outside every ball). Both trained samplers are far above
#   the floor, and they fail differently: DDIM's black points are scattered *between* the arms,
#   DDPM's sit mostly along the arms' edges, which come out wider than the data's. A few
#   percent of the points moved a short way off the roll change an all-pairs average like the
#   energy distance by less than its noise; counting them point by point does not.
# - **It is the sampler's determinism, not its step count.** DDIM with 1000 steps leaves as many
#   points off the data as DDIM with 50 (12.7% +- 0.7%). The likely reason: DDPM adds fresh
#   noise at every step (Ho et al. 2020, Algorithm 2), so a point pushed off the roll by an
#   error of the learned denoiser is noised again and pulled back by later, more accurate
#   steps, while DDIM's ODE (eta = 0) carries every error to the end (Karras et al. 2022, sec. 4,
#   on stochastic sampling correcting earlier errors).
# - **Recall.** DDPM 1000 (0.972 +- 0.006) and DDIM 1000 (0.969 +- 0.008) cover the roll as
#   well as a fresh draw of the data does (0.962 +- 0.003); DDPM's wider arms even raise it.
#   DDIM 50 covers less (0.935 +- 0.008): its arms come out thinner than the data's, so the
#   data at the arms' edges falls outside the samples' balls. Recall
#   alone can mislead: the untrained network's samples, scattered over hundreds of units, have
#   balls so wide that they cover the whole roll — recall 1.000 with 100% off the data. Read
#   precision and recall together, and look at the figure.
# %% [markdown]
# ## What we demonstrated
# Training lowered the loss wherever eps can be predicted, and not at t = 0 where it cannot;
# the trained network's samples are far closer to the data than the untrained one's. After the
# full 8000 steps, the distances put every trained sampler at the data-vs-data floor, while
# counting samples off the data shows what the eye sees: more strays with the deterministic
# DDIM than with DDPM, at 50 steps and at 1000 alike.

# %%
first, last = log[0][1], log[-1][1]
assert last < 0.6 * first, f"the training loss fell: {first:.3f} -> {last:.3f}"
assert loss_after < 0.6 * loss_before, f"the held-out loss fell: {loss_before:.3f} -> {loss_after:.3f}"
late = t_grid >= 200
assert np.all(per_t["trained (EMA weights)"][late] < 0.7 * per_t["untrained"][late]), "training helped where eps is predictable"
assert per_t["trained (EMA weights)"][0] > 0.8, "at t = 0 the noise is thinner than the roll: nobody predicts it"


def apart(a, b, j):
    """How many standard errors of the difference separate the means of runs a and b in measure j."""
    return (mean[a][j] - mean[b][j]) / np.sqrt((spread[a][j] ** 2 + spread[b][j] ** 2) / len(SEEDS))


bad = mean["untrained, DDIM 50 steps"]
for name in samplers:
    assert mean[name][0] < 0.2 * bad[0], f"{name}: trained samples are far closer to the data than untrained ones"
    assert mean[name][1] < 0.5 * bad[1], f"{name}: also in sliced W2"
    assert mean[name][2] > bad[2] + 0.1, f"{name}: and more of them lie on the data"
if not args.fast:  # 8000 steps of training: what the text above says
    print("standard errors from the floor (energy, precision):",
          {name: (round(float(apart(name, "data vs data", 0)), 1), round(float(apart(name, "data vs data", 2)), 1))
           for name in samplers})
    for name in samplers:
        assert abs(apart(name, "data vs data", 0)) < 3, f"{name}: the energy distance cannot tell it from the data"
        assert apart(name, "data vs data", 2) < -5, f"{name}: yet clearly more of its samples are off the data"
    assert apart(ddim_name, ddpm_name, 2) < -3, "DDIM leaves more samples off the data than DDPM"
    assert abs(apart(ddim_long, ddim_name, 2)) < 2, "and as many with 1000 steps as with 50"
print("all checks passed")
