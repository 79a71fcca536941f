"""Train the small generators lesson 11 compares, each for the same wall-clock budget (4 minutes)
on the same 8-bit 16x16 glyphs, and ship them (float16) in tinydiff/pretrained/generators/:

    gan/                a DCGAN (generator/, discriminator/, history.json), the gan helper's
                        tinydiff.pipelines.gan_training, its quality measured over training
    vae/                a PixelVAE (its ELBO is a bound on the 8-bit NLL)
    pixel_transformer/  a PixelTransformer (exact NLL, sampled token by token)
    diffusion/          an unconditional UNet2DModel pipeline (unet/, scheduler/)
    training.json       per model: steps, seconds, the loss over training, and for diffusion the
                        quality of its samples over training (classifier-recognised share, FD)

    python -m tinydiff.pretrained.train_generators                  # all, 4 minutes each
    python -m tinydiff.pretrained.train_generators --part vae --seconds 30 --out runs/generators

Run it on a quiet machine: the budget is wall-clock time, so other jobs on the cores buy fewer steps.
"""

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tinydiff.diffusion import DDIMScheduler
from tinydiff.models.pixel_transformer import PixelTransformer
from tinydiff.models.pixel_vae import PixelVAE
from tinydiff.pipelines import sample, save_pipeline
from tinydiff.pipelines.checkpoint import save_model
from tinydiff.pipelines.generator_training import (BUDGET_SECONDS, DIFFUSION_SCHEDULER, TRAIN_POOL, diffusion_step_fn,
                                                   diffusion_trainer, glyphs_8bit, train_for_seconds,
                                                   transformer_step_fn, vae_step_fn)
from tinydiff.pretrained.folders import HERE, glyph_judge

PARTS = ("gan", "vae", "pixel_transformer", "diffusion")
TRAIN_SEED = 0  # GlyphDataset seed of the training pool (the judge's reference glyphs use 2000)
MODEL_SEED = 0
VAE_MODEL = dict(sample_size=16, latent_dim=16, hidden=512)
TRANSFORMER_MODEL = dict(sample_size=16, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)
PROBE_SAMPLES, PROBE_STEPS = 128, 20  # diffusion's quality over training: DDIM samples judged


def generators_dir():
    return HERE / "generators"


def thin(rows, keep=200):
    """At most `keep` evenly spaced rows of a long log (and always the last)."""
    if len(rows) <= keep:
        return [list(r) for r in rows]
    idx = np.unique(np.r_[np.linspace(0, len(rows) - 1, keep).astype(int), len(rows) - 1])
    return [list(rows[i]) for i in idx]


def quality_probe(model, ema, scheduler_config, judge, seed):
    """probe(step) -> the judge's recognised share and Frechet distance of PROBE_SAMPLES DDIM
    samples drawn with the EMA weights (the same noise every time)."""
    ddim = DDIMScheduler(**scheduler_config)

    def probe(step):
        with ema.swap_in():
            x = sample(model, ddim, (PROBE_SAMPLES, 1, 16, 16), np.random.default_rng((seed, 5)), PROBE_STEPS)
        scores = judge.score(x)
        return {"recognised": scores["recognised"], "frechet": scores["frechet"]}

    return probe


def train_part(part, pool, seconds, out, judge=None, probe_every=None):
    """Train one generator for `seconds`, save it under out/part; returns its log."""
    rng = np.random.default_rng(MODEL_SEED)
    if part == "gan":
        return train_gan_part(pool, seconds, out, judge)
    if part == "vae":
        model = PixelVAE(rng=rng, **VAE_MODEL)
        log = train_for_seconds(vae_step_fn(model, pool, TRAIN_SEED), seconds)
        save_model(model, out / part, dtype=np.float16)
    elif part == "pixel_transformer":
        model = PixelTransformer(rng=rng, **TRANSFORMER_MODEL)
        log = train_for_seconds(transformer_step_fn(model, pool, TRAIN_SEED), seconds)
        save_model(model, out / part, dtype=np.float16)
    else:
        with tempfile.TemporaryDirectory() as work:
            trainer = diffusion_trainer(pool, TRAIN_SEED, work)
            probe = None if judge is None else quality_probe(trainer.model, trainer.ema, DIFFUSION_SCHEDULER, judge,
                                                             TRAIN_SEED)
            log = train_for_seconds(diffusion_step_fn(trainer), seconds, probe, probe_every)
            trainer.ema.copy_to()  # ship the EMA weights
            save_pipeline(out / part, trainer.model, trainer.scheduler, dtype=np.float16)
    log["losses"] = thin(log["losses"])
    log["probes"] = [list(p) for p in log["probes"]]
    print(f"{part}: {log['steps']} steps in {log['seconds']:.0f} s, last loss {log['losses'][-1][2]:.4f}", flush=True)
    return log


def train_gan_part(pool, seconds, out, judge):
    """The DCGAN on the same pool of glyphs (batches of 64 keyed like the others), its quality
    (recognised share, FD) measured every 200 steps; saved with its history."""
    from tinydiff.pipelines.gan_training import glyph_evaluator, glyph_gan_config, make_glyph_gan, save_gan, train_gan
    from tinydiff.pipelines.generator_training import glyph_batches

    generator, discriminator = make_glyph_gan(MODEL_SEED)
    batches = glyph_batches(pool, TRAIN_SEED, glyph_gan_config().batch_size)
    config = glyph_gan_config(seed=TRAIN_SEED, budget_seconds=seconds)
    evaluate = None if judge is None else glyph_evaluator(judge, num_samples=PROBE_SAMPLES)
    history = train_gan(generator, discriminator, lambda step: batches(step)[0], config, evaluate)
    save_gan(out / "gan", generator, discriminator, history)
    print(f"gan: {history['steps']} steps in {history['train_seconds']:.0f} s", flush=True)
    return {"steps": history["steps"], "seconds": history["train_seconds"], "quality": history["quality"],
            "losses": thin([(r["step"], r["seconds"], r["g_loss"]) for r in history["log"]])}


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all",) + PARTS, default="all")
    parser.add_argument("--seconds", type=float, default=BUDGET_SECONDS, help="training budget per model")
    parser.add_argument("--pool", type=int, default=TRAIN_POOL, help="training glyphs rendered")
    parser.add_argument("--probe-every", type=float, default=30.0, help="seconds of training between quality probes")
    parser.add_argument("--out", type=Path, default=generators_dir())
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pool, _ = glyphs_8bit(TRAIN_SEED, 0, args.pool)
    print(f"rendered {len(pool)} training glyphs in {time.perf_counter() - started:.0f} s", flush=True)
    log_path = args.out / "training.json"
    logs = json.loads(log_path.read_text()) if log_path.is_file() else {}
    judge = glyph_judge()
    for part in PARTS if args.part == "all" else (args.part,):
        load_before = os.getloadavg()[0]
        try:
            logs[part] = train_part(part, pool, args.seconds, args.out, judge, args.probe_every)
        except ImportError as err:  # the GAN comes from tinydiff.pipelines.gan_training
            print(f"{part}: skipped ({err})", flush=True)
            continue
        # other work on the machine slows a budgeted run: the 1-minute load average before and after says how much
        logs[part].update(budget_seconds=args.seconds, load_average=[load_before, os.getloadavg()[0]])
        log_path.write_text(json.dumps(logs, indent=1))
    return logs


if __name__ == "__main__":
    main()
