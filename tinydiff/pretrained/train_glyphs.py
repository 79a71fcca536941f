"""Train the shipped glyph models from scratch: the classifier used to measure samples, then
the class-conditional glyph UNet. Writes into this package's folder (or --out) and prints
the quality measured at the end.

    python -m tinydiff.pretrained.train_glyphs                 # both, the shipped settings
    python -m tinydiff.pretrained.train_glyphs --part unet --steps 500 --out /some/folder
"""

import json
import time
from pathlib import Path

import numpy as np

from tinydiff.data import GlyphDataset
from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import UNet2DModel
from tinydiff.pipelines import TrainConfig, Trainer, load_pipeline, sample, scheduler_from_config
from tinydiff.pipelines.checkpoint import load_model, save_model
from tinydiff.pipelines.classifier import accuracy, train_glyph_classifier
from tinydiff.pipelines.data_sources import make_source
from tinydiff.pretrained import CLASSIFIER_SIZE, REFERENCE_SEED
from tinydiff.pretrained.shipping import run_resumable, script_parser, ship_pipeline
from tinydiff.runtime.parallel import ParallelRunner, default_processes

CLASSIFIER_SEED, HELD_OUT_SEED, UNET_SEED = 1000, REFERENCE_SEED, 0

# The shipped model works on 16x16 glyphs, and why is in the README: a training step costs a
# quarter of a 32x32 one, so 30 minutes on 2 cores buy about 2250 steps of 64 instead of 600
# in one process (3000 take 14 minutes in two),
# and a model this size needs the steps more than the pixels (a (16, 32, 64) UNet at 32x32
# after 1200 steps drew recognisable digits only 28% of the time). The architecture is the
# reference UNet of the benchmarks, (32, 64, 128) with attention at the lowest level.
GLYPH_SIZE = CLASSIFIER_SIZE
GLYPH_UNET = dict(
    sample_size=GLYPH_SIZE, in_channels=1, out_channels=1, block_out_channels=(32, 64, 128), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8, attention_head_dim=8,
    # ten digits and the null class of classifier-free guidance (Ho & Salimans 2022): training
    # replaces a label by the null index 10 with probability cond_drop_prob
    num_class_embeds=11, class_embed_null_index=10,
)
# v-prediction (Salimans & Ho 2022) keeps the model's estimate of x_0 bounded at high noise,
# where an epsilon-model's estimate (x_t - sqrt(1 - abar) eps) / sqrt(abar) blows its errors up
# and short runs draw grey, noisy backgrounds; min-SNR-5 weighting (Hang et al. 2023) stops the
# many nearly clean timesteps from dominating the loss.
GLYPH_SCHEDULER = dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
GLYPH_TRAINING = dict(lr=2e-3, warmup_steps=100, ema_decay=0.998, min_snr_gamma=5.0, cond_drop_prob=0.1)
# The length of the run and its bookkeeping. `tinydiff train --recipe glyphs` reads all four
# dicts (tinydiff/recipes.py), so the command line trains this same model.
# The guidance scale `tinydiff sample` uses for this model unless told otherwise (stored in its
# model_index.json): chosen from benchmarks/bench_guidance.py, whose table the README quotes.
GLYPH_GUIDANCE_SCALE = 1.5
GLYPH_RUN = dict(steps=3000, batch_size=64, seed=UNET_SEED, checkpoint_every=250, sample_every=500)
DEFAULT_STEPS = GLYPH_RUN["steps"]


def train_classifier(out, steps):
    started = time.perf_counter()
    model, log = train_glyph_classifier(steps=steps, batch_size=64, seed=CLASSIFIER_SEED, size=GLYPH_SIZE)
    images, labels = GlyphDataset(seed=HELD_OUT_SEED, size=GLYPH_SIZE)[0:2000]
    acc = accuracy(model, images, labels)
    save_model(model, out / "glyph_classifier")
    print(f"classifier: held-out accuracy {acc:.4f}, final loss {np.mean(log[-50:]):.4f}, "
          f"{time.perf_counter() - started:.0f} s")
    return acc


def train_unet(out, steps, batch_size, work_dir, until=None):
    config = TrainConfig(steps=steps, batch_size=batch_size, seed=GLYPH_RUN["seed"],
                         checkpoint_every=GLYPH_RUN["checkpoint_every"], sample_every=GLYPH_RUN["sample_every"],
                         **GLYPH_TRAINING)
    model = UNet2DModel(rng=np.random.default_rng(UNET_SEED), **GLYPH_UNET)
    scheduler = DDPMScheduler(**GLYPH_SCHEDULER)
    data = make_source("glyphs", batch_size, UNET_SEED, image_size=GLYPH_SIZE, labelled=True)
    trainer = Trainer(model, scheduler, data, config, work_dir, parallel=ParallelRunner(default_processes(batch_size)))
    minutes = run_resumable(trainer, work_dir, until)
    if trainer.step < steps:
        print(f"unet: stopped at step {trainer.step} of {steps} ({minutes:.1f} min); run again to continue")
        return minutes
    ship_pipeline(Path(work_dir) / "final", out / "glyphs", scheduler, guidance_scale=GLYPH_GUIDANCE_SCALE)
    print(f"unet: {steps} steps of batch {batch_size} in {minutes:.1f} min (this run)")
    return minutes


def measure(out, num=500, steps=50):
    """Quality of the shipped UNet's DDIM samples, judged by the shipped classifier."""
    from tinydiff.metrics import GlyphJudge

    classifier = load_model(out / "glyph_classifier")
    judge = GlyphJudge(classifier, GlyphDataset(seed=HELD_OUT_SEED, size=GLYPH_SIZE)[0:2000][0])
    model, sched_config = load_pipeline(out / "glyphs")
    ddim = scheduler_from_config("ddim", sched_config)
    labels = np.arange(num) % 10
    size = model.config["sample_size"]
    x = sample(model, ddim, (num, 1, size, size), np.random.default_rng(123), steps, class_labels=labels,
               progress=True)
    scores = judge.score(x, labels)
    reals = GlyphDataset(seed=3000, size=size)  # real glyphs of the same digits as the samples
    real = judge.score(*reals.get(reals.indices_with_labels(labels)))
    return {"samples": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in scores.items()},
            "real_glyphs": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in real.items()}}


def main(argv=None):
    parser = script_parser(__doc__, ("classifier", "unet", "measure"), "runs/pretrained_glyphs")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="UNet training steps")
    parser.add_argument("--batch-size", type=int, default=GLYPH_RUN["batch_size"])
    parser.add_argument("--until", type=int, default=None,
                        help="stop after this step (train in chunks; the next run resumes)")
    parser.add_argument("--classifier-steps", type=int, default=600)
    args = parser.parse_args(argv)
    report = {}
    if args.part in ("all", "classifier"):
        report["classifier_accuracy"] = train_classifier(args.out, args.classifier_steps)
    if args.part in ("all", "unet"):
        report["unet_minutes"] = train_unet(args.out, args.steps, args.batch_size, args.work, args.until)
    if args.part in ("all", "measure"):
        report["quality"] = measure(args.out)
        print(json.dumps(report["quality"], indent=1))
    return report


if __name__ == "__main__":
    main()
