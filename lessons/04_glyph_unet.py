# %% [markdown]
# # Lesson 04 — A UNet that draws digits
#
# **What you will see.** tinydiff's shipped glyph model — a class-conditional UNet2DModel,
# 16x16 grey digits — turning pure noise into digits: a grid of samples, one strip per digit
# showing x_t at a few points along the reverse process, and an animated GIF in which the
# noisy sample x_t (left) and the model's guess of the clean image x_0 (right) evolve step by
# step. A classifier trained on real glyphs then says how many samples it recognises.
#
# **Why it matters.** This is lesson 02's reverse process with a *learned* denoiser instead
# of the exact one: the UNet was trained (Ho et al. 2020, Algorithm 1) on noisy images
# x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, and sampling only calls it once per
# step. The shipped model predicts the "velocity" v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0
# (Salimans & Ho 2022) rather than eps itself; both eps and x_0 follow from v and x_t, and v
# stays well scaled at every noise level. Watch the right half of the GIF: the model's guess of
# x_0 shows which digit it is drawing long before x_t looks like one, and already in the very
# first frame: the model is class-conditional, and the class label, not the noise, decides
# which digit comes out. A section below shows that with the same x_T and all ten labels (the
# shipped model has no "no label" class, so a truly unconditional run is not possible with it).
# The noise decides the style: thickness, slant, position. Coarse structure is settled at high
# noise, details at low noise.
#
# **Why 16x16.** A training step at 16x16 costs a quarter of one at 32x32, and on 2 cores the
# half hour of training this model had buys about 2250 steps of 64 images at 16x16 but only
# about 650 at 32x32, too few for clean digits. The digits are small, but they are digits.
#
# Run: `python lessons/04_glyph_unet.py [--train] [--out DIR] [--fast]` (measured on a quiet 2-core machine (nothing else running): 22 s, and 4 s with --fast once Numba's compiled
# kernels are cached). With `--train` the model is trained from scratch first (about 13
# minutes on 2 cores in two processes, the README's estimate from the first 500 steps; a
# progress bar shows it).

# %%
import os
from pathlib import Path

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np
from PIL import Image

from tinydiff.data import GlyphDataset
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
from tinydiff.pretrained import glyph_judge, glyph_model_dir
from tinydiff.viz import write_gif
from tinydiff.viz.denoise import denoising_frames, denoising_strip
from tinydiff.viz.tiles import save_image_grid

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md.
parser = LessonParser("04_glyph_unet", "Lesson 04: the glyph UNet",
                      fast_help="few samples and steps, for smoke tests")
parser.add_argument("--train", action="store_true", help="train the model from scratch first (~13 min on 2 cores)")
parser.add_argument("--model", type=Path, default=None, help="a model folder to use instead of the shipped one")
args = parser.parse()
OUT = args.out
rng = np.random.default_rng(0)

# %% [markdown]
# ## The model
# Either the shipped weights, or — with `--train` — the same architecture trained from
# scratch by the very script that produced the shipped ones. Training writes resumable
# checkpoints, sample grids along the way, and the EMA weights at the end.

# %%
model_dir = args.model or glyph_model_dir()
if args.train:
    from tinydiff.pretrained import train_glyphs

    work = OUT / "training"
    train_glyphs.train_unet(OUT, steps=50 if args.fast else train_glyphs.DEFAULT_STEPS, batch_size=64, work_dir=work)
    model_dir = OUT / "glyphs"
model, scheduler_config = load_pipeline(model_dir)
size = model.config["sample_size"]
zoom = max(1, 96 // size)  # pictures about 96 pixels per glyph, whatever the model's size
print(f"{type(model).__name__}: {model.num_parameters() / 1e6:.2f} M parameters, "
      f"block_out_channels {model.config['block_out_channels']}, "
      f"attention in {[t for t in model.config['down_block_types'] if 'Attn' in t]}, "
      f"{model.config['num_class_embeds']} classes")
print(f"trained with {scheduler_config['num_train_timesteps']} timesteps, "
      f"beta_schedule={scheduler_config['beta_schedule']}, predicting {scheduler_config['prediction_type']}")

# %% [markdown]
# ## Sampling: 50 DDIM steps, ten of each digit
# `sample` starts from x_T ~ N(0, I) and calls `scheduler.step` once per timestep; `record=True`
# keeps (t, x_t, predicted x_0) of every step for the pictures below. DDIM runs with
# `timestep_spacing="trailing"`, so its first step is at t = 999, where x_t is pure noise
# (the config's "leading" would start at t = 980; lesson 05 shows why that matters).

# %%
steps = 5 if args.fast else 50
per_digit = 2 if args.fast else 10
labels = np.tile(np.arange(10), per_digit)  # 0..9, 0..9, ...
ddim = scheduler_from_config("ddim", {**scheduler_config, "timestep_spacing": "trailing"})  # from t = 999
samples, trajectory = sample(model, ddim, (len(labels), 1, size, size), rng, steps, class_labels=labels,
                             record=True, progress=True)
save_image_grid(OUT / "samples_grid.png", samples, ncols=10, scale=zoom // 2)
print("samples_grid.png: one column per digit (0..9), one row per seed")

# %% [markdown]
# ## The reverse process, frozen at a few steps
# Each row is one digit; from left to right x_t at evenly spaced steps (the header gives each
# column's timestep t, 999 = pure noise), then the final sample. Notice how long x_t stays
# noisy-looking while the digit is already decided.

# %%
first_of_each = np.arange(10)
strip = denoising_strip([(t, x[first_of_each], x0[first_of_each]) for t, x, x0 in trajectory],
                        samples[first_of_each], count=8, scale=zoom // 2)
Image.fromarray(strip).save(OUT / "reverse_process_strip.png")
print("reverse_process_strip.png: rows are digits 0..9, columns go from noise (left) to sample (right)")

# %% [markdown]
# ## Who decides the digit: the label or the noise?
# Start ten runs from *one and the same* x_T and give each a different label, 0 to 9. If the
# noise decided the digit, the ten rows would agree; they do not. Below: the model's guess of
# x_0 along the way (columns by timestep t), one row per label. We repeat this for several
# x_T and let the classifier read every guess of x_0: the share it reads as the requested
# label, step by step, says when the label's influence appears. This is `sample()`'s loop
# written out, because `sample()` draws a different x_T for each row.

# %%
num_noises = 2 if args.fast else 5
ddim_same = scheduler_from_config("ddim", {**scheduler_config, "timestep_spacing": "trailing"})
ddim_same.set_timesteps(steps)
x_T = np.random.default_rng(1).standard_normal((num_noises, 1, 1, size, size)).astype(np.float32)
x = np.broadcast_to(x_T, (num_noises, 10, 1, size, size)).reshape(-1, 1, size, size).copy()  # each x_T 10 times
same_labels = np.tile(np.arange(10), num_noises)
same_trajectory = []
for t in ddim_same.timesteps:
    out = ddim_same.step(model(x, np.full(len(x), t), same_labels), t, x)
    same_trajectory.append((int(t), x, out.pred_original_sample))
    x = out.prev_sample
judge = glyph_judge(200 if args.fast else 1000)
read_as_label = np.array([judge.score(x0, same_labels)["agreement"] for _, _, x0 in same_trajectory])
label_strip = denoising_strip([(t, xt[:10], x0[:10]) for t, xt, x0 in same_trajectory], x[:10], count=8,
                              scale=zoom // 2, which=2)
Image.fromarray(label_strip).save(OUT / "same_noise_all_labels.png")
first_90 = int(np.argmax(read_as_label >= 0.9)) if np.any(read_as_label >= 0.9) else None
print(f"same_noise_all_labels.png: one x_T, labels 0..9 (rows), the model's x_0 guess at each t (columns)")
print(f"share of x_0 guesses read as the requested label ({len(same_labels)} runs, {num_noises} noises x 10 labels):")
for k in sorted({0, 1, 2, 4, len(same_trajectory) // 2, len(same_trajectory) - 1}):
    print(f"  step {k + 1:2d}/{len(same_trajectory)}  t = {same_trajectory[k][0]:3d}: {read_as_label[k]:.0%}")
print(f"final samples read as the requested label: {judge.score(x, same_labels)['agreement']:.0%}")

# %% [markdown]
# What to notice: from one x_T, ten different digits, each the one its label asked for. The
# label acts from the very first step: at t = 999, where x_t is pure noise (the same noise in
# all ten rows, so by itself it could match at most one label in ten), the model's guess of
# x_0 is already the requested digit, speckled and soft, and in our run the classifier read
# 49 of those 50 first guesses as the requested label (98%), and all 50 from the fifth step
# on. What the noise decides is everything else — thickness, slant, position, which you see
# across the rows of `samples_grid.png`. A model drawing without a label would have to take
# that choice from the noise instead: the shipped model is also one, through its null class
# (`tinydiff sample --unconditional`; lesson 07 puts the two side by side).

# %% [markdown]
# ## The GIF: x_t and the model's guess of x_0, step by step
# Left x_t, right the model's guess of x_0, with the step and its timestep t in the caption.
# The right half shows each digit from the first frame on: that is the label at work (see
# above), not a digit hidden in the noise. The GIF is written with a 64-colour palette, and
# kept under 2 MB (`tinydiff.viz.write_gif`).

# %%
gif_labels = np.arange(10)
write_gif(OUT / "denoising.gif", denoising_frames([(t, x[gif_labels], x0[gif_labels]) for t, x, x0 in trajectory],
                                                  ncols=5, scale=zoom, timesteps=ddim.timesteps))
print("denoising.gif: left x_t, right predicted x_0")

# %% [markdown]
# ## Does a classifier recognise them?
# A small ConvClassifier, trained on real glyphs only, judges the samples: the share it
# recognises with probability >= 0.9, whether it reads the digit we asked for, and a Frechet
# distance between its features on samples and on real glyphs (lower is closer; compare with
# the distance of as many other real glyphs, of the same digits, from the same reference: with
# only 100 images both numbers carry a sizeable bias of their own).

# %%
scores = judge.score(samples, labels)
reals = GlyphDataset(seed=3000, size=size)  # real glyphs of the same digits, for comparison
real = judge.score(reals.get(reals.indices_with_labels(labels))[0])
print(f"recognised: samples {scores['recognised']:.1%}, real glyphs {real['recognised']:.1%}")
print(f"read as the requested digit: {scores['agreement']:.1%}")
print(f"Frechet distance to real glyphs: samples {scores['frechet']:.2f}, another set of real glyphs {real['frechet']:.2f}")

# %% [markdown]
# ## The same UNet on readable code: the reference backend
# Every layer above ran on tinydiff's fast kernels: Numba loops, Winograd convolutions, a fused
# group norm + SiLU. Each of them has a slow twin in `tinydiff/kernels/reference/`, written
# straight from its definition (the convolution as a sum over its nine taps, attention as
# three einsums). `kernels.use("reference")` runs every layer on those twins, so the whole UNet
# can be read, and stepped through in a debugger, line by line. Here both backends denoise the
# same inputs once.

# %%
import time

from tinydiff import kernels

n_check = 2 if args.fast else 10
x_check = np.random.default_rng(2).standard_normal((n_check, 1, size, size)).astype(np.float32)
t_check, labels_check = np.full(n_check, 500), np.arange(n_check) % 10
backend_outputs, backend_seconds = {}, {}
for backend in ("fast", "reference"):
    with kernels.use(backend):  # back to the fast kernels when the block ends
        model(x_check, t_check, labels_check)  # a first call loads the kernels for these shapes
        start = time.perf_counter()
        backend_outputs[backend] = model(x_check, t_check, labels_check)
        backend_seconds[backend] = time.perf_counter() - start
backend_gap = float(np.abs(backend_outputs["fast"] - backend_outputs["reference"]).max())
backend_scale = float(np.abs(backend_outputs["reference"]).max())
print(f"largest difference between the backends' outputs: {backend_gap:.1e} "
      f"(outputs up to {backend_scale:.1f})")
for backend, seconds in backend_seconds.items():
    print(f"  {backend:9s} backend: {seconds * 1000:7.1f} ms for {n_check} images")

# %% [markdown]
# What to notice: the two outputs agree to float32 rounding (about 1e-6: the fast kernels add
# the same terms in another order, and Winograd's transforms round differently), while the
# reference backend is several times slower (the times printed above; they vary with how busy
# the machine is). Correct first, then fast: every fast kernel is tested against its twin, and
# you can check any model yourself the same way. Training runs on the reference backend too
# (every backward pass has its twin); it is just slower.

# %% [markdown]
# ## Checks

# %%
assert samples.shape == (len(labels), 1, size, size)
assert np.isclose(trajectory[0][1].std(), 1.0, atol=0.15), "sampling starts from unit-variance noise"
assert abs(np.clip(samples, -1, 1).mean() - samples.mean()) < 0.05, "samples stay (almost) in [-1, 1]"
assert os.path.getsize(OUT / "denoising.gif") <= 2_000_000, "GIFs stay small enough to share"
assert backend_gap <= 1e-4 * backend_scale, "the reference backend computes what the fast one does"
if not args.fast and not args.train:
    assert scores["recognised"] >= 0.9, scores
    assert scores["agreement"] >= 0.9, scores
    # the label, not the noise, decides the digit: from one x_T every label gets its own digit ...
    assert judge.score(x, same_labels)["agreement"] >= 0.9
    # ... and it does from the first step, where x_t is pure noise
    assert read_as_label[0] >= 0.9, read_as_label[:5]
print("all checks passed")
