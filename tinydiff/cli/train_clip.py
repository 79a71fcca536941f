"""`tinydiff train-clip`: train CLIP's text and image encoders on captioned Shapes
(tinydiff.pipelines.clip_training), with checkpoints, --resume and progress like `tinydiff
train`. OUT/final is a CLIP folder (tinydiff.pipelines.clip_folder), the text encoder a
text-to-image run reads with --text-encoder OUT/final."""

import os
import re
import shutil
from pathlib import Path

from tinydiff.cli.flag_types import decay, int_list, nonnegative_int, positive_float, positive_int
from tinydiff.cli.train import OVERWRITE_RUN_HELP, RESUME_HELP, command_defaults

# what train-clip writes in --out; final/ is a CLIP folder, checked here (the others by
# tinydiff.pipelines.outputs.check_run_folder)
RUN_PARTS = ("checkpoints", "samples")
# --eval-every only says how often the run is watched (like train's --sample-every): a resumed
# run may change it
WATCHING_FLAGS = frozenset({"eval_every"})


def add_train_clip_parser(sub):
    p = sub.add_parser("train-clip", help="train a CLIP text encoder (and image encoder) on captioned shapes",
                       description=(
        "Train CLIP (Radford et al. 2021) on captioned Shapes: a CLIP text transformer and a small conv image "
        "encoder, with the symmetric contrastive loss and a learned temperature. Writes OUT/checkpoints "
        "(resumable with --resume), OUT/samples (similarity matrices of held-out pairs) and OUT/final: "
        "text_encoder/, tokenizer/, image_encoder/ and clip.json (logit_scale and the held-out retrieval), "
        "a folder `tinydiff train --text-encoder OUT/final` reads."))
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=positive_int, default=600, help="training steps (default 600)")
    p.add_argument("--batch-size", type=positive_int, default=128,
                   help="image-caption pairs per step, each contrasted with the others (default 128)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate of AdamW (default 2e-3)")
    p.add_argument("--warmup-steps", type=nonnegative_int, default=50, help="linear warm-up steps (default 50)")
    p.add_argument("--ema-decay", type=decay, default=0.99, help="EMA decay of the saved weights (default 0.99)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of everything random (default 0)")
    p.add_argument("--hidden-size", type=positive_int, default=64, help="text transformer width (default 64)")
    p.add_argument("--layers", type=positive_int, default=2, help="text transformer blocks (default 2)")
    p.add_argument("--heads", type=positive_int, default=4,
                   help="attention heads; must divide --hidden-size (default 4)")
    p.add_argument("--projection-dim", type=positive_int, default=64,
                   help="width of the joint text-image embedding (default 64)")
    p.add_argument("--vision-channels", type=int_list, default=(16, 32, 64),
                   help="image encoder channels per level, multiples of 8 (default 16,32,64)")
    p.add_argument("--image-size", type=positive_int, default=32, choices=(16, 32, 64),
                   help="image side in pixels (default 32)")
    p.add_argument("--checkpoint-every", type=positive_int, default=100, help="steps between checkpoints (default 100)")
    p.add_argument("--eval-every", type=nonnegative_int, default=200,
                   help="steps between held-out retrieval measurements and similarity matrices (0: only at the end)")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_RUN_HELP)
    p.set_defaults(func=cmd_train_clip)


def check_final(out, resume, overwrite):
    """OUT/final may be written: absent, or a CLIP folder tinydiff wrote that a --resume
    continues or an --overwrite removes. Returns [final] when --overwrite removes it."""
    from tinydiff.pipelines.clip_folder import written_by_tinydiff
    from tinydiff.pipelines.outputs import OutputError

    final = Path(out) / "final"
    if not os.path.lexists(final):
        return []
    if not written_by_tinydiff(final):
        raise OutputError(f"--out: {final} was not written by tinydiff train-clip, or holds what it did not write, "
                          f"and training would write there; move it away or choose another --out")
    if not resume and not overwrite:
        raise OutputError(f"--out: {out} already holds a trained CLIP ({final}); continue it with --resume, or start "
                          f"over with --overwrite (removes its checkpoints/, samples/ and final/)")
    return [final] if overwrite else []


def remove_final(out, finals):
    """--overwrite: remove final/ (checked again) and any of its temporary or set-aside copies."""
    from tinydiff.pipelines.clip_folder import written_by_tinydiff
    from tinydiff.pipelines.outputs import OutputError

    for final in finals:
        if not written_by_tinydiff(final):
            raise OutputError(f"--overwrite: {final} changed since it was checked; nothing was removed from it")
        shutil.rmtree(final)
    for leftover in Path(out).glob(".final.*"):
        if finals and leftover.is_dir() and re.search(r"\.(tmp|old)-[0-9a-f]+$", leftover.name):
            shutil.rmtree(leftover)


def cmd_train_clip(args):
    import numpy as np

    from tinydiff.cli.run import resumed_warmup, run_to_the_end
    from tinydiff.data.tokenizer import WordTokenizer
    from tinydiff.pipelines.clip_training import CaptionBatches, CLIPTrainConfig, CLIPTrainer, build_clip
    from tinydiff.pipelines.outputs import check_run_folder, remove_run
    from tinydiff.pipelines.run_settings import IGNORED_FLAGS, check_resume_flags, flag_settings

    try:
        removal = check_run_folder(args.out, RUN_PARTS, args.resume, args.overwrite)
        finals = check_final(args.out, args.resume, args.overwrite)
        settings = flag_settings(args, IGNORED_FLAGS | WATCHING_FLAGS)
        state = check_resume_flags(args.out, settings, command_defaults("train-clip", args)) if args.resume else None
        tokenizer = WordTokenizer()
        clip = build_clip(tokenizer, args.hidden_size, args.layers, args.heads, args.projection_dim,
                          vision_channels=args.vision_channels, rng=np.random.default_rng(args.seed))
        config = CLIPTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                 warmup_steps=resumed_warmup(state, args.warmup_steps, args.steps),
                                 ema_decay=args.ema_decay, seed=args.seed, image_size=args.image_size,
                                 checkpoint_every=args.checkpoint_every, sample_every=args.eval_every)
        data = CaptionBatches(tokenizer, args.batch_size, args.seed, args.image_size, config.p_full)
        trainer = CLIPTrainer(clip, tokenizer, data, config, args.out, settings=settings)
        remove_run(args.out, removal)  # --overwrite: only now that everything else is known to work
        remove_final(args.out, finals)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff train-clip: {err}") from None
    print(f"training CLIP ({clip.num_parameters() / 1e6:.2f} M parameters: text {clip.text_model.num_parameters()}, "
          f"image {clip.vision_model.num_parameters()}) on captioned shapes; output in {args.out}")
    log = run_to_the_end(trainer, "train-clip", args.resume)
    report = trainer.evaluation()
    print(f"final loss {log[-1][1]:.4f}, t = {float(np.exp(clip.logit_scale.data)):.1f}; held-out retrieval of all "
          f"four attributes: text->image {report['text_to_image']['all']:.1%}, image->text "
          f"{report['image_to_text']['all']:.1%}; CLIP folder in {args.out / 'final'}")
    return 0
