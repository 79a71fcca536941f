"""What `tinydiff train` and `tinydiff train-vae` share: the run folder is checked before any
work starts, and the run ends with one line whatever stops it (Ctrl-C, a full disk, a NaN).

    state, removal = prepare_run_folder(args, TRAIN_PARTS, defaults)   # refuses, or decides
    ... build the data, the model, the trainer ...
    remove_run(args.out, removal)                                     # --overwrite, at the last moment
    log = run_to_the_end(trainer, "train", args.resume)
"""

import sys

from tinydiff.pipelines.outputs import check_run_folder
from tinydiff.pipelines.run_settings import check_resume_flags, flag_settings

# what each command writes in its --out folder (vae/: the frozen VAE of a latent diffusion run;
# train always claims it, so that no stale VAE is found beside a pixel model's checkpoints)
TRAIN_PARTS = ("checkpoints", "samples", "final", "vae")
TRAIN_VAE_PARTS = ("checkpoints", "samples", "final")

INTERRUPTED = 130  # the shell's exit status for a process stopped by SIGINT (128 + 2)


def prepare_run_folder(args, parts, defaults, settings=None):
    """Check --out, --resume and --overwrite, and with --resume compare every flag with the
    run's (`settings`: what the run records, default flag_settings(args)), before anything is
    built. Returns (the latest checkpoint's trainer state when
    resuming, else None; the run's entries --overwrite will remove)."""
    removal = check_run_folder(args.out, parts, args.resume, args.overwrite)
    settings = flag_settings(args) if settings is None else settings
    state = check_resume_flags(args.out, settings, defaults) if args.resume else None
    return state, removal


def resumed_warmup(state, warmup_steps, steps):
    """The warm-up of a resumed run is the run's own (a larger --steps does not repeat it);
    a new run's is at most steps - 1."""
    saved = state.get("config") if isinstance(state, dict) else None
    if isinstance(saved, dict) and "warmup_steps" in saved:  # checkpoints from before run_settings too
        return saved["warmup_steps"]
    return min(warmup_steps, steps - 1)


def _where_to_resume(trainer):
    latest = trainer.latest_checkpoint()
    if latest is None:
        return (f"no checkpoint was written yet (the first comes at step {trainer.config.checkpoint_every}); "
                f"start again with --overwrite")
    return f"the last checkpoint is step {int(latest.name.split('-')[-1])} ({latest}); continue with --resume"


def run_to_the_end(trainer, command, resume):
    """trainer.run(resume); every way it can stop early becomes one line on stderr: Ctrl-C exits
    with 130 and says where to continue from, the others exit with 1."""
    from tinydiff.pipelines.train import SaveFailed, TrainingDiverged

    try:
        return trainer.run(resume=resume)
    except KeyboardInterrupt:
        sys.stderr.write(f"\ntinydiff {command}: interrupted at step {trainer.step}; {_where_to_resume(trainer)}\n")
        raise SystemExit(INTERRUPTED) from None
    except (TrainingDiverged, SaveFailed, FileNotFoundError, ValueError) as err:
        raise SystemExit(f"tinydiff {command}: {err}") from None
    except RuntimeError as err:  # a worker process failed or died (tinydiff.runtime.parallel); its traceback went to stderr
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SystemExit(f"tinydiff {command}: {first}; {_where_to_resume(trainer)}") from None
