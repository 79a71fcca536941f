"""The `tinydiff` command line.

    tinydiff --version
    tinydiff info                         versions, Numba threading and the BLAS NumPy uses
    tinydiff train --dataset glyphs ...   train a diffusion model (see tinydiff train --help)
    tinydiff train-vae --dataset shapes   train an AutoencoderKL (then: tinydiff train --latent DIR)
    tinydiff train-clip --out DIR         train a CLIP text encoder on captioned shapes
    tinydiff finetune --model DIR ...     teach a text-to-image model a new concept (DreamBooth, LoRA)
    tinydiff sample ...                   sample a trained (or the shipped) model to a PNG grid / GIF / npz
    tinydiff export --diffusers DIR       write a model folder diffusers' from_pretrained loads
"""

import argparse
import sys

import tinydiff
from tinydiff.cli.export import add_export_parser
from tinydiff.cli.finetune import add_finetune_parser
from tinydiff.cli.info import cmd_info
from tinydiff.cli.sample import add_sample_parser
from tinydiff.cli.train import add_train_parser, add_train_vae_parser
from tinydiff.cli.train_clip import add_train_clip_parser
from tinydiff.recipes import expand_recipe


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinydiff",
        description="Diffusion models from scratch in NumPy and Numba, made to teach.",
    )
    parser.add_argument("--version", action="version", version=f"tinydiff {tinydiff.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="print versions, Numba threading and the BLAS in use")
    info.set_defaults(func=cmd_info)
    add_train_parser(sub)
    add_train_vae_parser(sub)
    add_train_clip_parser(sub)
    add_finetune_parser(sub)
    add_sample_parser(sub)
    add_export_parser(sub)
    parser.commands = sub.choices  # name -> its parser (command_defaults reads them)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(expand_recipe(sys.argv[1:] if argv is None else argv))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:  # one line; training says itself where it stopped
        sys.stderr.write(f"\ntinydiff {args.command}: interrupted\n")
        raise SystemExit(130) from None
    except OSError as err:  # a full disk or a lost permission while writing: the outputs were checked before
        where = f" ({err.filename})" if err.filename else ""
        raise SystemExit(f"tinydiff {args.command}: {err.strerror or err}{where}") from None
