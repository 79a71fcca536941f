"""Classifier-free guidance on the shipped glyph model: what each guidance scale buys and costs.

The shape of Ho & Salimans 2022, Table 1, in miniature. For every guidance scale s (diffusers'
convention, s = 1 + w of their eq. 6: s = 0 samples the null class, s = 1 is no guidance) and
rescale phi (Lin et al. 2023, sec. 3.4), DDIM-50 samples of all ten digits from fixed seeds are
judged by the shipped glyph classifier:

    recognised     share of samples the classifier files under one digit with p >= 0.9
    as asked       share recognised AND of the digit that was asked for (fidelity)
    Frechet        distance of the classifier's features to real glyphs': overall (against the
                   judge's held-out reference) and the mean over the ten classes (each class's
                   samples against real glyphs of that digit)
    diversity      mean pairwise distance of the features within a class, relative to real
                   glyphs' of the same digits (1 = as varied as the data)
    clipped        share of the guided prediction's x_0 values, over all steps, outside
                   [-1, 1]: what clip_sample clips. The background of a glyph is exactly -1,
                   so about half of a good model's background predictions land a hair below
                   it; the real-glyph row (the model at s = 1 denoising noised real glyphs at
                   the same timesteps) is the level to compare with
    overshoot      share of those values more than 0.1 outside [-1, 1]: saturation proper,
                   what guidance's extrapolation does to x_0 at large s
    s/img          sampling wall time per image; guidance runs one batched forward of 2B

Every figure is the mean over --seeds seeds (+- the standard deviation across seeds). A real-glyph
row gives the floor: a second set of real glyphs measured the same way.

    python benchmarks/bench_guidance.py                       # 1000 samples x 3 seeds per setting
    python benchmarks/bench_guidance.py --num 200 --seeds 1   # a quick look
    python benchmarks/bench_guidance.py --scales 1 3 --rescales 0
    python benchmarks/bench_guidance.py --scales 1 2 --rescales 0 --interval 200 600 --interval 0 999

--interval LOW HIGH (repeatable) runs every guided scale with guidance only at the timesteps
LOW <= t <= HIGH (Kynkaanniemi et al. 2024; sample()'s guidance_interval), one row per interval,
instead of guidance at every step; outside it a step makes one forward of B, the conditional one.
--interval 0 999 is guidance at every step. s = 1 rows have no interval (nothing to guide).

Writes the numbers as JSON (default benchmarks/results/guidance.json).
"""

import argparse
import json
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/__init__.py)
import numpy as np

from tinydiff.data import GlyphDataset
from tinydiff.diffusion.forward import predict_x0_and_epsilon
from tinydiff.metrics import feature_statistics, frechet_distance, mean_pairwise_distance
from tinydiff.metrics.glyph_quality import CONFIDENT, NUM_DIGITS, softmax
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
from tinydiff.pipelines.guidance import GUIDANCE_INTERVAL_KEY, GUIDANCE_SCALE_KEY, guided_output, scale_at
from tinydiff.pretrained import glyph_judge, glyph_model_dir

from train_cases import write_results

SCALES = (0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
RESCALES = (0.0, 0.7)
OVERSHOOT = 0.1  # how far beyond [-1, 1] a predicted x_0 value counts as saturated
REAL_SEED, RULER_SEED = 3000, 4000  # real glyphs to compare with, and a second set as the floor


class SaturationProbe:
    """The model, as sample() calls it, counting how many values of the guided prediction's x_0
    fall outside [-1, 1]. It redoes the guidance arithmetic on the forward's output with the
    library's own guided_output, so that it counts what the scheduler is handed."""

    def __init__(self, model, scheduler, guidance_scale, guidance_rescale, guidance_interval=None):
        self.model, self.config = model, model.config
        self.interval = guidance_interval
        self.alphas_cumprod = scheduler.alphas_cumprod
        self.prediction_type = scheduler.config.prediction_type
        self.scale, self.rescale = guidance_scale, guidance_rescale
        self.outside = self.far = self.total = 0

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, x, t, labels):
        out = self.model(x, t, labels)
        scale = scale_at(int(t[0]), self.scale, self.interval)  # 1 outside the guidance interval
        B = len(x) if scale == 1.0 else len(x) // 2  # guided calls stack (cond, null): 2B
        guided = guided_output(lambda *_: out, x[:B], int(t[0]), labels[:B], labels[B:], scale, self.rescale)
        x0, _ = predict_x0_and_epsilon(guided, x[:B], self.alphas_cumprod[int(t[0])], self.prediction_type)
        self.outside += int((np.abs(x0) > 1.0).sum())
        self.far += int((np.abs(x0) > 1.0 + OVERSHOOT).sum())
        self.total += x0.size
        return out


def within_class_spread(features, labels):
    """Mean over classes of the mean pairwise Euclidean distance between features of one class."""
    spreads = []
    for c in range(NUM_DIGITS):
        f = features[labels == c].astype(np.float64)
        if len(f) >= 2:
            spreads.append(mean_pairwise_distance(f))
    return float(np.mean(spreads))


def class_frechet(features, labels, real_features, real_labels):
    """Mean over the ten digits of the Frechet distance between one digit's samples and real glyphs of it."""
    return float(np.mean([frechet_distance(*feature_statistics(features[labels == c]),
                                           *feature_statistics(real_features[real_labels == c]))
                          for c in range(NUM_DIGITS)]))


def judge_set(judge, images, labels, real):
    """The measures of one set of images asked to show `labels`, against the real set `real`."""
    features, logits = judge.features_and_logits(images)
    probs = softmax(logits.astype(np.float64))
    predicted = probs.argmax(axis=1)
    recognised = (probs.max(axis=1) >= CONFIDENT) & (predicted < NUM_DIGITS)
    return {
        "recognised": float(recognised.mean()),
        "as_asked": float((recognised & (predicted == labels)).mean()),
        "frechet": frechet_distance(*feature_statistics(features), *judge.reference_stats),
        "frechet_class": class_frechet(features, labels, real["features"], real["labels"]),
        "diversity": within_class_spread(features, labels) / real["spread"],
    }


def real_set(judge, seed, labels):
    glyphs = GlyphDataset(seed=seed, size=judge.size)
    images, real_labels = glyphs.get(glyphs.indices_with_labels(labels))
    features, _ = judge.features_and_logits(images)
    return {"images": images, "labels": real_labels, "features": features,
            "spread": within_class_spread(features, real_labels)}


def real_saturation(model, scheduler, real, steps):
    """The model at s = 1 predicting x_0 from real glyphs noised to each sampling timestep."""
    scheduler.set_timesteps(steps)
    rng = np.random.default_rng(0)
    probe = SaturationProbe(model, scheduler, 1.0, 0.0).eval()
    for t in scheduler.timesteps:
        noise = rng.standard_normal(real["images"].shape).astype(np.float32)
        t_batch = np.full(len(noise), int(t))
        x_t = scheduler.add_noise(real["images"], noise, t_batch).astype(np.float32)
        probe(x_t, t_batch, real["labels"])
    return probe.outside / probe.total, probe.far / probe.total


def run_setting(model, scheduler, judge, real, num, steps, seed, s, phi, interval=None):
    labels = np.arange(num) % NUM_DIGITS
    size = model.config["sample_size"]
    probe = SaturationProbe(model, scheduler, s, phi, interval)
    started = time.perf_counter()
    images = sample(probe, scheduler, (num, 1, size, size), np.random.default_rng(seed), steps,
                    class_labels=labels, guidance_scale=s, guidance_rescale=phi, guidance_interval=interval)
    seconds = time.perf_counter() - started
    return {**judge_set(judge, images, labels, real), "clipped": probe.outside / probe.total, "overshoot": probe.far / probe.total,
            "seconds_per_image": seconds / num}


KEYS = ("recognised", "as_asked", "frechet", "frechet_class", "diversity", "clipped", "overshoot",
        "seconds_per_image")


def summarise(runs):
    """{key: (mean, std)} over seeds."""
    return {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))) for k in KEYS}


def row(name, summary):
    def cell(k, fmt):
        mean, std = summary[k]
        return f"{fmt.format(mean)}+-{fmt.format(std)}"
    pct = "{:.1%}"
    return (f"| {name:<22} | {cell('recognised', pct):>14} | {cell('as_asked', pct):>14} | "
            f"{cell('frechet', '{:.3f}'):>12} | {cell('frechet_class', '{:.3f}'):>12} | "
            f"{cell('diversity', '{:.3f}'):>12} | {cell('clipped', '{:.1%}'):>12} | {cell('overshoot', '{:.2%}'):>14} | "
            f"{cell('seconds_per_image', '{:.4f}'):>15} |")


def name(s, phi, interval):
    """A row's name: s=1.5 phi=0, and t in [LOW, HIGH] when guidance has an interval."""
    return f"s={s:g} phi={phi:g}" + (f" t[{interval[0]},{interval[1]}]" if interval else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=1000, help="samples per setting and seed (default 1000)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--scales", type=float, nargs="+", default=SCALES, help=f"guidance scales (default {SCALES})")
    parser.add_argument("--rescales", type=float, nargs="+", default=RESCALES,
                        help=f"guidance_rescale values (default {RESCALES}); only phi = 0 runs at s = 0 and s = 1")
    parser.add_argument("--interval", type=int, nargs=2, action="append", default=[], metavar=("LOW", "HIGH"),
                        help="run every guided scale with guidance only at timesteps LOW <= t <= HIGH "
                             "(repeatable, one row each; default: every step; sample()'s guidance_interval)")
    parser.add_argument("--model", type=Path, default=None, help="a model folder (default: the shipped glyph model)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "guidance.json")
    args = parser.parse_args(argv)
    if args.num < 2 * NUM_DIGITS:
        parser.error(f"--num: expected at least {2 * NUM_DIGITS} (two samples per digit), got {args.num}")
    if args.seeds < 1:
        parser.error(f"--seeds: expected at least 1, got {args.seeds}")

    folder = args.model or glyph_model_dir()
    model, sched_config = load_pipeline(folder)
    index = folder / "model_index.json"
    stored = json.loads(index.read_text()) if index.is_file() else {}
    recommended = stored.get(GUIDANCE_SCALE_KEY)
    recommended_interval = tuple(stored[GUIDANCE_INTERVAL_KEY]) if stored.get(GUIDANCE_INTERVAL_KEY) else None
    scheduler = scheduler_from_config("ddim", sched_config)
    judge = glyph_judge(num_reference=2000)
    labels = np.arange(args.num) % NUM_DIGITS
    real = real_set(judge, REAL_SEED, labels)
    ruler = judge_set(judge, real_set(judge, RULER_SEED, labels)["images"], labels, real)
    ruler["clipped"], ruler["overshoot"] = real_saturation(model, scheduler, real, args.steps)
    ruler["seconds_per_image"] = 0.0
    print(f"the model folder recommends guidance scale {recommended}"
          + (f" in the interval of timesteps {list(recommended_interval)}" if recommended_interval else ""))

    # rescale changes nothing at s = 1 (the guided output is the conditional one), and at s = 0
    # it would pull the unconditional output towards the conditional one's spread: run phi = 0 only
    # an interval changes nothing at s = 1 either
    intervals = [tuple(i) for i in args.interval] or [None]
    settings = [(s, phi, interval) for s in args.scales for phi in (args.rescales if s not in (0.0, 1.0) else (0.0,))
                for interval in (intervals if s != 1.0 else (None,))]
    results = {}
    for s, phi, interval in settings:
        runs = []
        for seed in range(args.seeds):
            runs.append(run_setting(model, scheduler, judge, real, args.num, args.steps, seed, s, phi, interval))
        results[(s, phi, interval)] = {"seeds": runs, **summarise(runs)}
        print(f"{name(s, phi, interval)}: as asked {results[(s, phi, interval)]['as_asked'][0]:.1%}, "
              f"Frechet {results[(s, phi, interval)]['frechet'][0]:.3f}", flush=True)

    print(f"\nDDIM-{args.steps}, {args.num} samples (all ten digits equally) x {args.seeds} seeds per row; "
          f"mean+-std over seeds")
    print("| setting                |     recognised |       as asked |      Frechet | Frechet/cls  |    diversity "
          "|      clipped |      overshoot |           s/img |")
    print("|" + "|".join("-" * n for n in (24, 16, 16, 14, 14, 14, 14, 16, 17)) + "|")
    print(row("real glyphs", {k: (v, 0.0) for k, v in ruler.items()}))
    for key, summary in results.items():
        print(row(name(*key), summary))
    base = results.get((1.0, 0.0, None))
    if base:
        print("\ntime per image relative to s = 1 (guidance runs one forward of 2B per step):")
        for key, summary in results.items():
            print(f"  {name(*key)}: {summary['seconds_per_image'][0] / base['seconds_per_image'][0]:.2f}x")
    if base and recommended is not None and (recommended, 0.0, recommended_interval) in results:
        at = results[(recommended, 0.0, recommended_interval)]
        print(f"\nat the recommended {name(recommended, 0.0, recommended_interval)}: "
              f"{at['as_asked'][0]:.2%} recognised as asked "
              f"(target >= 99.5%), Frechet {at['frechet'][0] / base['frechet'][0] - 1:+.1%} against s = 1 "
              f"(target <= +10%), time per image {at['seconds_per_image'][0] / base['seconds_per_image'][0]:.2f}x "
              f"(target <= 2.1x)")
    report = {"num": args.num, "recommended_scale": recommended, "recommended_interval": recommended_interval,
              "seeds": args.seeds, "steps": args.steps, "real_glyphs": ruler,
              "settings": [{"guidance_scale": s, "guidance_rescale": phi, "guidance_interval": interval, **r}
                           for (s, phi, interval), r in results.items()]}
    write_results(args.json, report)
    return report


if __name__ == "__main__":
    main()
