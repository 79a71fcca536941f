"""Train the rival generators of lesson 11 for a wall-clock budget on the same 8-bit glyphs: the
VAE (its -ELBO), the pixel transformer (its NLL) and an unconditional diffusion model (the
Trainer's loss), each step keyed by (seed, step) so that the same seed draws the same batches.

    data      16x16 glyphs (GlyphDataset), rounded to 8 bits: x = round(127.5 (g + 1)) / 127.5 - 1,
              TRAIN_POOL of them rendered once; batches are drawn from that pool
    budget    train_for_seconds calls a step function until `seconds` of training have passed;
              the time a probe takes (sampling and scoring to log quality over training) is not
              counted, so a probed run trains as long as an unprobed one
"""

import time

import numpy as np

from tinydiff.data import GlyphDataset
from tinydiff.diffusion import DDPMScheduler
from tinydiff.diffusion.likelihood import from_8bit, to_8bit
from tinydiff.models import UNet2DModel
from tinydiff.nn.checks import check_positive_int
from tinydiff.optim import AdamW
from tinydiff.optim.clip import clip_grad_norm_
from tinydiff.pipelines.train import Trainer
from tinydiff.pipelines.train_config import TrainConfig

GLYPH_SIZE = 16
BUDGET_SECONDS = 240.0  # 4 minutes per model: the equal wall-clock budget of the comparison
# The unconditional diffusion model: the shipped glyph UNet's recipe (v-prediction, cosine
# schedule, min-SNR-5; tinydiff/pretrained/train_glyphs.py) without class labels, at half the
# widths, so that it ships in about a megabyte and a 4-minute budget buys more steps.
DIFFUSION_UNET = dict(
    sample_size=GLYPH_SIZE, in_channels=1, out_channels=1, block_out_channels=(16, 32, 64), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8)
DIFFUSION_SCHEDULER = dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
# steps is only the length of the (cosine) learning-rate schedule: the budget stops the run long
# before, so the rate stays near lr
DIFFUSION_TRAINING = dict(steps=100_000, batch_size=64, lr=2e-3, warmup_steps=100, ema_decay=0.995,
                          min_snr_gamma=5.0)
VAE_TRAINING = dict(batch_size=128, lr=1e-3)
TRANSFORMER_TRAINING = dict(batch_size=16, lr=2e-3)  # 4096 tokens a step
GRAD_CLIP = 1.0


def glyphs_8bit(seed, start, count, size=GLYPH_SIZE):
    """Glyphs start..start+count-1 of GlyphDataset(seed) on the 8-bit grid: (count, 1, H, H)
    float32 in [-1, 1], and their digits (count,)."""
    images, labels = GlyphDataset(seed=seed, size=size)[start:start + count]
    return from_8bit(to_8bit(images)), labels


TRAIN_POOL = 20_000  # training glyphs, rendered once: a step draws its batch from them


def glyph_batches(pool, seed, batch_size):
    """data(step) -> (batch_size glyphs drawn from `pool` (M, 1, H, H) with the generator keyed
    by (seed, step), None): every model of a comparison draws from the same rendered images, so
    rendering (a millisecond a glyph) costs none of their training budget."""
    check_positive_int(batch_size, "batch_size")

    def data(step):
        return pool[np.random.default_rng((seed, 11, step)).integers(0, len(pool), size=batch_size)], None

    return data


def train_for_seconds(step_fn, seconds, probe=None, probe_every=None, max_steps=None):
    """Call step_fn(step) -> loss for step = 0, 1, ... until `seconds` of training have passed
    (or max_steps). probe(step) -> dict runs at the start and every `probe_every` seconds of
    training and at the end; its own time is not counted.

    Returns dict: steps, seconds (training only), losses [(step, seconds, loss)], probes
    [(step, seconds, result)]."""
    if not seconds > 0:
        raise ValueError(f"seconds: expected > 0, got {seconds!r}")
    log = {"steps": 0, "seconds": 0.0, "losses": [], "probes": []}
    trained, next_probe, step = 0.0, 0.0, 0
    while trained < seconds and (max_steps is None or step < max_steps):
        if probe is not None and probe_every and trained >= next_probe:
            log["probes"].append((step, trained, probe(step)))
            next_probe += probe_every
        started = time.perf_counter()
        loss = float(step_fn(step))
        trained += time.perf_counter() - started
        step += 1
        log["losses"].append((step, trained, loss))
    if probe is not None:
        log["probes"].append((step, trained, probe(step)))
    log["steps"], log["seconds"] = step, trained
    return log


def adam_step(optimizer, params):
    clip_grad_norm_(params, GRAD_CLIP)
    optimizer.step()


def vae_step_fn(vae, pool, seed, batch_size=VAE_TRAINING["batch_size"], lr=VAE_TRAINING["lr"]):
    """step(step) -> -ELBO in nats per dimension of batch `step`, after one AdamW update."""
    data, params = glyph_batches(pool, seed, batch_size), vae.parameters()
    optimizer = AdamW(params, lr=lr, weight_decay=0.0)

    def step(i):
        x, _ = data(i)
        noise = np.random.default_rng((seed, 7, i)).standard_normal((len(x), vae.latent_dim)).astype(np.float32)
        vae.train()
        nats = vae(x, noise)  # (B,)
        vae.zero_grad()
        vae.backward(np.full(len(x), 1.0 / (len(x) * vae.dims)))  # d mean(nats) / D
        adam_step(optimizer, params)
        return nats.mean() / vae.dims

    return step


def transformer_step_fn(model, pool, seed, batch_size=TRANSFORMER_TRAINING["batch_size"],
                        lr=TRANSFORMER_TRAINING["lr"]):
    """step(step) -> mean NLL per pixel in nats of batch `step`, after one AdamW update."""
    data, params = glyph_batches(pool, seed, batch_size), model.parameters()
    optimizer = AdamW(params, lr=lr, weight_decay=0.0)

    def step(i):
        x, _ = data(i)
        model.train()
        loss, dlogits = model.loss(to_8bit(x).reshape(len(x), -1).astype(np.int64))
        model.zero_grad()
        model.backward(dlogits)
        adam_step(optimizer, params)
        return loss

    return step


def diffusion_trainer(pool, seed, out_dir):
    """A Trainer for the unconditional glyph UNet (DIFFUSION_UNET) on 8-bit glyphs; its
    train_step(step) is the step function (EMA weights: trainer.ema)."""
    model = UNet2DModel(rng=np.random.default_rng(seed), **DIFFUSION_UNET)
    config = TrainConfig(seed=seed, checkpoint_every=10**9, **DIFFUSION_TRAINING)
    return Trainer(model, DDPMScheduler(**DIFFUSION_SCHEDULER), glyph_batches(pool, seed, config.batch_size), config,
                   out_dir, progress=False)


def diffusion_step_fn(trainer):
    def step(i):
        loss, _ = trainer.train_step(i)
        trainer.step = i + 1
        return loss

    return step


# ---- the 2-D ring (gaussians8): the mode-coverage comparison with the GAN -----------------------
RING_DIFFUSION = dict(batch_size=256, lr=2e-3, warmup_steps=100, ema_decay=0.995)
RING_MODEL = dict(data_dim=2, hidden=128, num_blocks=3, time_embed_dim=32)  # lesson 03's denoiser


def ring_diffusion(seed, seconds, out_dir, max_steps=None):
    """An MLPDenoiser (epsilon, linear betas: lesson 03's recipe) trained on gaussians8 for
    `seconds`; returns (model with its EMA weights, scheduler, training log)."""
    from tinydiff.models import MLPDenoiser
    from tinydiff.pipelines.data_sources import make_source

    model = MLPDenoiser(rng=np.random.default_rng(seed), **RING_MODEL)
    config = TrainConfig(steps=100_000, seed=seed, checkpoint_every=10**9, **RING_DIFFUSION)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                              timestep_spacing="trailing")
    trainer = Trainer(model, scheduler, make_source("gaussians8", config.batch_size, seed), config, out_dir,
                      progress=False)
    log = train_for_seconds(diffusion_step_fn(trainer), seconds, max_steps=max_steps)
    trainer.ema.copy_to()
    return model.eval(), scheduler, log
