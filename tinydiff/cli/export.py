"""`tinydiff export --diffusers DIR`: write a model folder that diffusers' from_pretrained loads."""

from pathlib import Path

from tinydiff.cli.sample import default_model_dir


def add_export_parser(sub):
    p = sub.add_parser("export", help="write a model folder that diffusers loads", description=(
        "Write MODEL as a diffusers pipeline folder (model_index.json, unet/, scheduler/) with float32 "
        "weights: UNet2DModel.from_pretrained(DIR, subfolder='unet') loads it, and training can go on "
        "on a GPU with diffusers. A text-to-image MODEL becomes StableDiffusionPipeline's folder "
        "(unet/, vae/, text_encoder/, tokenizer/, scheduler/ with DDIM): "
        "StableDiffusionPipeline.from_pretrained(DIR) loads it."))
    p.add_argument("--diffusers", type=Path, required=True, metavar="DIR", help="folder to write")
    p.add_argument("--model", type=Path, help="model folder (default: the shipped glyph model)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace DIR if it is not empty; only a model folder tinydiff wrote is replaced")
    p.set_defaults(func=cmd_export)


def cmd_export(args):
    from tinydiff.pipelines import load_pipeline, save_pipeline, scheduler_from_config
    from tinydiff.pipelines.outputs import OutputError, check_model_destination
    from tinydiff.pipelines.text_to_image import is_text_to_image_folder

    try:
        check_model_destination(args.diffusers, "--diffusers", args.overwrite)
    except OutputError as err:
        raise SystemExit(f"tinydiff export: {err}") from None
    folder = args.model or default_model_dir()
    if is_text_to_image_folder(folder):
        return export_text_to_image(folder, args.diffusers)
    try:
        model, scheduler_config = load_pipeline(folder)
        from tinydiff.pipelines.latent import load_pipeline_vae

        vae = load_pipeline_vae(folder)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff export: {err}") from None
    if type(model).__name__ != "UNet2DModel":
        raise SystemExit(f"tinydiff export: diffusers has no counterpart of {type(model).__name__}")
    save_pipeline(args.diffusers, model, scheduler_from_config("ddpm", scheduler_config), vae=vae)
    if vae is not None:
        print(f"wrote the VAE to {args.diffusers / 'vae'} (diffusers.AutoencoderKL.from_pretrained(DIR, subfolder='vae'))")
    print(f"wrote {args.diffusers} (load with diffusers.UNet2DModel.from_pretrained(DIR, subfolder='unet'))")
    return 0


def export_text_to_image(folder, out):
    """A tinydiff TextToImagePipeline folder -> StableDiffusionPipeline's folder at `out`, with
    DDIM (tinydiff sample's default) built from the folder's scheduler config."""
    from tinydiff.pipelines.export_sd import export_stable_diffusion
    from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
    from tinydiff.pipelines.text_to_image import TextToImagePipeline

    try:
        pipe = TextToImagePipeline.from_pretrained(folder)
        pipe.scheduler = scheduler_from_config("ddim", scheduler_config(pipe.scheduler))
        export_stable_diffusion(pipe, out)
    except (TypeError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff export: {err}") from None
    if pipe.scheduler.config.clip_sample:
        print("note: the scheduler clips x_0 (clip_sample); diffusers' pipeline does not recompute eps from the "
              "clipped x_0 as tinydiff sample does under guidance, so guided images may differ slightly")
    print(f"wrote {out} (load with diffusers.StableDiffusionPipeline.from_pretrained(DIR); the VAE has "
          f"latents_mean/std folded into it, so it decodes latents / scaling_factor as Stable Diffusion does)")
    return 0
