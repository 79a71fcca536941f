"""What the scripts that train the shipped models (train_glyphs, train_shapes) share: their
command line, a run in a work folder that resumes from its own checkpoints and says how long
it took, and the step that copies a trained pipeline into the package with float16 weights."""

import argparse
import time
from pathlib import Path

import numpy as np

from tinydiff.pipelines import load_pipeline, save_pipeline
from tinydiff.pretrained.folders import HERE


def script_parser(doc, parts, work):
    """The flags every training script has: --part (one of `parts`, or "all"), --out (where the
    model folders go) and --work (the training folders, resumed when they hold checkpoints)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all",) + tuple(parts), default="all")
    parser.add_argument("--out", type=Path, default=HERE, help="where the model folders go (default: the package)")
    parser.add_argument("--work", type=Path, default=Path(work),
                        help="training folder(s) with checkpoints (resumed if they have any)")
    return parser


def run_resumable(trainer, work, until=None):
    """trainer.run in `work`, resumed when it holds a checkpoint (so a script run again continues
    where it stopped); returns the minutes this call trained."""
    started = time.perf_counter()
    trainer.run(resume=(Path(work) / "checkpoints" / "latest").is_file(), until=until)
    return (time.perf_counter() - started) / 60


def ship_pipeline(source, destination, scheduler, vae=None, guidance_scale=None, guidance_interval=None):
    """Copy the pipeline in `source` (a final/ or checkpoint folder) to `destination`, a model
    folder of the package, with `scheduler`'s config and float16 weights (half the size), and
    the guidance scale it recommends and the interval of timesteps it guides in, if any."""
    model, _ = load_pipeline(source)
    save_pipeline(destination, model, scheduler, dtype=np.float16, vae=vae, guidance_scale=guidance_scale,
                  guidance_interval=guidance_interval)
