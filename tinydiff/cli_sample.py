"""`tinydiff sample`: draw images from a trained model folder (or the shipped glyph model) to a
PNG grid, an animated GIF of the reverse process and/or an .npz of the raw arrays. Every output
is checked before the model is even loaded."""

from pathlib import Path

from tinydiff.cli_types import positive_int


def add_sample_parser(sub):
    p = sub.add_parser("sample", help="generate images with a trained model", description=(
        "Sample a model folder (OUT/final from `tinydiff train`, a checkpoint folder, or, with no "
        "--model, the glyph model shipped with tinydiff) and save a grid, a GIF and/or raw arrays."))
    p.add_argument("--model", type=Path, help="model folder (default: the shipped glyph model)")
    p.add_argument("--scheduler", default="ddim", choices=("ddpm", "ddim", "dpm"),
                   help="sampler: ddpm (ancestral), ddim, dpm (DPM-Solver++ 2M); default ddim")
    p.add_argument("--steps", type=positive_int, default=50, help="denoising steps (default 50)")
    p.add_argument("--num", type=positive_int, default=64, help="how many samples (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM's eta in [0, 1]: 0 deterministic, 1 DDPM-like noise")
    p.add_argument("--label", type=int, action="append",
                   help="class to draw (repeatable); default: cycle through all classes, one grid column each")
    p.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG grid (default samples.png)")
    p.add_argument("--gif", type=Path, help="also write an animated GIF of x_t and predicted x_0")
    p.add_argument("--npz", type=Path, help="also save the samples as array `samples` (N, C, H, W) in [-1, 1]")
    p.add_argument("--overwrite", action="store_true", help="replace --out, --gif and --npz files that exist")
    p.set_defaults(func=cmd_sample)


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
    folder = args.model or default_model_dir()
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
    labels = None
    classes = config.get("num_class_embeds")
    if classes:
        chosen = args.label or list(range(classes))
        bad = [c for c in chosen if not 0 <= c < classes]
        if bad:
            raise SystemExit(f"tinydiff sample: --label must be in [0, {classes}), got {bad}")
        labels = np.resize(np.array(chosen), args.num)
    elif args.label:
        raise SystemExit("tinydiff sample: --label given, but the model is not class-conditional")
    shape = (args.num, config["in_channels"], config["sample_size"], config["sample_size"])
    result = sample(model, scheduler, shape, np.random.default_rng(args.seed), args.steps,
                    class_labels=labels, eta=args.eta, record=args.gif is not None, progress=True)
    x, trajectory = result if args.gif else (result, None)
    if vae is not None:  # the UNet sampled latents: decode them to pixels
        x = decode_latents(vae, x)
        trajectory = decode_trajectory(vae, trajectory) if trajectory else None
    for path in (args.out, args.gif, args.npz):  # each was checked to be creatable
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    zoom = max(2, 64 // x.shape[-1])  # small images (the shipped 16x16 glyphs) are drawn larger
    # cycling through every class: one column per class, so that each column is one class
    ncols = classes if classes and not args.label else None
    save_image_grid(args.out, x, ncols=ncols, scale=zoom)
    print(f"wrote {args.out}")
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
