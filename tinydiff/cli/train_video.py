"""`tinydiff train --dataset moving-shapes`: a text-to-image pipeline inflated to video and trained
on Moving Shapes clips (tinydiff.pipelines.video_training), AnimateDiff's way by default.

    tinydiff train --dataset moving-shapes --out runs/video                 # motion modules only
    tinydiff train --dataset moving-shapes --train unet --out runs/video-all  # the whole video UNet

--batch-size counts frames, as for images (64 = 8 clips of 8 frames): the cost of a step stays
the image model's. OUT/final is a TextToVideoPipeline folder: `tinydiff sample --model
OUT/final --prompt "a red circle moving right" --out clips.gif`."""

from pathlib import Path

from tinydiff.cli.flag_types import positive_int

VIDEO_DATASET = "moving-shapes"
VIDEO_ONLY_FLAGS = ("text_to_image", "train", "train_text", "frames", "clips")


def add_video_flags(p):
    """The flags only --dataset moving-shapes takes."""
    p.add_argument("--text-to-image", type=Path, metavar="DIR",
                   help="with --dataset moving-shapes: the TextToImagePipeline folder to inflate to video (default: "
                        "the shipped one); its UNet, VAE, text encoder and scheduler are the video model's start")
    p.add_argument("--train", choices=("motion", "unet"), default=None,
                   help="with --dataset moving-shapes: what trains besides the text encoder: the motion modules on "
                        "the frozen image UNet (motion, AnimateDiff's way; the default) or the whole video UNet")
    p.add_argument("--train-text", choices=("new_words", "all"), default=None,
                   help="with --dataset moving-shapes: what of the text encoder learns the motion words: only their "
                        "rows of the token table (new_words, the default: still prompts keep the image model's "
                        "states) or the whole encoder (all)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="with --dataset moving-shapes: frames per clip (default 8; at most 8 without bouncing)")
    p.add_argument("--clips", type=positive_int, default=None,
                   help="with --dataset moving-shapes: clips encoded once and trained on (default 4096)")


def check_video_flags(args):
    """moving-shapes takes none of the image runs' model flags; the others take no video flag."""
    video = args.dataset == VIDEO_DATASET
    if not video:
        given = [f"--{name.replace('_', '-')}" for name in VIDEO_ONLY_FLAGS if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{given[0]}: only for --dataset {VIDEO_DATASET}")
        return
    for flag, given in (("--text-encoder", args.text_encoder is not None), ("--latent", args.latent is not None),
                        ("--class-conditional", args.class_conditional),
                        ("--prediction-type", args.prediction_type != "epsilon"),
                        ("--beta-schedule", args.beta_schedule != "squaredcos_cap_v2"),
                        ("--data-path", args.data_path is not None), ("--recipe", args.recipe is not None)):
        if given:
            raise ValueError(f"{flag}: --dataset {VIDEO_DATASET} inflates a text-to-image pipeline (--text-to-image) "
                             f"and keeps its VAE, text encoder and noise schedule; drop {flag}")


def video_parts(args, seed):
    """(denoiser, data, vae, tokenizer, scheduler) of a video run; ValueError for a bad flag."""
    import numpy as np

    from tinydiff.diffusion import DDPMScheduler
    from tinydiff.pipelines.sampling import scheduler_config
    from tinydiff.pipelines.text_to_image import TextToImagePipeline
    from tinydiff.pipelines.video_training import (TextVideoDenoiser, add_motion_words, clip_latent_source,
                                                   inflate)

    folder = args.text_to_image
    if folder is None:
        from tinydiff.pretrained import text2image_dir

        folder = text2image_dir()
    try:
        t2i = TextToImagePipeline.from_pretrained(folder)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--text-to-image: {err}") from None
    frames = args.frames or 8
    if args.batch_size % frames:
        raise ValueError(f"--batch-size: {args.batch_size} frames per step is not a whole number of clips of "
                         f"{frames} frames; use a multiple of {frames}")
    rng = np.random.default_rng(seed)
    add_motion_words(t2i.text_encoder, t2i.tokenizer, rng)
    unet = inflate(t2i.unet, rng)
    clips = args.clips or 4096
    print(f"encoding the {clips * frames} frames of {clips} Moving Shapes clips with the VAE of {folder}")
    data = clip_latent_source(t2i.vae, t2i.tokenizer, clips, args.batch_size // frames, seed,
                              args.cond_drop_prob if args.cond_drop_prob is not None else 0.1, frames, args.image_size)
    config = {k: v for k, v in scheduler_config(t2i.scheduler).items() if not k.startswith("_")}
    scheduler = DDPMScheduler(**{k: config[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start",
                                                        "beta_end", "prediction_type")}, clip_sample=False)
    return TextVideoDenoiser(unet, t2i.text_encoder, frames), data, t2i.vae, t2i.tokenizer, scheduler


def train_text_to_video(args, state, removal, settings):
    """Run `tinydiff train --dataset moving-shapes`. Returns 0; ValueError for a bad flag."""
    from tinydiff.cli.run import run_to_the_end
    from tinydiff.cli.train import train_config
    from tinydiff.pipelines.outputs import remove_run
    from tinydiff.pipelines.video_training import VideoTrainer

    if args.processes not in (None, 1):
        raise ValueError("--processes: a video run trains in one process (its kernels use every core)")
    model, data, vae, tokenizer, scheduler = video_parts(args, args.seed)
    config = train_config(args, state, data.cond_drop_prob)
    config.batch_size = data.batch_size  # clips per step
    remove_run(args.out, removal)
    trainer = VideoTrainer(model, scheduler, vae, tokenizer, data, config, args.out, train_part=args.train or "motion",
                           settings=settings, train_text=args.train_text or "new_words")
    trained = sum(p.data.size for p in trainer.params)
    print(f"training {trained / 1e6:.2f} M of the video model's {model.num_parameters() / 1e6:.2f} M parameters "
          f"({args.train or 'motion'}: {'motion modules' if (args.train or 'motion') == 'motion' else 'the whole UNet'}"
          f", and of the text encoder {args.train_text or 'new_words'}) on {data.batch_size} clips of {data.num_frames} frames per step; output in {args.out}")
    log = run_to_the_end(trainer, "train", args.resume)
    print(f"final loss {log[-1][1]:.4f}; text-to-video pipeline in {args.out / 'final'} (tinydiff sample --model "
          f"{args.out / 'final'} --prompt \"a red circle moving right\" --out clips.gif); samples in "
          f"{args.out / 'samples'}")
    return 0
