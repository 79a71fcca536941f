# %% [markdown]
# # Lesson 01 — The forward process: how an image turns into noise
#
# **What you will see.** A small picture (drawn right here, nothing is downloaded) noised at
# several timesteps t under two noise schedules, the curves of alpha_bar and of the
# signal-to-noise ratio for every schedule tinydiff ships, and histograms of pixel values
# that slide into a standard normal as t grows.
#
# **Why it matters.** A diffusion model is trained on exactly these noised images. The
# forward process has no learned parameters: it is one line,
#
#     x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,    eps ~ N(0, I)
#
# (Ho et al. 2020, eq. 4), and the *schedule* — how fast alpha_bar falls from 1 to 0 — decides
# how much of training is spent on nearly clean images and how much on nearly pure noise.
# Because x_T is (almost) N(0, I) whatever the picture was, sampling can start from noise.
#
# Run: `python lessons/01_forward_noising.py [--out DIR] [--fast]`

# %%
import argparse
import os

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/__init__.py)
import numpy as np

from tinydiff.diffusion import BETA_SCHEDULES, DDPMScheduler
from tinydiff.viz import (
    new_figure,
    plot_curves,
    plot_histogram,
    plot_image_grid,
    save_figure,
    standard_normal_pdf,
)

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md. In a notebook, where flags cannot be
# passed, TINYDIFF_LESSON_FAST=1 and TINYDIFF_LESSON_OUT=DIR (figures in DIR/<lesson>) stand in for them.
parser = argparse.ArgumentParser(description="Lesson 01: forward noising")
parser.add_argument("--out", help="folder for the figures",
                    default=os.path.join(os.environ.get("TINYDIFF_LESSON_OUT", "outputs"), "01_forward_noising"))
parser.add_argument("--fast", action="store_true", default=os.environ.get("TINYDIFF_LESSON_FAST") == "1",
                    help="smaller image, for smoke tests (or TINYDIFF_LESSON_FAST=1)")
args, _ = parser.parse_known_args()  # tolerate the extra arguments a notebook kernel passes
OUT = args.out
os.makedirs(OUT, exist_ok=True)
print(f"figures go to {os.path.abspath(OUT)}")
rng = np.random.default_rng(0)


# %% [markdown]
# ## A picture to destroy
# A 64x64 scene made of simple shapes: a sky gradient, a sun, two hills and a house. Pixel
# values live in [-1, 1], the range diffusion models are trained on.

# %%
def draw_scene(size):
    """A colourful (H, W, 3) scene in [-1, 1]: sky, sun, hills and a house."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3))
    img[..., 0] = 0.35 + 0.3 * y            # sky: light blue at the top, paler lower down
    img[..., 1] = 0.6 + 0.25 * y
    img[..., 2] = 0.95 - 0.1 * y
    sun = (x - 0.78) ** 2 + (y - 0.2) ** 2 < 0.012
    img[sun] = [1.0, 0.85, 0.1]
    hill1 = y > 0.68 + 0.12 * np.cos(3.0 * x)
    hill2 = y > 0.78 + 0.08 * np.cos(4.0 * x + 2.0)
    img[hill1] = [0.25, 0.65, 0.2]
    img[hill2] = [0.1, 0.45, 0.15]
    wall = (x > 0.2) & (x < 0.45) & (y > 0.5) & (y < 0.75)
    img[wall] = [0.85, 0.2, 0.15]
    roof = (y > 0.35) & (y <= 0.5) & (np.abs(x - 0.325) < (y - 0.35) * 1.1)
    img[roof] = [0.45, 0.2, 0.1]
    door = (x > 0.3) & (x < 0.36) & (y > 0.62) & (y < 0.75)
    img[door] = [0.3, 0.15, 0.05]
    return img * 2.0 - 1.0  # [0, 1] -> [-1, 1]


size = 32 if args.fast else 64
x0 = draw_scene(size).transpose(2, 0, 1)[None]  # (H, W, 3) -> (1, 3, H, W), the layout models use
print(f"image: shape {x0.shape}, values in [{x0.min():.2f}, {x0.max():.2f}]")

# %% [markdown]
# ## Noising at several timesteps, two schedules
# `add_noise` jumps straight from x_0 to x_t — no need to apply t small steps. The same noise
# `eps` is used in every panel, so the only thing that changes along a row is alpha_bar_t.
# The linear schedule (Ho et al. 2020) destroys the picture quickly: by t = 250 little is
# left. The cosine schedule (Nichol & Dhariwal 2021) keeps it recognisable for longer,
# so fewer training steps are wasted on pure noise.

# %%
timesteps = [0, 50, 100, 250, 500, 750, 999]
schedules = {"linear": DDPMScheduler(beta_schedule="linear"),
             "cosine": DDPMScheduler(beta_schedule="squaredcos_cap_v2")}
eps = rng.standard_normal(x0.shape)
rows, labels = [], []
for name, sched in schedules.items():
    noisy = sched.add_noise(np.repeat(x0, len(timesteps), 0), np.repeat(eps, len(timesteps), 0),
                            np.array(timesteps))
    rows.append(list(noisy))
    labels.append(name)
fig, axes = new_figure(2, len(timesteps), panel_size=(1.7, 1.9))
plot_image_grid(axes, rows, row_labels=labels, col_labels=[f"t = {t}" for t in timesteps])
for c, t in enumerate(timesteps):
    for r, sched in enumerate(schedules.values()):
        axes[r, c].set_xlabel(f"alpha_bar = {sched.alphas_cumprod[t]:.3f}", fontsize="small")
fig.suptitle("x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps: rows linear and cosine (squaredcos_cap_v2)\n"
             "same eps in every panel; values outside [-1, 1] clipped for display")
print("saved", save_figure(fig, os.path.join(OUT, "noised_image_grid.png")))

# %% [markdown]
# ## alpha_bar and the signal-to-noise ratio of every schedule
# alpha_bar_t is the fraction of the *variance* of x_t that is signal; SNR_t = alpha_bar / (1 - alpha_bar).
# On a log scale the SNR shows what the alpha_bar plot hides: the linear schedule spends
# hundreds of steps at SNR below 1e-3, where the image is invisible. The zero-terminal-SNR
# rescaling (Lin et al. 2023) makes the last alpha_bar exactly 0, so the model also learns
# the truly pure-noise step it starts sampling from (its SNR of 0 cannot appear on a log axis,
# so that curve stops one step early).

# %%
t_axis = np.arange(1000)
all_schedules = {name: DDPMScheduler(beta_schedule=name) for name in BETA_SCHEDULES}
all_schedules["linear + zero terminal SNR"] = DDPMScheduler(beta_schedule="linear", rescale_betas_zero_snr=True)
styles = {"linear + zero terminal SNR": "--"}  # dashed: it hides under "linear" until the very end
fig, axes = new_figure(1, 2, panel_size=(5.2, 3.8), squeeze=True)
plot_curves(axes[0], t_axis, {k: s.alphas_cumprod for k, s in all_schedules.items()},
            xlabel="timestep t", ylabel="alpha_bar_t", title="alpha_bar: signal variance kept", styles=styles)
plot_curves(axes[1], t_axis, {k: s.snr for k, s in all_schedules.items()},
            xlabel="timestep t", ylabel="SNR_t (log scale)", title="signal-to-noise ratio", logy=True,
            legend_loc="lower left", styles=styles)
print("saved", save_figure(fig, os.path.join(OUT, "schedules_alpha_bar_snr.png")))

# %% [markdown]
# ## Pixel values converge to N(0, 1)
# At t = 0 the histogram shows the picture's few flat colours; as t grows the values spread
# and blur into the bell curve of N(0, 1) (black line). At t = 999 the pixel histogram is
# indistinguishable from it: the starting point of sampling.

# %%
hist_t = [0, 100, 300, 999]
linear = schedules["linear"]
fig, axes = new_figure(1, len(hist_t), panel_size=(3.2, 2.8), squeeze=True)
stats = {}
for ax, t in zip(axes, hist_t):
    xt = linear.add_noise(x0, eps, np.array([t]))
    stats[t] = (xt.mean(), xt.std())
    plot_histogram(ax, xt, label=f"pixels of x_{t}", reference=standard_normal_pdf, reference_label="N(0, 1)",
                   title=f"t = {t}: mean {xt.mean():+.2f}, std {xt.std():.2f}", xlabel="pixel value")
fig.suptitle("linear schedule: pixel values of x_t")
print("saved", save_figure(fig, os.path.join(OUT, "pixel_histograms.png")))

# %% [markdown]
# ## What we demonstrated

# %%
ab = linear.alphas_cumprod
x_T = linear.add_noise(x0, eps, np.array([999]))
corr = np.corrcoef(x_T.ravel(), x0.ravel())[0, 1]
print(f"t = 999: pixel mean {x_T.mean():+.4f}, std {x_T.std():.4f}, correlation with x_0 {corr:+.4f}")
assert abs(x_T.std() - 1.0) < 0.02, "the fully noised image's pixel std is within 2% of 1"
assert abs(x_T.mean()) < 0.05, "and its mean is near 0"
assert abs(corr) < 0.05, "x_T has (almost) forgotten the picture"
x_1 = linear.add_noise(x0, eps, np.array([0]))
assert np.abs(x_1 - x0).max() < 0.05, "at t = 0 the image is barely touched"
assert all(np.all(np.diff(s.alphas_cumprod) < 0) for s in all_schedules.values()), "alpha_bar always falls"
assert schedules["cosine"].alphas_cumprod[250] > ab[250], "cosine keeps more signal mid-way"
print("all checks passed")
