"""Train the shipped text-to-video pipeline (shapes_text2video/) from the shipped text-to-image
pipeline (shapes_text2image/), AnimateDiff's way (Guo et al. 2023): its UNet inflated to a
UNetMotionModel, frozen; only the motion modules (one temporal transformer after each resnet of
the down and up blocks, reading the caption's text states: MotionAdapter's
motion_cross_attention_dim, a tinydiff extension) and the text encoder, which learns the motion
words, train on Moving Shapes clips of 8 frames, encoded frame by frame with the shipped Shapes VAE.

    python -m tinydiff.pretrained.train_video                        # the shipped settings
    python -m tinydiff.pretrained.train_video --part unet --work runs/video   # the whole-UNet run
                                                                     # (measured, not shipped)

Every run resumes from its checkpoints in its work folder (--until N stops after step N).
"""

from pathlib import Path

import numpy as np

from tinydiff.diffusion import DDPMScheduler
from tinydiff.pipelines import TrainConfig
from tinydiff.pipelines.sampling import scheduler_config
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pipelines.text_to_video import TextToVideoPipeline
from tinydiff.pipelines.video_training import (TRAINED_GUIDANCE_SCALE, TextVideoDenoiser, VideoTrainer,
                                               add_motion_words, clip_latent_source, inflate)
from tinydiff.pretrained.folders import HERE
from tinydiff.pretrained.shipping import run_resumable, script_parser

VIDEO_SEED = 30
NUM_FRAMES = 8
NUM_CLIPS = 4096  # encoded once: 32768 frames
CLIPS_PER_STEP = 8  # 64 frames, the text-to-image model's batch
MOTION_STEPS = 2350  # the shipped run (text-reading motion modules + the motion words' rows): --minutes 21, 0.53 s a step on 2 cores
UNET_STEPS = 700  # the whole-UNet comparison: 8 minutes of training
LR = 1e-3
COND_DROP_PROB = 0.1
PROBE_STEPS = 200  # --minutes: the run's length while its pace is measured (its warm-up as any longer run's)


def video_train_config(steps, seed=VIDEO_SEED):
    return TrainConfig(steps=steps, batch_size=CLIPS_PER_STEP, lr=LR, warmup_steps=min(100, steps // 2), seed=seed,
                       checkpoint_every=100, keep_checkpoints=40, sample_every=600, sample_steps=20, ema_decay=0.995,
                       min_snr_gamma=5.0, cond_drop_prob=COND_DROP_PROB, num_samples=4)


def build_run(t2i_folder, work, train_part, steps, seed=VIDEO_SEED, num_clips=NUM_CLIPS, train_text="new_words"):
    """The VideoTrainer of a run in `work`: the text-to-image pipeline in t2i_folder inflated,
    the motion words added, num_clips clips encoded; the text-to-image model's noise schedule."""
    t2i = TextToImagePipeline.from_pretrained(t2i_folder)
    rng = np.random.default_rng(seed)
    add_motion_words(t2i.text_encoder, t2i.tokenizer, rng)
    unet = inflate(t2i.unet, rng)
    data = clip_latent_source(t2i.vae, t2i.tokenizer, num_clips, CLIPS_PER_STEP, seed, COND_DROP_PROB, NUM_FRAMES)
    config = scheduler_config(t2i.scheduler)
    scheduler = DDPMScheduler(**{k: config[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start",
                                                        "beta_end", "prediction_type")}, clip_sample=False)
    model = TextVideoDenoiser(unet, t2i.text_encoder, NUM_FRAMES)
    return VideoTrainer(model, scheduler, t2i.vae, t2i.tokenizer, data, video_train_config(steps, seed), work,
                        train_part=train_part, guidance_scale=TRAINED_GUIDANCE_SCALE, train_text=train_text)


def steps_for(trainer, work, minutes, probe=30, skip=10):
    """Train steps 0 .. probe-1, time steps skip .. probe-1 (the first compile Numba's kernels)
    and return how many steps fit in `minutes` of training at that pace (a multiple of 50). The
    warm-up (100 steps) does not depend on the total, so fixing it now changes nothing before."""
    import time

    trainer.run(until=skip)
    started = time.perf_counter()
    trainer.run(until=probe)
    per_step = (time.perf_counter() - started) / (probe - skip)
    steps = int((minutes * 60 / per_step) // 50 * 50)
    print(f"{per_step:.2f} s per step: {steps} steps fit in {minutes} minutes")
    return max(steps, 2 * probe)


def train(out, t2i_folder, work, train_part="motion", steps=MOTION_STEPS, until=None, minutes=None,
          train_text="new_words"):
    """Train in `work` (resumed if it holds checkpoints); when the run is complete and `out` is
    given, write its final pipeline there with float16 weights. minutes: a new run's length is
    chosen to fit that many minutes (steps_for), instead of `steps`. Returns {"minutes", "steps"}."""
    import time

    started = time.perf_counter()
    resumed = (Path(work) / "checkpoints" / "latest").is_file()
    probing = minutes is not None and not resumed
    # a probed run starts as PROBE_STEPS long and is then extended (a resumed run may grow, not shrink)
    trainer = build_run(t2i_folder, work, train_part, PROBE_STEPS if probing else steps, train_text=train_text)
    if probing:
        steps = trainer.config.steps = max(steps_for(trainer, work, minutes), PROBE_STEPS)
    run_resumable(trainer, work, until=until)
    minutes = (time.perf_counter() - started) / 60
    print(f"video ({train_part}): {trainer.step} of {steps} steps of {CLIPS_PER_STEP} clips in {minutes:.1f} min "
          f"(this call: encoding the clips, training, checkpoints and sample grids)")
    if out is not None and trainer.step == steps:
        TextToVideoPipeline.from_pretrained(Path(work) / "final").save_pretrained(
            out, dtype=np.float16, guidance_scale=TRAINED_GUIDANCE_SCALE)
        print(f"shipped to {out}")
    return {"minutes": minutes, "steps": trainer.step}


def export_checkpoint(t2i_folder, checkpoint, out, train_part="motion", seed=VIDEO_SEED, train_text="new_words"):
    """Write the TextToVideoPipeline of a run's checkpoint folder (its EMA weights) to `out`, e.g.
    to compare the motion-only run at the whole-UNet run's length. The trained parameters are
    the trainer's (motion modules or the whole UNet, then the motion words' rows), in order."""
    from tinydiff.pipelines.checkpoint import load_arrays
    from tinydiff.pipelines.video_training import TRAINED_GUIDANCE_SCALE as SCALE

    t2i = TextToImagePipeline.from_pretrained(t2i_folder)
    rng = np.random.default_rng(seed)
    add_motion_words(t2i.text_encoder, t2i.tokenizer, rng)
    model = TextVideoDenoiser(inflate(t2i.unet, rng), t2i.text_encoder, NUM_FRAMES)
    model.load_state_dict(load_arrays(Path(checkpoint) / "diffusion_pytorch_model.safetensors"))
    trained = model.unet.motion_parameters() if train_part == "motion" else model.unet.parameters()
    text = [model.text_encoder.text_model.embeddings.token_embedding.weight]
    trained = trained + (text if train_text == "new_words" else model.text_encoder.parameters())
    shadows = load_arrays(Path(checkpoint) / "ema.safetensors")
    for i, p in enumerate(trained):
        p.data[...] = shadows[f"shadow.{i}"]
    ddim = t2i.scheduler
    TextToVideoPipeline(model.unet, t2i.vae, model.text_encoder, t2i.tokenizer, ddim, SCALE, NUM_FRAMES).save_pretrained(
        out, dtype=np.float16)
    return out


def main(argv=None):
    parser = script_parser(__doc__, ("motion", "unet"), "runs/video")
    parser.add_argument("--t2i", type=Path, default=HERE / "shapes_text2image",
                        help="the text-to-image pipeline to inflate (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=None, help=f"default {MOTION_STEPS} (motion), {UNET_STEPS} (unet)")
    parser.add_argument("--until", type=int, default=None, help="stop after this step (resume later)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="a new run trains as many steps as fit in this many minutes (measured on its first steps)")
    parser.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "OUT"),
                        help="only write the pipeline of a --part run's checkpoint folder (EMA weights) to OUT")
    parser.add_argument("--train-text", choices=("new_words", "all"), default="new_words",
                        help="what of the text encoder learns: the motion words' rows (default) or all of it")
    args = parser.parse_args(argv)
    if args.export:
        print("wrote", export_checkpoint(args.t2i, args.export[0], Path(args.export[1]),
                                         "unet" if args.part == "unet" else "motion", train_text=args.train_text))
        return {}
    report = {}
    if args.part in ("all", "motion"):
        report["motion"] = train(args.out / "shapes_text2video", args.t2i, args.work / "motion", "motion",
                                 args.steps or MOTION_STEPS, args.until, args.minutes, args.train_text)
    if args.part in ("all", "unet"):  # measured against the shipped run, not shipped
        report["unet"] = train(None, args.t2i, args.work / "unet", "unet", args.steps or UNET_STEPS, args.until,
                               args.minutes, args.train_text)
    print(report)
    return report


if __name__ == "__main__":
    main()
