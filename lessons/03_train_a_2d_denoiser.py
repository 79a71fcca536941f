# %% [markdown]
# # Lesson 03 — Train a denoiser on 2-D data
#
# **What you will see.** A small MLP learns to predict the noise in noised points of a
# Swiss roll, in about a minute on a laptop CPU: its loss curve (overall and per noise level),
# the *denoising field* it learned — an arrow from every point x_t of a grid to where the
# network thinks the clean point is — at four noise levels, and samples drawn with DDPM and
# DDIM next to the data, with a distance that says how close they are.
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
# Run: `python lessons/03_train_a_2d_denoiser.py [--out DIR] [--fast]`

# %%
import argparse
import os
import time

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/__init__.py)
import numpy as np

from tinydiff.data import swiss_roll
from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, epsilon_to_x0
from tinydiff.metrics import energy_distance, sliced_wasserstein
from tinydiff.models import MLPDenoiser
from tinydiff.nn import mse_loss
from tinydiff.pipelines import TrainConfig, Trainer, sample
from tinydiff.pipelines.data_sources import ToyPoints
from tinydiff.viz import new_figure, plot_curves, plot_points, save_figure

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md. In a notebook, where flags cannot be
# passed, TINYDIFF_LESSON_FAST=1 and TINYDIFF_LESSON_OUT=DIR (figures in DIR/<lesson>) stand in for them.
parser = argparse.ArgumentParser(description="Lesson 03: train a 2-D denoiser")
parser.add_argument("--out", help="folder for the figures (and the trained model, in training_run/final)",
                    default=os.path.join(os.environ.get("TINYDIFF_LESSON_OUT", "outputs"), "03_train_a_2d_denoiser"))
parser.add_argument("--fast", action="store_true", default=os.environ.get("TINYDIFF_LESSON_FAST") == "1",
                    help="a few hundred training steps, for smoke tests (or TINYDIFF_LESSON_FAST=1)")
args, _ = parser.parse_known_args()  # tolerate the extra arguments a notebook kernel passes
OUT = args.out
os.makedirs(OUT, exist_ok=True)
print(f"figures go to {os.path.abspath(OUT)}")
SEED = 0
STEPS = 600 if args.fast else 8000          # about 5 ms per step of 256 points on 2 cores
N = 800 if args.fast else 2000              # points per sample set
DDPM_STEPS = 200 if args.fast else 1000

# %% [markdown]
# ## Data, network, noise schedule
# The Swiss roll is scaled so that each coordinate has variance 1 on average, like the noise
# the forward process adds. The network is `MLPDenoiser`: the point and a sinusoidal embedding
# of t go in, a 2-vector (its guess of eps) comes out, through three residual hidden layers of
# 128 units (about 60 000 parameters). The schedule is DDPM's linear one with T = 1000 steps;
# `timestep_spacing="trailing"` makes samplers start at t = 999, as in lesson 02.
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
# Right: the loss at each noise level t on fresh points. Where t is large, x_t is almost pure
# noise, so eps ≈ x_t is easy to predict and the loss goes to 0. Where t is small, the noise
# is a tiny shift of a point of the roll. At t = 0 (noise std 0.01) it is thinner than the
# roll itself, so a noised point looks just like another data point and eps cannot be
# predicted at all: the loss is 1, the variance of eps, for any network. At middle t the
# noise *across* the roll shows (the point sits off the roll) but the noise *along* it does
# not: about half of it stays unpredictable. Averaged over t, that irreducible error is the
# floor of the curve on the left — a low loss is not zero loss.

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
#
# What to look for. At small t, x0_hat lands back on the roll (bottom left): the network
# removes the noise. On the grid, far from the roll at t = 10, the arrows point the right way
# but are far too short: the true x0_hat there is on the roll, about 1 away, which needs a
# predicted |eps| near 1 / sqrt(1 - alpha_bar) = 22, while training never showed the network
# an eps much beyond 4 — no noised point lands that far from the data at t = 10. A network
# knows the field only where the noised data goes, which is also the only place sampling
# visits. As t grows the network knows less about where x_0 was: x0_hat becomes an average,
# first of nearby arms of the spiral, and at large t the centre of the whole data set.

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
# ## Samples against the data
# Both samplers start from the same N(0, I) points. DDPM takes 1000 stochastic steps, DDIM 50
# deterministic ones (Song et al. 2021) — the same network serves both. Left: the data; next
# to it the untrained network sampled with DDIM, which is what "not learned" looks like: its
# eps is wrong, and each step's estimate x0_hat divides by sqrt(alpha_bar), which is 0.006 at
# t = 999, so the error is magnified a hundredfold and the points fly far off.
#
# Distances to a fresh draw of the data (lower is better): the energy distance (Szekely &
# Rizzo 2013) and the sliced Wasserstein-2 distance. The first row of the table is the floor:
# two independent draws of the data itself differ by that much just by chance.

# %%
def ddim():
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                         timestep_spacing="trailing")


samples = {
    "untrained, DDIM 50 steps": sample(untrained, ddim(), (N, 2), np.random.default_rng(1), 50),
    f"DDPM {DDPM_STEPS} steps": sample(model, scheduler, (N, 2), np.random.default_rng(1), DDPM_STEPS),
    "DDIM 50 steps": sample(model, ddim(), (N, 2), np.random.default_rng(1), 50),
}
fig, axes = new_figure(1, 4, panel_size=(3.6, 4.3), squeeze=True)
plot_points(axes[0], data, color="tab:blue", size=2, title=f"the data: {N} fresh points")
for ax, (name, x) in zip(axes[1:], samples.items()):
    reach = max(3.0, float(np.ceil(np.abs(x).max() * 1.05)))  # widen the axes if samples fly off
    plot_points(ax, x, color="tab:red", size=2, limits=(-reach, reach),
                title=name + ("" if reach == 3.0 else f"\n(note the axes: +-{reach:.0f})"))
for ax in axes:
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
fig.suptitle("samples (red) from the network before and after training, and the data (blue)")
print("saved", save_figure(fig, os.path.join(OUT, "samples_vs_data.png")))

distances = {name: (energy_distance(x, data), sliced_wasserstein(x, data, np.random.default_rng(0)))
             for name, x in samples.items()}
floors = [(energy_distance(other, data), sliced_wasserstein(other, data, np.random.default_rng(0)))
          for other in (swiss_roll(N, np.random.default_rng(seed)) for seed in range(101, 106))]
floor = np.median(np.array(floors), axis=0)
print(f"\ndistance to {N} fresh data points ({N} samples each)")
print(f"{'':<26}{'energy dist':>13}{'sliced W2':>11}")
print(f"{'data vs data':<26}{floor[0]:>13.4f}{floor[1]:>11.4f}   (median of 5 draws)")
for name, (e, sw) in distances.items():
    print(f"{name:<26}{e:>13.4f}{sw:>11.4f}")

# %% [markdown]
# ## What we demonstrated

# %%
first, last = log[0][1], log[-1][1]
assert last < 0.6 * first, f"the training loss fell: {first:.3f} -> {last:.3f}"
assert loss_after < 0.6 * loss_before, f"the held-out loss fell: {loss_before:.3f} -> {loss_after:.3f}"
late = t_grid >= 200
assert np.all(per_t["trained (EMA weights)"][late] < 0.7 * per_t["untrained"][late]), "training helped where eps is predictable"
assert per_t["trained (EMA weights)"][0] > 0.8, "at t = 0 the noise is thinner than the roll: nobody predicts it"
bad = distances["untrained, DDIM 50 steps"][0]
for name in (f"DDPM {DDPM_STEPS} steps", "DDIM 50 steps"):
    assert distances[name][0] < 0.2 * bad, f"{name}: trained samples are far closer to the data than untrained ones"
    assert distances[name][1] < 0.5 * distances["untrained, DDIM 50 steps"][1], f"{name}: also in sliced W2"
if not args.fast:  # a minute of training gets within a few times the data-vs-data floor
    for name in (f"DDPM {DDPM_STEPS} steps", "DDIM 50 steps"):
        assert distances[name][0] < 10 * floor[0], f"{name}: samples are close to the data"
print("all checks passed")
