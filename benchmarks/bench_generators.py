"""Diffusion against the generators it replaced (issue 17): a GAN, a VAE and an autoregressive
pixel transformer, each trained for the same wall-clock budget (4 minutes, one process, the same
2 cores) on the same 8-bit 16x16 glyphs, measured in one table:

    train s      training time of the shipped model (its budget) and the steps it bought
    ms/img       sampling wall time per image, in batches of --batch
    recognised   share of samples the shipped glyph classifier files under one digit with p >= 0.9
    FD           Frechet distance of the classifier's features to real glyphs' (GlyphJudge)
    digits       digits (of 10) with >= 2 % of the samples confidently recognised as them
    diversity    spread of the features within a digit, relative to real glyphs' (1 = as varied)
    NLL          bits/dim on held-out 8-bit glyphs: the VAE's -ELBO and the diffusion model's
                 variational bound (Ho et al. 2020, eq. 5, L_0 by eq. 13, reverse variance
                 beta_tilde, the T - 1 middle terms estimated with --strata strata) are upper
                 bounds; the transformer's is exact. +- one standard error over the images

and two more measurements: on gaussians8, the GAN against diffusion over --ring-seeds seeds
(modes covered of 8, share of samples within 3 sigma of a mode; bench_gan.py's ring: lesson 03's
denoiser trained --ring-steps steps, the GAN for the same wall-clock time);
and training stability, the GAN's quality over its training beside diffusion's loss and quality.

    python benchmarks/bench_generators.py                # the shipped models (minutes)
    python benchmarks/bench_generators.py --quick        # a few samples of each: a smoke test

Writes the numbers as JSON (default benchmarks/results/generators.json).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_cases import write_results  # noqa: E402

from tinydiff.data import GlyphDataset  # noqa: E402
from tinydiff.diffusion.forward import predict_x0_and_epsilon  # noqa: E402
from tinydiff.diffusion.likelihood import ddpm_bound, to_8bit  # noqa: E402
from tinydiff.metrics.digit_diversity import confident_digits, digit_coverage, within_digit_diversity  # noqa: E402
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config  # noqa: E402
from tinydiff.pipelines.checkpoint import load_model  # noqa: E402
from tinydiff.pipelines.generator_training import glyphs_8bit  # noqa: E402
from tinydiff.pretrained.folders import REFERENCE_SEED, glyph_judge, glyph_model_dir  # noqa: E402
from tinydiff.pretrained.train_generators import generators_dir  # noqa: E402

TEST_SEED = 3000  # held-out glyphs for the likelihoods and the real-glyph row


def mean_se(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def in_batches(fn, n, batch):
    return np.concatenate([fn(min(batch, n - i), i) for i in range(0, n, batch)])


def diffusion_x0(model, alphas, kind):
    """predict_x0(x_t, t) for the bound: the network's output (of prediction type `kind`) turned
    into an x_0 estimate."""

    def predict_x0(x_t, t):
        out = np.concatenate([model(x_t[i:i + 256].astype(np.float32), t[i:i + 256]) for i in range(0, len(t), 256)])
        return predict_x0_and_epsilon(out.astype(np.float64), x_t, alphas[t], kind)[0]

    return predict_x0


def generators(folder, steps, quick):
    """name -> (sampler(n, rng) -> images (n, 1, 16, 16), nll(x (B, 1, 16, 16), rng) -> bits/dim (B,) or
    None, training log name)."""
    out = {}
    gan_dir = folder / "gan"
    if (gan_dir / "generator").is_dir():
        from tinydiff.pipelines.gan_training import load_gan_model, sample_gan

        gen = load_gan_model(gan_dir / "generator")
        out["GAN (DCGAN, 1 pass)"] = (lambda n, rng: sample_gan(gen, n, rng), None, "gan")
    vae = load_model(folder / "vae").eval()
    out["VAE (decoder mean)"] = (lambda n, rng: vae.sample(n, rng),
                                 lambda x, rng: vae.negative_elbo_bits_per_dim(x, rng), "vae")
    ar = load_model(folder / "pixel_transformer").eval()
    out["pixel transformer (256 tokens)"] = (
        lambda n, rng: ar.to_images(ar.sample(n, rng)),
        lambda x, rng: ar.nll_bits_per_dim(to_8bit(x).reshape(len(x), -1).astype(np.int64)), "pixel_transformer")
    unet, sched_config = load_pipeline(folder / "diffusion")
    ddim = scheduler_from_config("ddim", sched_config)
    alphas = ddim.alphas_cumprod
    for n_steps in steps:
        out[f"diffusion (DDIM {n_steps})"] = (
            lambda n, rng, k=n_steps: sample(unet, ddim, (n, 1, 16, 16), rng, k),
            (lambda x, rng: ddpm_bound(diffusion_x0(unet, alphas, sched_config["prediction_type"]), x, alphas, rng, quick["strata"])["bits_per_dim"])
            if n_steps == steps[0] else None, "diffusion")
    return out


def reference_model(steps):
    """The shipped class-conditional glyph model (30 minutes of training), digits cycled, no guidance."""
    model, config = load_pipeline(glyph_model_dir())
    ddim = scheduler_from_config("ddim", config)
    return lambda n, rng: sample(model, ddim, (n, 1, 16, 16), rng, steps, class_labels=np.arange(n) % 10)


def glyph_table(args, judge):
    folder = Path(args.models)
    training = json.loads((folder / "training.json").read_text()) if (folder / "training.json").is_file() else {}
    reference, ref_labels = GlyphDataset(seed=REFERENCE_SEED, size=16)[0:1000]
    ref_features, _ = judge.features_and_logits(reference)
    test, _ = glyphs_8bit(TEST_SEED, 0, args.nll_images)
    real, _ = glyphs_8bit(TEST_SEED, 10_000, args.samples)
    rows = {}
    entries = generators(folder, args.steps, {"strata": args.strata})
    entries["reference: class-conditional diffusion (DDIM %d)" % args.steps[0]] = (reference_model(args.steps[0]),
                                                                                   None, None)
    entries["real glyphs"] = (None, None, None)
    for name, (sampler, nll, log_name) in entries.items():
        rng = np.random.default_rng(0)
        if sampler is None:
            images, seconds = real, 0.0
        else:
            images, seconds = timed(lambda: in_batches(lambda n, i: sampler(n, rng), args.samples, args.batch))
        scores = judge.score(images)
        features, logits = judge.features_and_logits(images)
        predicted, confident = confident_digits(logits)
        row = {"sample_seconds_per_image": seconds / args.samples, "recognised": scores["recognised"],
               "frechet": scores["frechet"], "digits_covered": digit_coverage(predicted, confident),
               "diversity": within_digit_diversity(features, logits, ref_features, ref_labels)}
        if log_name in training:
            row.update(train_seconds=training[log_name].get("seconds", training[log_name].get("train_seconds")),
                       train_steps=training[log_name]["steps"])
        if nll is not None:
            (bits, nll_seconds) = timed(lambda: nll(test, np.random.default_rng(1)))
            row["nll_bits_per_dim"], row["nll_stderr"] = mean_se(bits)
            row["nll_seconds"] = nll_seconds
        rows[name] = row
        print(f"  {name}: done", flush=True)
    return rows, training


def ring_comparison(args):
    """bench_gan's ring: per seed, lesson 03's denoiser trained --ring-steps steps and the MLP GAN
    trained for the same wall-clock time, 2500 samples each (diffusion: DDPM, 1000 steps)."""
    from bench_gan import ring

    settings = argparse.Namespace(seeds=args.ring_seeds, diffusion_steps=args.ring_steps,
                                  sampling_steps=args.ring_sampling_steps, eval_every=500)
    rows = ring(settings)["rows"]
    return {name: {"modes_covered": [r[key]["modes_covered"] for r in rows],
                   "high_quality_share": [r[key]["high_quality_share"] for r in rows],
                   "train_seconds": [r["train_seconds"] for r in rows]}
            for name, key in (("GAN", "gan"), ("diffusion (DDPM 1000)", "diffusion"))}


def print_tables(report):
    print(f"\nglyphs 16x16, 8-bit; {report['settings']['samples']} samples per row; the same budget for all four "
          f"({report['settings']['budget_seconds']:.0f} s); 2 cores")
    print("| model | train s (steps) | ms/img | recognised | FD | digits | diversity | NLL bits/dim |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in report["glyphs"].items():
        train = f"{r['train_seconds']:.0f} ({r['train_steps']})" if "train_seconds" in r else "-"
        nll = f"{r['nll_bits_per_dim']:.3f} +- {r['nll_stderr']:.3f}" if "nll_bits_per_dim" in r else "-"
        print(f"| {name} | {train} | {1e3 * r['sample_seconds_per_image']:.3f} | {r['recognised']:.1%} | {r['frechet']:.2f} "
              f"| {r['digits_covered']} | {r['diversity']:.2f} | {nll} |")
    if "ring" in report:
        seconds = np.mean(report["ring"]["GAN"]["train_seconds"])
        print(f"\ngaussians8, {report['settings']['ring_seeds']} seeds, {seconds:.0f} s of training each (the "
              f"denoiser's {report['settings']['ring_steps']} steps, the GAN the same time); mean +- sd over seeds")
        print("| model | modes covered (of 8) | high-quality share |")
        print("| --- | --- | --- |")
        for name, r in report["ring"].items():
            print(f"| {name} | {np.mean(r['modes_covered']):.1f} +- {np.std(r['modes_covered']):.1f} "
                  f"| {np.mean(r['high_quality_share']):.1%} +- {np.std(r['high_quality_share']):.1%} |")
    print("\ntraining stability (from the shipped models' training logs)")
    for name, log in report["stability"].items():
        print(f"  {name}: " + "; ".join(f"step {p['step']}: " + ", ".join(f"{k} {v:.3g}" for k, v in p.items()
                                                                           if k not in ("step", "seconds"))
                                        for p in log))


def stability(training):
    """Quality (and loss) at the probed steps of each model's training log."""
    out = {}
    if "gan" in training:
        out["GAN"] = [{k: q[k] for k in ("step", "seconds", "recognised", "frechet") if k in q}
                      for q in training["gan"].get("quality", [])]
    if "diffusion" in training:
        losses = training["diffusion"]["losses"]
        rows = []
        for step, seconds, probe in training["diffusion"]["probes"]:
            recent = [l for s, _, l in losses if step - 50 < s <= step] or [np.nan]
            rows.append({"step": step, "seconds": seconds, "loss": float(np.mean(recent)), **probe})
        out["diffusion"] = rows
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(generators_dir()), help="folder of the four generators")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--batch", type=int, default=200, help="images sampled per batch")
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 10], help="DDIM steps of the diffusion rows")
    parser.add_argument("--nll-images", type=int, default=200)
    parser.add_argument("--strata", type=int, default=50, help="timestep strata of the diffusion bound")
    parser.add_argument("--ring-seeds", type=int, default=5)
    parser.add_argument("--ring-steps", type=int, default=4000,
                        help="the 2-D denoiser's steps (half of lesson 03's 8000: a shorter lock on a shared machine)")
    parser.add_argument("--ring-sampling-steps", type=int, default=1000, help="its DDPM steps")
    parser.add_argument("--quick", action="store_true", help="a few samples and seconds: a smoke test")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/generators.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.batch, args.steps, args.nll_images, args.strata = 20, 20, [4], 4, 3
        args.ring_seeds, args.ring_steps, args.ring_sampling_steps = 1, 50, 20
    judge = glyph_judge()
    started_load = os.getloadavg()[0]
    glyphs, training = glyph_table(args, judge)
    budget = max((log.get("budget_seconds", 0) for log in training.values()), default=0)
    report = {"settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                           "budget_seconds": budget, "load_average": [started_load]},
              "glyphs": glyphs, "stability": stability(training)}
    try:
        report["ring"] = ring_comparison(args)
    except ImportError as err:  # the GAN of issue 17 is another branch's: without it, no ring table
        print(f"ring comparison skipped: {err}")
    report["settings"]["load_average"].append(os.getloadavg()[0])
    print_tables(report)
    write_results(args.json, report)
    return report


if __name__ == "__main__":
    main()
