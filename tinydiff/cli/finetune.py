"""`tinydiff finetune`: DreamBooth (Ruiz et al. 2022) on a text-to-image pipeline folder, with a
LoRA adapter (Hu et al. 2021; the default, rank 4) or the whole UNet (--full).

    tinydiff finetune --model DIR --instance-images FOLDER --instance-prompt "a sks shape" --out OUT
        [--class-prompt "a shape" --with-prior-preservation --prior-loss-weight 1.0 --num-class-images 200]
        [--lora-rank 4 | --full]

OUT gets checkpoints/ (resumable with --resume), samples/ (step-0000000.png: before training)
and final/: the adapter (pytorch_lora_weights.safetensors, diffusers' keys; `tinydiff sample
--model DIR --lora OUT/final/pytorch_lora_weights.safetensors`) or, with --full, a whole pipeline
folder. Everything is checked before work starts; nothing is overwritten without --overwrite.
"""

from pathlib import Path

from tinydiff.cli.flag_types import nonnegative_float, nonnegative_int, positive_float, positive_int

FINETUNE_PARTS = ("checkpoints", "samples", "final")
LORA_LR, FULL_LR = 1e-2, 2e-4  # the adapter starts at zero and is small; the whole UNet moves with less


def add_finetune_parser(sub):
    from tinydiff.cli.train import OVERWRITE_RUN_HELP, RESUME_HELP

    p = sub.add_parser("finetune", help="teach a text-to-image model a new concept (DreamBooth, LoRA)", description=(
        "DreamBooth: fine-tune a text-to-image pipeline on a few images of a new concept, bound to a reserved rare "
        "word of its tokenizer (sks, zwx, ...), with a LoRA adapter (default) or the whole UNet (--full). "
        "Writes OUT/checkpoints, OUT/samples and OUT/final (the adapter file, or a pipeline folder with --full)."))
    p.add_argument("--model", required=True, type=Path, help="a text-to-image pipeline folder (e.g. "
                   "tinydiff/pretrained/shapes_text2image, or a `tinydiff train` run's OUT/final)")
    p.add_argument("--instance-images", required=True, type=Path, metavar="FOLDER",
                   help="a folder with the few images of the new concept (resized to the model's image size)")
    p.add_argument("--instance-prompt", required=True, help="the prompt of those images, naming a reserved rare "
                   "word, e.g. \"a sks shape\"")
    p.add_argument("--class-prompt", default="a shape", help="what the concept is an instance of (default \"a "
                   "shape\"); with --with-prior-preservation the model's own images of it keep its meaning")
    p.add_argument("--with-prior-preservation", action="store_true",
                   help="add the prior-preservation loss on class images the model generates first (Ruiz et al. "
                        "2022, eq. 2): keeps the class prompt from drifting towards the new concept")
    p.add_argument("--prior-loss-weight", type=nonnegative_float, default=1.0, help="lambda of eq. 2 (default 1)")
    p.add_argument("--num-class-images", type=positive_int, default=200,
                   help="class images generated before training (default 200)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--lora-rank", type=positive_int, default=4, help="rank of the LoRA adapter (default 4)")
    kind.add_argument("--full", action="store_true", help="fine-tune every weight of the UNet instead of an adapter")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=positive_int, default=300, help="training steps (default 300)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak learning rate of AdamW (default {LORA_LR:g} with LoRA, {FULL_LR:g} with --full)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of everything random (default 0): the "
                   "same seed gives the same adapter")
    p.add_argument("--checkpoint-every", type=positive_int, default=100, help="steps between checkpoints")
    p.add_argument("--sample-every", type=nonnegative_int, default=0,
                   help="steps between sample grids (0: before and after training only)")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_RUN_HELP)
    p.set_defaults(func=cmd_finetune)


def finetune_configs(args, image_count):
    """(DreamBoothConfig, TrainConfig) of the flags."""
    from tinydiff.pipelines import TrainConfig
    from tinydiff.pipelines.dreambooth import DreamBoothConfig

    db = DreamBoothConfig(instance_prompt=args.instance_prompt, class_prompt=args.class_prompt,
                          with_prior_preservation=args.with_prior_preservation,
                          prior_loss_weight=args.prior_loss_weight, num_class_images=args.num_class_images,
                          class_batch_size=image_count, lora_rank=None if args.full else args.lora_rank)
    lr = args.lr if args.lr is not None else (FULL_LR if args.full else LORA_LR)
    config = TrainConfig(steps=args.steps, batch_size=image_count, lr=lr, warmup_steps=min(10, args.steps - 1),
                         ema_decay=0.0, min_snr_gamma=5.0, cond_drop_prob=0.1, seed=args.seed, checkpoint_every=args.checkpoint_every,
                         sample_every=args.sample_every, num_samples=16)
    return db, config


def describe_cost(unet, full):
    """The trainable numbers and the file size of what is saved, against the whole UNet's."""
    from tinydiff.nn.lora_model import count_lora_parameters, lora_layers

    total = unet.num_parameters()
    if full:
        return (f"trainable: all {total:,} numbers of the UNet; the result is a whole pipeline folder "
                f"(the UNet alone {4 * total / 1e6:.1f} MB in float32)")
    lora = count_lora_parameters(unet)
    base = total - lora
    return (f"trainable: {lora:,} numbers in {len(lora_layers(unet))} adapted layers, r (d_in + d_out) each, "
            f"{lora / base:.1%} of the UNet's {base:,}; adapter file about {4 * lora / 1e3:.0f} KB against "
            f"{4 * base / 1e6:.1f} MB for the UNet (float32)")


def cmd_finetune(args):
    from tinydiff.cli.run import prepare_run_folder, run_to_the_end
    from tinydiff.cli.train import command_defaults
    from tinydiff.data.folder import load_image_folder
    from tinydiff.pipelines.dreambooth import DreamBoothTrainer
    from tinydiff.pipelines.outputs import remove_run
    from tinydiff.pipelines.text_to_image import TextToImagePipeline

    try:
        _, removal = prepare_run_folder(args, FINETUNE_PARTS, command_defaults("finetune", args))
        try:
            pipe = TextToImagePipeline.from_pretrained(args.model)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"--model: {err}") from None
        size = pipe.vae.config.get("sample_size") or 32
        try:
            images = load_image_folder(args.instance_images, size).images
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"--instance-images: {err}") from None
        if len(images) == 0:
            raise ValueError(f"--instance-images: no images in {args.instance_images}")
        db, config = finetune_configs(args, len(images))
        try:
            db.validate(pipe.tokenizer)
        except ValueError as err:
            raise ValueError(f"--{str(err).replace('_', '-')}") from None
        remove_run(args.out, removal)  # --overwrite: only now that everything else is known to work
        trainer = DreamBoothTrainer(pipe, images, db, config, args.out, settings=finetune_settings(args))
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff finetune: {err}") from None
    what = "the whole UNet" if args.full else f"a rank-{args.lora_rank} LoRA adapter"
    print(f"DreamBooth on {len(images)} images of {args.instance_prompt!r} with {what}"
          f"{' and prior preservation' if args.with_prior_preservation else ''}; output in {args.out}")
    print(describe_cost(pipe.unet, args.full))
    if not args.resume:
        trainer.saving("the samples before training", trainer.save_samples)
    log = run_to_the_end(trainer, "finetune", args.resume)
    print(f"final loss {log[-1][1]:.4f}; {final_message(args)}")
    return 0


def final_message(args):
    final = args.out / "final"
    if args.full:
        return f"pipeline in {final} (tinydiff sample --model {final} --prompt \"{args.instance_prompt}\")"
    from tinydiff.pipelines.dreambooth import LORA_FILE

    size = (final / LORA_FILE).stat().st_size
    return (f"adapter {final / LORA_FILE} ({size / 1e3:.0f} KB; tinydiff sample --model {args.model} --lora "
            f"{final / LORA_FILE} --prompt \"{args.instance_prompt}\")")


def finetune_settings(args):
    from tinydiff.pipelines.run_settings import flag_settings

    return flag_settings(args)
