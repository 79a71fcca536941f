# %% [markdown]
# # Lesson 06 — Latent space: diffusion on a VAE's latents
#
# **What you will see.** A small variational autoencoder (tinydiff's AutoencoderKL, shipped
# trained on Shapes) squeezing 32x32x3 images into 4x8x8 latents and back: reconstructions,
# the four latent channels drawn as images, a walk between two latents, and then the contrast
# that made Stable Diffusion: images the VAE makes *alone* from random latents, next to images
# a diffusion model makes *in pixels* and *in the VAE's latent space*. A table closes the
# lesson with what one denoising step costs in pixels and in latents.
#
# **Why it matters.** A diffusion model calls its network once per step, tens of times per
# image, at the full resolution of what it denoises. Rombach et al. (2022) split the work: an
# autoencoder removes the pixel detail a person barely sees (once, cheaply), and the diffusion
# model spends its steps on the compressed latent — 16x fewer positions here. The VAE alone is
# also a generative model (decode z ~ N(0, I)), but not a good one: trained with a small KL
# weight, as Stable Diffusion's was, its latents do not fill N(0, I), so decoding random
# normal latents gives coloured textures, not shapes. Diffusion learns where the latents
# really are.
#
# Run: `python lessons/06_latent_space.py [--out DIR] [--fast]` (measured on a quiet 2-core machine (nothing else running):
# 35 s, and 9 s with --fast; retrain the shipped models with
# `python -m tinydiff.pretrained.train_shapes`).

# %%
import time

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np

from tinydiff.data import COLOUR_NAMES, SHAPES, ShapeDataset
from tinydiff.metrics import count_macs, shape_checks, shapes_quality
from tinydiff.metrics.shapes_quality import check_one
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
from tinydiff.pipelines.latent import decode_latents, load_pipeline_vae, sample_latent, scale_latents
from tinydiff.pipelines.vae_training import psnr, reconstruct
from tinydiff.pretrained import HERE
from tinydiff.viz import new_figure, plot_image_grid, save_figure

# Terms (alpha_bar, SNR, v-prediction, ...): docs/glossary.md.
parser = LessonParser("06_latent_space", "Lesson 06: latent space",
                      fast_help="fewer samples and steps, for smoke tests")
args = parser.parse()
OUT = args.out
NUM = 48 if args.fast else 256        # samples per generator
PIXEL_NUM = 16 if args.fast else 64   # pixel-space samples (each step costs several times more)
STEPS = 20 if args.fast else 50       # DDIM steps
HELD_OUT = 128 if args.fast else 512  # images for the reconstruction PSNR
BATCH = 16 if args.fast else 64       # batch of the step timings

# %% [markdown]
# ## The shipped models
# `shapes_latent` is a pipeline folder like diffusers': `unet/`, `scheduler/` and `vae/`. The
# VAE's config carries statistics of its latents measured on Shapes, so that the UNet sees
# latents with zero mean and unit variance, the scale its noise schedule assumes. Stable
# Diffusion 1.x used one number, `scaling_factor` = 0.18215 = 1 / std of its latents, found
# the same way; z * scaling_factor. Our VAE's four channels differ too much for one number
# (printed below: their means range from -3.6 to +2.0 and their stds from 1.1 to 3.2, so after
# one global factor, 1 / 3.0, the means would still range from -1.2 to +0.7 and the stds from
# 0.4 to 1.1), so its config has `latents_mean` and `latents_std` per channel,
# as later diffusers VAEs do, and the UNet sees (z - latents_mean) * scaling_factor / latents_std.
# With one factor only, the noise drowns some channels (those that carry colour) much earlier
# in the forward process than others, and sampled colours came out wrong.

# %%
unet, scheduler_config = load_pipeline(HERE / "shapes_latent")
vae = load_pipeline_vae(HERE / "shapes_latent")
print(f"VAE: {vae.num_parameters() / 1e6:.2f} M parameters, latent {vae.latent_shape(1)[1:]}, "
      f"scaling_factor {vae.config['scaling_factor']:.4f}")
for c, (m, s) in enumerate(zip(vae.config["latents_mean"], vae.config["latents_std"])):
    print(f"  latent channel {c}: mean {m:+.3f}  std {s:.3f}")
print(f"latent UNet: {unet.num_parameters() / 1e6:.2f} M parameters on {unet.config['in_channels']}x"
      f"{unet.config['sample_size']}x{unet.config['sample_size']} latents")
held_out, labels = ShapeDataset(seed=2000)[0:HELD_OUT]   # images the VAE never trained on

# %% [markdown]
# ## Reconstructions
# encode -> the posterior's mean -> decode. PSNR = 10 log10(2^2 / MSE) for pixels in [-1, 1]:
# 30 dB means a typical pixel is off by about 0.06 (3% of the range), mostly along edges.

# %%
rec = reconstruct(vae, held_out)
score = psnr(rec, held_out)
print(f"reconstruction PSNR on {len(held_out)} held-out images: {score:.2f} dB")
fig, axes = new_figure(3, 8, panel_size=(1.3, 1.3))
error = np.abs(rec[:8] - held_out[:8]).mean(axis=1) * 2 - 1  # mean |error| per pixel, drawn on [-1, 1]
plot_image_grid(axes, [list(held_out[:8]), list(rec[:8]), list(error)],
                row_labels=["original", "reconstructed", "|error|"])
fig.suptitle(f"VAE reconstructions of held-out shapes (PSNR {score:.1f} dB over {HELD_OUT} images)")
print("saved", save_figure(fig, OUT / "reconstructions.png"))

# %% [markdown]
# ## What a latent looks like
# Each image becomes 4 channels of 8x8 numbers. Drawn as grey images (each channel scaled to
# its own range), they are a coarse, recoloured map of the picture: position and extent are
# plainly there; colour and shape are spread across the channels. Nothing forces the channels
# to mean anything a person would name.

# %%
means = vae.encode(held_out[:6]).mean                     # (6, 4, 8, 8)
fig, axes = new_figure(6, 5, panel_size=(1.3, 1.3))
rows = []
for img, z in zip(held_out[:6], means):
    chans = [(c - c.min()) / (c.max() - c.min() + 1e-8) * 2 - 1 for c in z]   # each to [-1, 1]
    rows.append([img] + chans)
captions = [f"{COLOUR_NAMES[c]}\n{SHAPES[k]}" for c, k in zip(labels.colour[:6], labels.shape[:6])]
plot_image_grid(axes, rows, row_labels=captions,
                col_labels=["image", "channel 0", "channel 1", "channel 2", "channel 3"])
print("saved", save_figure(fig, OUT / "latent_channels.png"))

# %% [markdown]
# ## A walk between two latents
# Decode (1 - a) z_A + a z_B for a from 0 to 1. Halfway between a red circle and a blue square
# the decoder draws something that is neither — often a blend of both colours and both
# outlines. The latent space is smooth, but most of it is not a valid image: which is why
# sampling it needs a model of where the images are.

# %%
pick = [int(np.flatnonzero((labels.shape == 0) & (labels.colour == COLOUR_NAMES.index("red")))[0]),
        int(np.flatnonzero((labels.shape == 1) & (labels.colour == COLOUR_NAMES.index("blue")))[0])]
z_a, z_b = vae.encode(held_out[pick]).mean
alphas = np.linspace(0, 1, 9, dtype=np.float32)
path = np.stack([(1 - a) * z_a + a * z_b for a in alphas])          # (9, 4, 8, 8)
walk = vae.decode(path)
fig, axes = new_figure(1, 9, panel_size=(1.3, 1.3))
plot_image_grid(axes, [list(walk)], col_labels=[f"a={a:.2f}" for a in alphas])
fig.suptitle(f"decode((1 - a) z_A + a z_B): {labels.captions[pick[0]]} -> {labels.captions[pick[1]]}")
print("saved", save_figure(fig, OUT / "interpolation.png"))

# %% [markdown]
# ## The VAE alone, diffusion in pixels, diffusion in its latent space
# Left: decode(z) with z ~ N(0, I), the VAE's own generative model. Right: DDIM sampling of
# the latent UNet from N(0, I) in the *normalised* latent space, then decode(z * latents_std +
# latents_mean). Middle: the pixel-space baseline `shapes_pixel`, a UNet of the glyph model's
# size on 3x32x32 images, trained with the same recipe on as many training images (6000 steps
# of 32 in 83 minutes, against the latent UNet's 3000 of 64 in about 11), sampled with the same
# DDIM steps; fewer samples, because each of its steps costs several times more (the last
# section measures how much).
# `shapes_quality` checks each sample from its pixels (one shape, clean background, a named
# colour, a circle/square/triangle) and compares its high-frequency energy with real images
# (ratio 1: as sharp as real). The KL term asked the posteriors to stay near N(0, I), but with
# beta = 1e-4 it lost to reconstruction: the raw latents' channels have stds from about 1 to 3
# and means up to 3.6 away from 0, and the channels are correlated. Random N(0, I) latents are
# therefore unlike any encoded image, and the decoder turns them into busy textures (a
# sharpness ratio above 1, and almost no valid shapes). A larger beta would make the prior
# usable and the reconstructions blurry — the trade-off latent diffusion avoids by leaving
# the prior to the diffusion model.
#
# Pixel diffusion has no decoder to blur its edges: its samples are as sharp as real images.
# But it must get every one of 3072 numbers right, and its typical failure is a shape painted
# in two colours, each half plausible on its own. The latent model decides each 4x4 patch's
# content as one 4-number latent that the decoder paints consistently, so colours come out
# whole; its price is the decoder's slight blur (sharpness below 1).

# %%
rng = np.random.default_rng(0)
prior = decode_latents(vae, scale_latents(vae, rng.standard_normal((NUM, 4, 8, 8)).astype(np.float32)))
ddim = scheduler_from_config("ddim", scheduler_config)
start = time.perf_counter()
ldm = sample_latent(unet, ddim, vae, NUM, np.random.default_rng(1), STEPS)
print(f"latent diffusion: {NUM} samples, {STEPS} DDIM steps + decode in {time.perf_counter() - start:.1f} s")
pixel_unet, pixel_scheduler_config = load_pipeline(HERE / "shapes_pixel")
start = time.perf_counter()
pixel = sample(pixel_unet, scheduler_from_config("ddim", pixel_scheduler_config), (PIXEL_NUM, 3, 32, 32),
               np.random.default_rng(2), STEPS)
print(f"pixel diffusion: {PIXEL_NUM} samples, {STEPS} DDIM steps in {time.perf_counter() - start:.1f} s")
real = ShapeDataset(seed=2001)[0:NUM][0]
q_prior, q_pixel, q_ldm, q_real = (shapes_quality(x, real) for x in (prior, pixel, ldm,
                                                                     ShapeDataset(seed=2002)[0:NUM][0]))
print(f"{'':28s} valid  named colour  sharpness ratio")
for name, q in (("real images", q_real), ("VAE decode of N(0, I)", q_prior),
                (f"pixel diffusion ({PIXEL_NUM})", q_pixel), ("latent diffusion", q_ldm)):
    print(f"{name:28s} {q['valid']:.3f}  {q['named_colour']:.3f}         {q['sharpness_ratio']:.2f}")
print("latent-diffusion shapes:", q_ldm["shape_histogram"], " colours:", q_ldm["colour_histogram"])
fig, axes = new_figure(4, 12, panel_size=(1.0, 1.0))
grid = [list(prior[r * 4:(r + 1) * 4]) + list(pixel[r * 4:(r + 1) * 4]) + list(ldm[r * 4:(r + 1) * 4])
        for r in range(4)]
plot_image_grid(axes, grid, col_labels=["VAE prior"] + [""] * 3 + ["pixel diffusion"] + [""] * 3
                + ["latent diffusion"] + [""] * 3)
fig.suptitle(f"VAE decode of z ~ N(0, I): valid {q_prior['valid']:.0%}, sharpness {q_prior['sharpness_ratio']:.2f}"
             f"  |  pixel diffusion: valid {q_pixel['valid']:.0%}, sharpness {q_pixel['sharpness_ratio']:.2f}"
             f"  |  latent diffusion: valid {q_ldm['valid']:.0%}, sharpness {q_ldm['sharpness_ratio']:.2f}"
             f"  (DDIM {STEPS} steps)", fontsize="medium")
print("saved", save_figure(fig, OUT / "vae_vs_latent_diffusion.png"))

# %% [markdown]
# ## Why are there fewer triangles?
# Real Shapes images are a third circles, a third squares, a third triangles, yet the valid
# latent-diffusion samples hold fewer triangles than circles or squares (the histogram above).
# Four suspects, each measured below: the data (are triangles rarer?), the checker (does
# `shapes_quality` reject real triangles?), the VAE (does encode -> decode spoil triangles?),
# and the diffusion model (does it draw fewer, or worse, triangles?). For a sample that fails
# the checks we still know which of the three outlines its colour region matches best
# (`check_one`'s best template), so failures can be counted per shape too.

# %%
def per_shape(images, shapes=None):
    """For each shape: how many images (by true label, or else by best-matching outline),
    the share of them valid, and their mean IoU with that outline."""
    checks = shape_checks(images)
    best = np.array([check_one(img)[4] for img in images]) if shapes is None else shapes
    return {name: (int((best == k).sum()), float(checks.valid[best == k].mean()) if np.any(best == k) else 0.0,
                   float(checks.iou[best == k].mean()) if np.any(best == k) else 0.0)
            for k, name in enumerate(SHAPES)}


suspects = [(f"real images ({HELD_OUT}), by label", per_shape(held_out, labels.shape)),
            (f"VAE reconstructions ({HELD_OUT}), by label", per_shape(rec, labels.shape)),
            (f"latent diffusion ({NUM}), by best outline", per_shape(ldm)),
            (f"pixel diffusion ({PIXEL_NUM}), by best outline", per_shape(pixel))]
print(f"{'':44s}" + "".join(f"{name:>26s}" for name in SHAPES))
print(f"{'':44s}" + "   count  valid  mean IoU " * len(SHAPES))
for name, stats in suspects:
    print(f"{name:44s}" + "".join(f"{n:8d} {v:6.0%} {iou:9.2f} " for n, v, iou in stats.values()))

# %% [markdown]
# What to notice (our run, the numbers above): not the data — 172 of 512 real images are
# triangles, a third, and every one of them passes the checks. Not the VAE, or barely — 99%
# of its reconstructed triangles pass (100% of circles and squares). But the checker leaves
# triangles less room: a real triangle, drawn on the pixel grid with anti-aliased slanted
# edges, overlaps the checker's ideal outline with an IoU of only 0.91 on average, against
# 1.00 for circles and squares, and the threshold is 0.75. Then the model: of its 256 samples
# 64 look most like a triangle, against 98 circles and 94 squares (a third would be 85; some
# of its triangles may be rounded off far enough to match a circle better), and of those 64
# only 89% pass, against 95-96% of the circles and squares; their IoU, 0.84 on average, sits
# closer to the threshold. Fewer triangles drawn, and the ones drawn failing more often: 64
# x 89% = 57 valid triangles. The latent model's blur (sharpness 0.60) costs a triangle's
# corners more than a circle's outline.

# %% [markdown]
# ## What a step costs
# Multiply-accumulates of one UNet forward pass per image, counted by running it
# (`tinydiff.metrics.count_macs`; FLOPs = 2 x MACs), and wall time of a batch (64; 16 with
# --fast), of the two UNets whose samples you saw above (benchmarks/bench_latent.py compares the
# same two). Every conv layer's cost is (positions) x (C_in x C_out x 9): the latent UNet works
# on 8x8 = 64 positions instead of 1024, which pays for wider channels and still leaves a
# several-fold saving. The decoder runs once per sample, not once per step, so over 50 steps
# it adds little.
#
# Is that a fair comparison, when the latent samples are also the better ones (93% valid
# against the pixel baseline's 85% on 256 samples)? Match the quality instead: the latent
# UNet's checkpoint at step 2000 of its schedule (`python -m tinydiff.pretrained.train_shapes
# --part latent --latent-stop 2000`, about 8 minutes) draws 85.5% valid shapes, as many as the
# pixel baseline after 83 minutes. Its steps cost exactly what the shipped latent UNet's cost
# (same architecture), so at equal quality a latent step is still the several-fold cheaper one
# below, and it took a tenth of the training time to get there.

# %%
REPEATS = 3 if args.fast else 9
step_inputs = [(np.random.default_rng(0).standard_normal((BATCH,) + shape).astype(np.float32), np.full(BATCH, 500))
               for shape in ((3, 32, 32), (4, 8, 8))]
unets = (pixel_unet, unet)
mflops = [2 * count_macs(m, x[:1], t[:1]) / 1e6 for m, (x, t) in zip(unets, step_inputs)]
decode_mflops = 2 * count_macs(vae.decode, np.zeros((1, 4, 8, 8), np.float32)) / 1e6
seconds = np.zeros((REPEATS, 2))  # (round, model): one sampling step on a batch, the two models in turn
for m, (x, t) in zip(unets, step_inputs):
    m.eval()
    m(x, t)  # warm-up: compiled kernels and buffers ready
for r in range(REPEATS):
    for j, (m, (x, t)) in enumerate(zip(unets, step_inputs)):
        start = time.perf_counter()
        m(x, t)
        seconds[r, j] = time.perf_counter() - start
ms = np.median(seconds, axis=0) * 1e3
time_ratios = seconds[:, 0] / seconds[:, 1]  # pixel / latent, round by round
print(f"{'':14s} {'MFLOPs/image':>13s} {f'ms/step ({BATCH})':>13s}")
print(f"{'pixel UNet':14s} {mflops[0]:13.1f} {ms[0]:13.0f}")
print(f"{'latent UNet':14s} {mflops[1]:13.1f} {ms[1]:13.0f}")
print(f"{'VAE decode':14s} {decode_mflops:13.1f}   (once per sample)")
flops_ratio = mflops[0] / mflops[1]
per_sample = (STEPS * mflops[0]) / (STEPS * mflops[1] + decode_mflops)
print(f"a latent step needs {flops_ratio:.1f}x fewer FLOPs (counted), and took {np.median(time_ratios):.1f}x less time "
      f"here (median of {REPEATS} rounds alternating the two UNets, batch {BATCH}; rounds ranged "
      f"{time_ratios.min():.1f}-{time_ratios.max():.1f}x); a whole {STEPS}-step sample needs {per_sample:.1f}x fewer "
      f"FLOPs, decode included")

# %% [markdown]
# What to notice: the FLOP ratio is a count and comes out the same on every machine; the time
# ratio is a measurement of this machine at this moment. On a quiet 2-core machine the
# median was 5.6x (rounds 4.9-8.7x); in two runs with other jobs on the cores, 6.2x and 4.7x,
# from rounds between 1.8x (another job had the cores) and 6.9x: below the 7.8x FLOP ratio,
# because the latent UNet's small 8x8 maps give each kernel less work to spread over the
# cores (in the first run it ran at 47 GFLOP/s, the pixel UNet at 63). That is why the two
# UNets are timed in turn, round after round, and the median and range are printed rather
# than one number. (An earlier version timed 4 calls of one model, then 4 of the other, and
# printed 11.1x in one run: one such pair of timings is at the mercy of whatever else runs
# meanwhile.)

# %% [markdown]
# ## What this lesson showed (checked)

# %%
assert score >= 28.0, f"reconstruction PSNR {score:.2f} dB"
assert flops_ratio >= 4.0, flops_ratio
assert np.median(time_ratios) > 1.0, time_ratios  # and a latent step is faster in wall time too
assert q_ldm["valid"] > q_prior["valid"] + 0.15, (q_ldm["valid"], q_prior["valid"])
if not args.fast:  # the shipped latent model: 93% valid on 256 samples when it was trained
    assert q_ldm["valid"] >= 0.85, q_ldm["valid"]
assert abs(q_ldm["sharpness_ratio"] - 1) < abs(q_prior["sharpness_ratio"] - 1), (q_ldm, q_prior)
assert abs(q_pixel["sharpness_ratio"] - 1) < abs(q_ldm["sharpness_ratio"] - 1), (q_pixel, q_ldm)  # no decoder blur
assert q_real["valid"] == 1.0
counts, valid_share = {}, {}
for name, stats in suspects:
    counts[name.split(" (")[0]] = {k: v[0] for k, v in stats.items()}
    valid_share[name.split(" (")[0]] = {k: v[1] for k, v in stats.items()}
assert valid_share["real images"]["triangle"] == 1.0  # the checker passes every real triangle
if not args.fast:  # why fewer triangles: not the data, hardly the VAE, but the model
    assert counts["real images"]["triangle"] > 0.3 * HELD_OUT
    assert valid_share["VAE reconstructions"]["triangle"] >= 0.95
    ldm_counts, ldm_valid = counts["latent diffusion"], valid_share["latent diffusion"]
    assert ldm_counts["triangle"] < min(ldm_counts["circle"], ldm_counts["square"]), ldm_counts
    assert ldm_valid["triangle"] < min(ldm_valid["circle"], ldm_valid["square"]), ldm_valid
print("all checks passed")
