"""The GAN rows of issue 17, measured: mode collapse on the ring against diffusion, and a DCGAN on
glyphs on a wall-clock budget, with its sample quality over training.

ring    For each seed: the 2-D diffusion toy of lesson 03 (MLPDenoiser, 128 units, 3 residual
        blocks; DDPM linear schedule, T = 1000; AdamW 2e-3, batch 256, EMA 0.995) trained for
        --diffusion-steps steps on gaussians8, timed; then the MLP GAN (tinydiff.models.gan,
        3 hidden layers of 128; Adam 1e-3, beta1 0.5, batch 256) trained for THE SAME
        wall-clock time. 2500 samples each (diffusion: DDPM, 1000 ancestral steps), scored by
        tinydiff.metrics.modes: modes covered of 8 (a mode needs >= 20 samples within 3 sigma)
        and the share within 3 sigma of a mode. The GAN's quality over its steps is logged.
glyphs  The DCGAN (tinydiff.pipelines.gan_training.make_glyph_gan: 16x16, latent 64, base 32
        channels, N(0, 0.02) init, Adam 2e-4, beta1 0.5, batch 64) for --budget seconds of
        training; every --eval-every steps the shipped glyph classifier judges 256 samples from
        fixed latents (recognised share, junk, Frechet distance, digits covered); at the end
        1000 samples, the sampling time per image, and the model saved under --save.

    python benchmarks/bench_gan.py ring --seeds 5          # the table's ring rows
    python benchmarks/bench_gan.py glyphs --budget 240     # the 4-minute DCGAN
    python benchmarks/bench_gan.py ring --quick            # a smoke run (seconds)

Writes JSON (default benchmarks/results/gan_<what>.json). Run heavy settings through the
shared lock on a shared machine; the numbers are only as quiet as the machine was.
"""

import tinydiff  # noqa: F401, I001 -- before NumPy: tinydiff/runtime/process_settings.py says why
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinydiff.data import gaussians8
from tinydiff.diffusion import DDPMScheduler
from tinydiff.metrics.modes import gaussians8_coverage
from tinydiff.models import MLPDenoiser
from tinydiff.pipelines import TrainConfig, Trainer, sample
from tinydiff.pipelines.data_sources import ToyPoints
from tinydiff.pipelines.gan_training import (
    glyph_batches, glyph_evaluator, glyph_gan_config, make_glyph_gan, make_ring_gan, ring_batches, ring_evaluator,
    ring_gan_config, sample_gan, save_gan, train_gan)

sys.path.insert(0, str(Path(__file__).parent))
from train_cases import write_results  # noqa: E402

NUM_SAMPLES = 2500


def train_diffusion(seed, steps, work):
    """Lesson 03's toy denoiser on gaussians8; returns (model with EMA weights, scheduler, seconds)."""
    model = MLPDenoiser(data_dim=2, hidden=128, num_blocks=3, time_embed_dim=32, rng=np.random.default_rng(seed))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                              timestep_spacing="trailing")
    config = TrainConfig(steps=steps, batch_size=256, lr=2e-3, warmup_steps=min(200, steps // 4), ema_decay=0.995,
                         grad_clip=1.0, seed=seed, checkpoint_every=steps, log_every=max(1, steps // 10))
    trainer = Trainer(model, scheduler, ToyPoints(gaussians8, config.batch_size, seed), config, work, progress=False)
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    trainer.ema.copy_to()
    return model.eval(), scheduler, seconds


def ring(args):
    rows = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as work:
            model, scheduler, seconds = train_diffusion(seed, args.diffusion_steps, work)
        start = time.perf_counter()
        points = sample(model, scheduler, (NUM_SAMPLES, 2), np.random.default_rng([seed, 99]),
                        num_inference_steps=args.sampling_steps)
        diffusion_sampling = time.perf_counter() - start
        diffusion = gaussians8_coverage(points)
        generator, discriminator = make_ring_gan(seed=seed)
        config = ring_gan_config(seed, budget_seconds=seconds, eval_every=args.eval_every)
        history = train_gan(generator, discriminator, ring_batches(seed, 256), config,
                            evaluate=ring_evaluator(NUM_SAMPLES, seed=seed + 1000))
        start = time.perf_counter()
        gan_points = sample_gan(generator, NUM_SAMPLES, np.random.default_rng([seed, 99]))
        gan_sampling = time.perf_counter() - start
        gan = gaussians8_coverage(gan_points)
        row = {"seed": seed, "train_seconds": seconds,
               "diffusion": {**diffusion, "steps": args.diffusion_steps, "sampling_seconds": diffusion_sampling},
               "gan": {**gan, "steps": history["steps"], "sampling_seconds": gan_sampling,
                       "quality_over_steps": history["quality"], "log": history["log"]}}
        rows.append(row)
        print(f"seed {seed}: {seconds:.1f} s each | diffusion ({args.diffusion_steps} steps): "
              f"{diffusion['modes_covered']}/8 modes, {100 * diffusion['high_quality_share']:.1f}% within 3 sigma | "
              f"GAN ({history['steps']} steps): {gan['modes_covered']}/8, {100 * gan['high_quality_share']:.1f}%",
              flush=True)
    summary = {}
    for name in ("diffusion", "gan"):
        modes = np.array([r[name]["modes_covered"] for r in rows], dtype=float)
        share = np.array([r[name]["high_quality_share"] for r in rows])
        summary[name] = {"modes_covered_mean": modes.mean(), "modes_covered_std": modes.std(),
                         "modes_covered_min": modes.min(), "high_quality_mean": share.mean(),
                         "high_quality_std": share.std()}
        print(f"{name:>9}: modes covered {modes.mean():.1f} +- {modes.std():.1f} (min {modes.min():.0f}), "
              f"within 3 sigma {100 * share.mean():.1f} +- {100 * share.std():.1f}% over {len(rows)} seeds")
    return {"rows": rows, "summary": summary}


def glyphs(args):
    from tinydiff.pretrained.folders import glyph_judge

    judge = glyph_judge(1000)
    generator, discriminator = make_glyph_gan(seed=args.seed)
    config = glyph_gan_config(args.seed, budget_seconds=args.budget, eval_every=args.eval_every)
    history = train_gan(generator, discriminator, glyph_batches(args.seed, 64), config,
                        evaluate=glyph_evaluator(judge, 256), progress=lambda line: print(line, flush=True))
    rng = np.random.default_rng([args.seed, 99])
    sample_gan(generator, 10, rng)  # warm-up
    start = time.perf_counter()
    images = sample_gan(generator, 1000, rng)
    per_image = (time.perf_counter() - start) / 1000
    score = judge.score(images)
    final = {"recognised": score["recognised"], "junk": score["junk"], "frechet": float(score["frechet"]),
             "histogram": [float(h) for h in score["histogram"]], "sampling_seconds_per_image": per_image}
    print(f"{history['steps']} steps in {history['train_seconds']:.0f} s; 1000 samples: recognised "
          f"{100 * score['recognised']:.1f}%, junk {100 * score['junk']:.1f}%, Frechet {score['frechet']:.2f}, "
          f"{1e6 * per_image:.0f} us per image")
    if args.save:
        save_gan(args.save, generator, discriminator, history)
        print(f"saved {args.save}")
    return {"history": history, "final": final}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("ring", "glyphs"))
    parser.add_argument("--seeds", type=int, default=5, help="ring: seeds")
    parser.add_argument("--diffusion-steps", type=int, default=8000, help="ring: the denoiser's steps (lesson 03's)")
    parser.add_argument("--sampling-steps", type=int, default=1000, help="ring: DDPM steps")
    parser.add_argument("--budget", type=float, default=240.0, help="glyphs: training seconds")
    parser.add_argument("--seed", type=int, default=0, help="glyphs: seed")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between quality measurements")
    parser.add_argument("--save", type=Path, default=None, help="glyphs: save the trained GAN to this folder")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default benchmarks/results/gan_<what>.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.diffusion_steps, args.sampling_steps, args.budget = 1, 50, 20, 3.0
    if args.eval_every is None:
        args.eval_every = 500 if args.what == "ring" else 200
    results = {"what": args.what, "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    results.update(ring(args) if args.what == "ring" else glyphs(args))
    out = args.out or Path(__file__).parent / "results" / f"gan_{args.what}.json"
    write_results(out, results)
    return results


if __name__ == "__main__":
    main()
