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
# Run: `python lessons/01_forward_noising.py [--out DIR] [--fast]`. Measured on a quiet 2-core machine (nothing else running):
# 3 s, full or `--fast`. The numbers
# quoted in the text are the full run's; `--fast` draws a 32x32 picture, which moves some of
# them in the second decimal.

# %%
import os

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
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

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md.
parser = LessonParser("01_forward_noising", "Lesson 01: forward noising",
                      fast_help="smaller image, for smoke tests")
args = parser.parse()
OUT = args.out
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
# `add_noise` jumps straight from x_0 to x_t (Ho et al. 2020, eq. 4) — no need to apply t small
# steps. The same noise `eps` is used in every panel, so the only thing that changes along a
# row is alpha_bar_t, written under each panel with SNR_t = alpha_bar_t / (1 - alpha_bar_t).
#
# Two numbers per panel measure how much of the picture is left: the correlation of x_t with
# x_0 pixel by pixel, and the same correlation after averaging 4x4 blocks of pixels — roughly
# what your eye does when it sees "a red patch" in the noise. Averaging 16 pixels divides the
# noise variance by 16 but keeps a flat region's colour, so the blocks keep the picture long
# after single pixels have lost most of it.

# %%
timesteps = [0, 50, 100, 250, 500, 750, 999]
schedules = {"linear": DDPMScheduler(beta_schedule="linear"),
             "cosine": DDPMScheduler(beta_schedule="squaredcos_cap_v2")}
eps = rng.standard_normal(x0.shape)


def block_means(img, k=4):
    """Average k x k blocks of pixels: (1, 3, H, W) -> (1, 3, H/k, W/k)."""
    b, c, h, w = img.shape
    return img.reshape(b, c, h // k, k, w // k, k).mean(axis=(3, 5))


def short(v):
    """alpha_bar and SNR span 1e-9 to 1e4: 1.2e-05 when small, three decimals in between, 9999 when large."""
    return f"{v:.1e}" if v < 0.01 else f"{v:.3f}" if v < 100 else f"{v:.0f}"


rows, labels, kept = [], [], {}
for name, sched in schedules.items():
    noisy = sched.add_noise(np.repeat(x0, len(timesteps), 0), np.repeat(eps, len(timesteps), 0),
                            np.array(timesteps))
    rows.append(list(noisy))
    labels.append(name)
    for t, xt in zip(timesteps, noisy):
        kept[name, t] = (np.corrcoef(xt.ravel(), x0.ravel())[0, 1],
                         np.corrcoef(block_means(xt[None]).ravel(), block_means(x0).ravel())[0, 1])
fig, axes = new_figure(2, len(timesteps), panel_size=(1.8, 2.25))
plot_image_grid(axes, rows, row_labels=labels, col_labels=[f"t = {t}" for t in timesteps])
for c, t in enumerate(timesteps):
    for r, (name, sched) in enumerate(schedules.items()):
        axes[r, c].set_xlabel(f"alpha_bar {short(sched.alphas_cumprod[t])}\nSNR {short(sched.snr[t])}\n"
                              f"corr {kept[name, t][0]:.2f}, 4x4: {kept[name, t][1]:.2f}", fontsize="small")
fig.suptitle("x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps (Ho et al. 2020, eq. 4): rows linear and cosine "
             "(squaredcos_cap_v2)\nsame eps in every panel; values outside [-1, 1] clipped for display; "
             "corr: correlation of x_t with x_0 per pixel and of 4x4-pixel block means")
print("saved", save_figure(fig, os.path.join(OUT, "noised_image_grid.png")))

crossing = {name: int(np.argmax(sched.snr < 1.0)) for name, sched in schedules.items()}
print(f"\n{'schedule':<8}{'t':>5}{'alpha_bar':>11}{'SNR':>10}{'corr':>7}{'4x4 corr':>10}")
for name, sched in schedules.items():
    for t in timesteps:
        print(f"{name:<8}{t:>5}{short(sched.alphas_cumprod[t]):>11}{short(sched.snr[t]):>10}"
              f"{kept[name, t][0]:>7.2f}{kept[name, t][1]:>10.2f}")
    print(f"{name:<8} SNR falls below 1 (alpha_bar below 0.5) at t = {crossing[name]}")

# %% [markdown]
# What to notice. SNR = 1 — signal and noise of equal variance — is crossed at t = 259 by the
# linear schedule (Ho et al. 2020) and at t = 496 by the cosine one (Nichol & Dhariwal 2021,
# eq. 17): the printed table says so. That is not where the picture disappears. At t = 250 on
# the linear row (alpha_bar 0.52) the house, the sun and the hills are plain to see: pixel by
# pixel x_t correlates only about 0.5 with x_0, but its 4x4 block means still correlate above
# 0.9. By t = 500 (alpha_bar 0.078, SNR 0.08) little is left: squinting, you may make out a
# reddish patch where the house was (block means 0.55); at t = 750 (alpha_bar 0.003) nothing
# is, even in the block means (below 0.2). The cosine row runs about 250 steps behind: its
# t = 500 (alpha_bar 0.49) looks like linear's t = 250, and at t = 750 (alpha_bar 0.14) the
# house is still faintly there (block means 0.68). Keeping the picture recognisable for longer
# is what the cosine schedule was designed for: fewer training steps are spent on images that
# are pure noise to the model.

# %% [markdown]
# ## alpha_bar and the signal-to-noise ratio of every schedule
# alpha_bar_t is the fraction of the *variance* of x_t that is signal (for data of unit
# variance); SNR_t = alpha_bar_t / (1 - alpha_bar_t). On a log scale the SNR shows what the
# alpha_bar plot hides: how long each schedule stays where the image is invisible. The
# zero-terminal-SNR rescaling (Lin et al. 2023, Algorithm 1) makes the last alpha_bar exactly
# 0, so the model also learns the truly pure-noise step it starts sampling from (its SNR of 0
# cannot appear on a log axis, so that curve stops one step early).

# %%
t_axis = np.arange(1000)
all_schedules = {name: DDPMScheduler(beta_schedule=name) for name in BETA_SCHEDULES}
all_schedules["linear + zero terminal SNR"] = DDPMScheduler(beta_schedule="linear", rescale_betas_zero_snr=True)
styles = {"linear + zero terminal SNR": "--"}  # dashed: it hides under "linear" until the very end
fig, axes = new_figure(1, 2, panel_size=(5.2, 3.8), squeeze=True)
plot_curves(axes[0], t_axis, {k: s.alphas_cumprod for k, s in all_schedules.items()},
            xlabel="timestep t", ylabel="alpha_bar_t", title="alpha_bar: signal variance kept (dotted: 0.5)",
            styles=styles)
axes[0].axhline(0.5, color="0.4", lw=0.8, ls=":")
plot_curves(axes[1], t_axis, {k: s.snr for k, s in all_schedules.items()},
            xlabel="timestep t", ylabel="SNR_t (log scale)", title="signal-to-noise ratio (dotted: SNR = 1)",
            logy=True, legend_loc="lower left", styles=styles)
axes[1].axhline(1.0, color="0.4", lw=0.8, ls=":")
print("saved", save_figure(fig, os.path.join(OUT, "schedules_alpha_bar_snr.png")))
thresholds = (1.0, 1e-1, 1e-2, 1e-3)
below = {name: [int(np.argmax(s.snr < th)) if np.any(s.snr < th) else None for th in thresholds]
         for name, s in all_schedules.items()}
print(f"\nfirst t at which SNR falls below {', '.join(f'{th:g}' for th in thresholds)}")
for name, ts in below.items():
    print(f"{name:<28}" + "".join(f"{t:>7}" for t in ts) + f"   SNR at t = 999: {short(all_schedules[name].snr[999])}")

# %% [markdown]
# What to notice (the printed table has the numbers). The linear schedule falls below SNR = 1
# at t = 259 and below 1e-3 at t = 826: its last 174 steps train on images that carry less
# than a thousandth of their variance as signal. The cosine schedule crosses SNR = 1 only at
# t = 496 and 1e-3 at t = 979, then plunges to 2.4e-9 at t = 999 (its alpha_bar would reach
# exactly 0 there; only the cap of beta at 0.999 keeps it above). scaled_linear (Stable
# Diffusion's) and sigmoid cross SNR = 1 in between, at t = 418 and 439. The dashed
# zero-terminal-SNR curve hides "linear" on the alpha_bar plot; the log scale shows it falling
# away over the last few hundred steps (SNR 1e-3 at t = 804 instead of 826) before it reaches
# 0 at t = 999.

# %% [markdown]
# ## Pixel values converge to N(0, 1)
# The histogram of all pixel values of x_t (linear schedule) against the density of N(0, 1)
# (black line). Since eps is independent of x_0, eq. 4 gives the spread of x_t exactly:
#
#     var(x_t) = alpha_bar_t var(x_0) + (1 - alpha_bar_t)
#
# so the std climbs from the picture's own (0.57: its values do not fill [-1, 1]) to 1.

# %%
hist_t = [0, 100, 300, 999]
linear = schedules["linear"]
fig, axes = new_figure(1, len(hist_t), panel_size=(3.2, 2.8), squeeze=True)
stats = {}
for ax, t in zip(axes, hist_t):
    xt = linear.add_noise(x0, eps, np.array([t]))
    predicted_std = np.sqrt(linear.alphas_cumprod[t] * x0.var() + 1 - linear.alphas_cumprod[t])
    stats[t] = (xt.mean(), xt.std(), predicted_std)
    plot_histogram(ax, xt, label=f"pixels of x_{t}", reference=standard_normal_pdf, reference_label="N(0, 1)",
                   title=f"t = {t}: mean {xt.mean():+.2f}, std {xt.std():.2f}", xlabel="pixel value")
fig.suptitle("linear schedule: pixel values of x_t")
print("saved", save_figure(fig, os.path.join(OUT, "pixel_histograms.png")))
for t, (mean, std, predicted) in stats.items():
    print(f"t = {t:>3}: pixel mean {mean:+.3f}, std {std:.3f} (eq. 4 predicts {predicted:.3f})")

# %% [markdown]
# What to notice. At t = 0 the histogram is a few spikes: the picture's flat colours. At
# t = 100 (alpha_bar 0.90) the spikes have blurred into one bump, still narrower than the
# black curve (std 0.63). At t = 300 (alpha_bar 0.39) it is close to the bell but still a
# little narrow (std 0.86), and at t = 999 it is N(0, 1) to the eye (std 1.00, mean 0.01):
# the starting point of sampling. The measured stds match the formula above to within the
# sampling noise of one draw of eps.

# %% [markdown]
# ## What we demonstrated
# x_T has forgotten the picture; t = 0 barely touches it; every schedule's alpha_bar falls;
# SNR = 1 is not where the picture vanishes (the eye, like the 4x4 block means, still finds it
# at linear t = 250), while at linear t = 750 even the block means have lost it; and the cosine
# schedule keeps the picture about 250 steps longer.

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
assert all(abs(std - predicted) < 0.03 for _, std, predicted in stats.values()), "var(x_t) follows eq. 4"
assert crossing["linear"] == 259 and crossing["cosine"] == 496, "the SNR = 1 crossings the text quotes"
assert (below["linear"][3], below["squaredcos_cap_v2"][3], below["linear + zero terminal SNR"][3]) == (826, 979, 804), \
    "the SNR = 1e-3 crossings the text quotes"
pixel_250, blocks_250 = kept["linear", 250]
assert pixel_250 < 0.6 and blocks_250 > 0.85, "at linear t = 250 pixels keep half the picture, 4x4 blocks nearly all"
assert kept["linear", 750][1] < 0.3, "at linear t = 750 even the block means have lost the picture"
assert kept["cosine", 500][1] > 0.85 and kept["cosine", 500][1] > kept["linear", 500][1] + 0.2, \
    "cosine's t = 500 still shows the picture, which linear's t = 500 has mostly lost"
print("all checks passed")
