"""`tinydiff sample`: draw images from a trained model folder (or a shipped one: the glyph model,
or with --prompt the text-to-image pipeline; clips from a text-to-video folder,
tinydiff.cli.sample_video) to a PNG grid, an animated GIF of the reverse process and/or an .npz of the raw arrays. Every output
is checked before the model is even loaded."""

from pathlib import Path

from tinydiff.cli.flag_types import nonnegative_float, nonnegative_int, positive_int, unit_interval
from tinydiff.pipelines.guidance import GUIDANCE_INTERVAL_KEY  # ... and the interval it guides in
from tinydiff.pipelines.guidance import GUIDANCE_SCALE_KEY as GUIDANCE_KEY  # a folder's recommended scale


def add_sample_parser(sub):
    p = sub.add_parser("sample", help="generate images with a trained model", description=(
        "Sample a model folder (OUT/final from `tinydiff train`, a checkpoint folder, or, with no "
        "--model, a model shipped with tinydiff: the glyph model, or with --prompt the text-to-image "
        "pipeline) and save a grid, a GIF and/or raw arrays."))
    p.add_argument("--model", type=Path, help="model folder (default: the shipped glyph model; with --prompt the "
                   "shipped text-to-image pipeline); a text-to-image folder (TextToImagePipeline) takes --prompt")
    p.add_argument("--scheduler", default="ddim", choices=("ddpm", "ddim", "dpm"),
                   help="sampler: ddpm (ancestral), ddim, dpm (DPM-Solver++ 2M); default ddim")
    p.add_argument("--steps", type=positive_int, default=50, help="denoising steps (default 50)")
    p.add_argument("--num", type=positive_int, default=None, help="how many samples (default 64; clips: 8)")
    p.add_argument("--frames", type=positive_int, default=None, metavar="F",
                   help="a text-to-video model's clip length: at most the length it was trained on (the default)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM's eta in [0, 1]: 0 deterministic, 1 DDPM-like noise")
    p.add_argument("--label", type=int, action="append",
                   help="class to draw (repeatable); default: cycle through all classes, one grid column each")
    p.add_argument("--prompt", help='a text-to-image model\'s prompt, e.g. "a large red circle at the top left" '
                   '(the grid is titled with it; "" draws unconditional samples)')
    p.add_argument("--negative-prompt", default=None, metavar="TEXT",
                   help='with --prompt: the unconditional branch of guidance gets this prompt instead of the empty '
                        'one, and guidance steers away from it (default "")')
    p.add_argument("--unconditional", action="store_true",
                   help="draw from a class-conditional model's null class: its unconditional samples")
    p.add_argument("--guidance-scale", type=nonnegative_float, metavar="S",
                   help="classifier-free guidance, diffusers' convention: uncond + S * (cond - uncond), S = 1 + w "
                        "of Ho & Salimans 2022; 1 = none, 0 = unconditional; needs a model with a null class "
                        f"(default: the model folder's recommended {GUIDANCE_KEY}, else 1)")
    p.add_argument("--guidance-rescale", type=unit_interval, default=0.0, metavar="PHI",
                   help="Lin et al. 2023's rescale in [0, 1]: pull the guided output's std back to the "
                        "conditional one's, mixed by PHI (default 0: off; 0.7 is their choice)")
    p.add_argument("--guidance-interval", type=nonnegative_int, nargs=2, metavar=("LOW", "HIGH"),
                   help="guide only the steps with timestep LOW <= t <= HIGH (training timesteps; Kynkaanniemi et al. "
                        "2024), elsewhere the conditional model alone, one forward per step (default: with the "
                        f"folder's recommended scale, its {GUIDANCE_INTERVAL_KEY} if any; else every step)")
    p.add_argument("--lora", type=lora_spec, action="append", metavar="FILE[:WEIGHT]",
                   help="a LoRA adapter (pytorch_lora_weights.safetensors or its folder) for a text-to-image "
                        "model, at WEIGHT (default 1); repeat it to combine adapters")
    p.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG grid (default samples.png)")
    p.add_argument("--gif", type=Path, help="also write an animated GIF of x_t and predicted x_0")
    p.add_argument("--npz", type=Path, help="also save the samples as array `samples` (N, C, H, W) in [-1, 1]")
    p.add_argument("--overwrite", action="store_true", help="replace --out, --gif and --npz files that exist")
    p.set_defaults(func=cmd_sample)


def lora_spec(text):
    """--lora FILE[:WEIGHT] -> (Path, float): WEIGHT a finite number after the last colon."""
    import argparse
    import math

    path, colon, weight = text.rpartition(":")
    if not colon:
        path, weight = text, "1"
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FILE or FILE:WEIGHT with WEIGHT a number, got {text!r}") from None
    if not path or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected FILE or FILE:WEIGHT with a file and a finite weight, got {text!r}")
    return Path(path), value


def apply_loras(pipe, specs):
    """Load each --lora file as adapter lora_0, lora_1, ... and weight them as given."""
    names = []
    for i, (path, _) in enumerate(specs):
        if not path.exists():
            raise FileNotFoundError(f"--lora: {path} does not exist")
        names.append(pipe.load_lora_weights(path, adapter_name=f"lora_{i}"))
    pipe.set_adapters(names, [weight for _, weight in specs])
    return names


def check_sample_outputs(args):
    """Every file `sample` will write can be written, before the model is even loaded."""
    from tinydiff.pipelines.outputs import OutputError, check_distinct, check_file_output

    try:
        check_file_output(args.out, "--out", args.overwrite)
        if args.gif is not None:
            check_file_output(args.gif, "--gif", args.overwrite, suffixes=(".gif",))
        if args.npz is not None:
            check_file_output(args.npz, "--npz", args.overwrite, suffixes=(".npz",))
        check_distinct({"--out": args.out, "--gif": args.gif, "--npz": args.npz})
    except OutputError as err:
        raise SystemExit(f"tinydiff sample: {err}") from None


def default_model_dir():
    """The shipped glyph model; a clear exit when this installation has none."""
    from tinydiff.pretrained import glyph_model_dir

    folder = glyph_model_dir()
    if not (folder / "model_index.json").is_file():
        raise SystemExit(
            "tinydiff: no --model given and this installation has no shipped glyph model; train one, e.g.\n"
            "  tinydiff train --dataset glyphs --class-conditional --out runs/glyphs\n"
            "and pass --model runs/glyphs/final (or retrain the shipped one: python -m tinydiff.pretrained.train_glyphs)")
    return folder


def default_text_to_image_dir():
    """The shipped text-to-image pipeline (what --prompt samples without --model); a one-line
    exit when this installation has none."""
    from tinydiff.pretrained import text2image_dir

    folder = text2image_dir()
    if not (folder / "model_index.json").is_file():
        raise SystemExit(f"tinydiff sample: --prompt with no --model samples the shipped text-to-image pipeline, "
                         f"and this installation has none ({folder}); give --model DIR (`tinydiff train --dataset "
                         f"shapes-captions`'s OUT/final) or retrain it: python -m tinydiff.pretrained.train_text2image")
    return folder


def recommended_guidance_scale(folder):
    """The guidance scale a model folder recommends (GUIDANCE_KEY in model_index.json, or in the
    model's config.json), or None."""
    import json
    import math

    for path in (folder / "model_index.json", folder / "unet" / "config.json", folder / "config.json"):
        if path.is_file():
            try:
                value = json.loads(path.read_text()).get(GUIDANCE_KEY)
            except (ValueError, AttributeError):
                continue  # load_pipeline names a broken file; here it only recommends nothing
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{path}: {GUIDANCE_KEY}: expected a number >= 0, got {value!r}")
            return float(value)
    return None


def recommended_guidance_interval(folder):
    """The interval of timesteps [low, high] a model folder guides in at its recommended scale
    (GUIDANCE_INTERVAL_KEY in model_index.json), or None (every step)."""
    import json

    path = folder / "model_index.json"
    try:
        value = json.loads(path.read_text()).get(GUIDANCE_INTERVAL_KEY) if path.is_file() else None
    except (ValueError, AttributeError):
        return None  # load_pipeline names a broken file; here it only recommends nothing
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value) or value[0] > value[1]):
        raise ValueError(f"{path}: {GUIDANCE_INTERVAL_KEY}: expected [low, high], two timesteps with "
                         f"0 <= low <= high, got {value!r}")
    return tuple(value)


def choose_labels(args, config, folder):
    """(labels (num,) or None, the real class count or None, guidance scale) from --label,
    --unconditional and --guidance-scale; SystemExit with one line when they do not fit the model."""
    import numpy as np

    from tinydiff.pipelines.guidance import real_classes

    classes, null, real = config.get("num_class_embeds"), config.get("class_embed_null_index"), real_classes(config)
    scale = args.guidance_scale
    if not classes:
        if args.label or args.unconditional:
            flag = "--label" if args.label else "--unconditional"
            raise SystemExit(f"tinydiff sample: {flag} given, but the model is not class-conditional")
        if scale not in (None, 1.0):
            raise SystemExit(f"tinydiff sample: --guidance-scale {scale} needs a class-conditional model; "
                             f"this one is unconditional (use 1)")
        return None, None, 1.0
    if scale not in (None, 1.0) and null is None:
        raise SystemExit(f"tinydiff sample: --guidance-scale {scale} needs a model trained with a null class "
                         f"(tinydiff train --cond-drop-prob); this one has none (use 1)")
    if args.unconditional:
        if null is None:
            raise SystemExit("tinydiff sample: --unconditional needs a model trained with a null class "
                             "(tinydiff train --cond-drop-prob); this one has none")
        if args.label or scale not in (None, 1.0):
            raise SystemExit(f"tinydiff sample: --unconditional draws the null class; drop "
                             f"{'--label' if args.label else '--guidance-scale'}")
        return np.full(args.num, null), real, 1.0
    chosen = args.label or list(range(real))
    bad = [c for c in chosen if not 0 <= c < real]
    if bad:
        raise SystemExit(f"tinydiff sample: --label must be in [0, {real}), got {bad}")
    if scale is None:
        scale = (recommended_guidance_scale(folder) if null is not None else None) or 1.0
    return np.resize(np.array(chosen), args.num), real, scale


def choose_guidance_interval(args, folder, scale, num_train_timesteps):
    """--guidance-interval, else the folder's recommended interval when its recommended scale is
    used, else None (every step); checked against the scheduler's timesteps (ValueError)."""
    from tinydiff.pipelines.guidance import check_guidance_interval

    if args.guidance_interval is not None:
        if scale == 1.0:
            raise SystemExit(f"tinydiff sample: --guidance-interval given, but no guidance runs (guidance scale 1); "
                             f"drop it or pass --guidance-scale")
        interval = args.guidance_interval
    elif args.guidance_scale is None and scale != 1.0:
        interval = recommended_guidance_interval(folder)
    else:
        interval = None
    return check_guidance_interval(interval, num_train_timesteps)


def cmd_sample(args):
    import numpy as np

    from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
    from tinydiff.pipelines.latent import decode_latents, decode_trajectory, load_pipeline_vae
    from tinydiff.viz.denoise import denoising_frames
    from tinydiff.viz.gif import write_gif
    from tinydiff.viz.tiles import save_image_grid

    check_sample_outputs(args)
    if not 0.0 <= args.eta <= 1.0:  # also refuses nan
        raise SystemExit(f"tinydiff sample: --eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise), "
                         f"got {args.eta}")
    if args.eta != 0.0 and args.scheduler != "ddim":
        raise SystemExit(f"tinydiff sample: --eta is DDIM's; --scheduler {args.scheduler} takes none "
                         f"(drop --eta, or use --scheduler ddim)")
    if args.seed < 0:
        raise SystemExit(f"tinydiff sample: --seed must be >= 0, got {args.seed}")
    from tinydiff.cli.sample_video import default_text_to_video_dir, sample_text_to_video
    from tinydiff.pipelines.text_conditioning import text_run_settings
    from tinydiff.pipelines.text_to_image import is_text_to_image_folder
    from tinydiff.pipelines.text_to_video import is_text_to_video_folder

    if args.model is not None:
        folder = args.model
    elif args.prompt is not None or args.negative_prompt is not None:  # a prompt of motion: the video pipeline
        folder = default_text_to_video_dir() if " moving" in f" {args.prompt or ''}".lower() else default_text_to_image_dir()
    else:
        folder = default_model_dir()

    if is_text_to_video_folder(folder):
        return sample_text_to_video(args, folder)
    if args.frames is not None:
        raise SystemExit(f"tinydiff sample: --frames is a text-to-video model's clip length; {folder} is not one")
    args.num = 64 if args.num is None else args.num
    if is_text_to_image_folder(folder) or text_run_settings(folder) is not None:  # final/ or a checkpoint
        return sample_text_to_image(args, folder)
    if args.prompt is not None or args.negative_prompt is not None or args.lora:
        flag = "--prompt" if args.prompt is not None else ("--negative-prompt" if args.negative_prompt else "--lora")
        raise SystemExit(f"tinydiff sample: {flag} needs a text-to-image model (a TextToImagePipeline folder, "
                         f"`tinydiff train --dataset shapes-captions`'s OUT/final); {folder} is not one")
    try:
        model, scheduler_config = load_pipeline(folder)
        vae = load_pipeline_vae(folder)  # None unless a latent diffusion model
        scheduler = scheduler_from_config(args.scheduler, scheduler_config)
        if args.steps > scheduler.config.num_train_timesteps:
            raise ValueError(f"--steps must be at most {scheduler.config.num_train_timesteps}, got {args.steps}")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff sample: {err}") from None
    config = model.config
    if "sample_size" not in config:
        raise SystemExit(f"tinydiff sample: {folder} holds a {type(model).__name__}, not an image model")
    try:
        labels, classes, scale = choose_labels(args, config, folder)
        interval = choose_guidance_interval(args, folder, scale, scheduler.config.num_train_timesteps)
    except ValueError as err:
        raise SystemExit(f"tinydiff sample: {err}") from None
    shape = (args.num, config["in_channels"], config["sample_size"], config["sample_size"])
    result = sample(model, scheduler, shape, np.random.default_rng(args.seed), args.steps,
                    class_labels=labels, eta=args.eta, record=args.gif is not None, progress=True,
                    guidance_scale=scale, guidance_rescale=args.guidance_rescale, guidance_interval=interval)
    x, trajectory = result if args.gif else (result, None)
    if vae is not None:  # the UNet sampled latents: decode them to pixels
        x = decode_latents(vae, x)
        trajectory = decode_trajectory(vae, trajectory) if trajectory else None
    for path in (args.out, args.gif, args.npz):  # each was checked to be creatable
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    zoom = max(2, 64 // x.shape[-1])  # small images (the shipped 16x16 glyphs) are drawn larger
    # cycling through every class: one column per class, so that each column is one class
    ncols = classes if classes and not args.label and not args.unconditional else None
    save_image_grid(args.out, x, ncols=ncols, scale=zoom)
    print(f"wrote {args.out}" + (f" (guidance scale {scale:g}" + (f" at timesteps {interval[0]}-{interval[1]}"
                                                                    if interval else "") + ")" if scale != 1.0 else ""))
    if args.gif:
        halves = ("decode(z_t)", "decode(predicted z_0)") if vae is not None else ("x_t", "predicted x_0")
        write_gif(args.gif, denoising_frames(trajectory, scale=zoom, timesteps=scheduler.timesteps, labels=halves))
        print(f"wrote {args.gif}")
    if args.npz:
        arrays = {"samples": np.clip(x, -1, 1)}
        if labels is not None:
            arrays["labels"] = labels
        np.savez(args.npz, **arrays)
        print(f"wrote {args.npz}")
    return 0


def sample_text_to_image(args, folder):
    """`tinydiff sample --model DIR --prompt "..."` for a TextToImagePipeline folder or a text
    run's checkpoint folder (pipeline_from_checkpoint): --num images of one prompt, guided against the empty prompt (or --negative-prompt), in a grid
    titled with the prompt."""
    import numpy as np

    from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
    from tinydiff.pipelines.text_conditioning import pipeline_from_checkpoint
    from tinydiff.cli.sample_video import require_prompt
    from tinydiff.pipelines.text_to_image import TextToImagePipeline, is_text_to_image_folder
    from tinydiff.viz.tiles import save_labelled_grid

    require_prompt(args, folder, "text-to-image", "a large red circle at the top left",
                   note=' (--prompt "" draws unconditional samples)')
    if args.gif is not None:
        raise SystemExit("tinydiff sample: --gif is not available for text-to-image models yet; drop it")
    try:
        pipe = (TextToImagePipeline.from_pretrained(folder) if is_text_to_image_folder(folder)
                else pipeline_from_checkpoint(folder))
        pipe.scheduler = scheduler_from_config(args.scheduler, scheduler_config(pipe.scheduler))
        if args.lora:
            apply_loras(pipe, args.lora)
        if args.steps > pipe.scheduler.config.num_train_timesteps:
            raise ValueError(f"--steps must be at most {pipe.scheduler.config.num_train_timesteps}, got {args.steps}")
        scale = pipe.guidance_scale if args.guidance_scale is None else args.guidance_scale
        if args.negative_prompt is not None and scale == 1.0:
            raise ValueError("--negative-prompt: guidance scale 1 runs no unconditional branch; drop it or pass "
                             "--guidance-scale")
        interval = choose_guidance_interval(args, folder, scale, pipe.scheduler.config.num_train_timesteps)
        pipe.encode([args.prompt, args.negative_prompt or ""])  # an unknown word: one line, before any sampling
        images = pipe(args.prompt, negative_prompt=args.negative_prompt or "", num_images_per_prompt=args.num,
                      guidance_scale=scale, num_inference_steps=args.steps, rng=np.random.default_rng(args.seed),
                      guidance_rescale=args.guidance_rescale, guidance_interval=interval, eta=args.eta,
                      progress=True)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff sample: {err}") from None
    for path in (args.out, args.npz):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    title = f'"{args.prompt}"' + (f', guidance {scale:g}' if scale != 1.0 else "") + \
        (f', negative "{args.negative_prompt}"' if args.negative_prompt else "") + \
        "".join(f", LoRA {path.name if path.is_file() else path.name + '/'} x{w:g}" for path, w in args.lora or ())
    save_labelled_grid(args.out, images, title)
    print(f"wrote {args.out} ({title})")
    if args.npz:
        np.savez(args.npz, samples=images, prompt=np.array(args.prompt), negative_prompt=np.array(args.negative_prompt or ""))
        print(f"wrote {args.npz}")
    return 0
