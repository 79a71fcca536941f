"""What a training run decided, stored in every checkpoint and compared on --resume.

A resumed run must train the same thing, or the checkpoint it continues is overwritten by a
different run. So each checkpoint's trainer_state.json keeps `run_settings`: every flag the
command was given, taken from argparse's namespace whole, minus the few that only say where or
how the run is watched (IGNORED_FLAGS). A flag added to tinydiff later joins the check by
construction; one that a run's checkpoints do not record (it came after the run started) must
keep its default.

The Trainer compares what it knows on its own (its TrainConfig, the model's config and the
scheduler's config); the CLI compares the flags, before it builds anything, so that a forgotten
--class-conditional is named as a flag, not found as a missing weight.

Besides the flags, a text-to-image run records the sha256 of its frozen text encoder's weights
(TEXT_ENCODER_SHA256): --text-encoder names a folder, and a CLIP retrained in place keeps the
path but not the hidden states the UNet learnt to read, so its path alone proves nothing.

Extending a run: a larger --steps on --resume is allowed. The cosine learning-rate schedule is
recomputed for the new total (the warm-up is not repeated), so at the resumed step the rate
jumps from the old schedule's value (near min_lr for a finished run) back up to the new
schedule's value there.
"""

import json
import math
from pathlib import Path

# flags that say where the output goes or how the run is watched or computed, not what it
# trains (processes changes only the rounding of the gradient sums, like the thread count);
# --recipe only stands for other flags, which are compared themselves
IGNORED_FLAGS = frozenset({"command", "func", "out", "resume", "overwrite", "processes",
                           "checkpoint_every", "sample_every", "recipe"})

# TrainConfig fields of the same kind ("processes": a field of the checkpoints written before
# the Trainer was handed its runner)
IGNORED_CONFIG = frozenset({"processes", "checkpoint_every", "keep_checkpoints", "sample_every",
                            "sample_steps", "num_samples", "log_every"})

# model-config keys and the flag that sets each, to point at it in messages about checkpoints
# written before run_settings existed
FLAG_OF_MODEL_KEY = {"num_class_embeds": "--class-conditional", "sample_size": "--image-size",
                     "block_out_channels": "--channels", "down_block_types": "--attention",
                     "layers_per_block": "--layers-per-block", "prediction_type": "--prediction-type",
                     "beta_schedule": "--beta-schedule", "latent_channels": "--latent-channels"}


# not a flag: the sha256 of --text-encoder's text_encoder/model.safetensors (the module docstring)
TEXT_ENCODER_SHA256 = "text_encoder_sha256"


def flag_name(key):
    """argparse's dest -> the flag as the user types it: class_conditional -> --class-conditional."""
    return "--" + key.replace("_", "-")


def as_json(value):
    """A flag's value as JSON keeps it: tuples as lists, paths as absolute strings."""
    if isinstance(value, Path):
        return str(value.absolute())
    if isinstance(value, (tuple, list)):
        return [as_json(v) for v in value]
    return value


def flag_settings(args, ignored=IGNORED_FLAGS):
    """{dest: value} of every parsed flag of the command except `ignored`."""
    return {key: as_json(value) for key, value in sorted(vars(args).items()) if key not in ignored}


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return as_json(a) == as_json(b)


def _shown(value):
    """A value as the user would type it: on/off for a switch, 8,16 for a list."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def differences(saved, now, ignored=()):
    """[(key, saved value, value now)] of every key whose values differ (missing: None)."""
    keys = sorted((set(saved) | set(now)) - set(ignored))
    return [(k, saved.get(k), now.get(k)) for k in keys if not _same(saved.get(k), now.get(k))]


def steps_problem(name, saved, now):
    """None if `now` steps may continue a run of `saved` steps, else what is wrong."""
    if now >= saved:
        return None
    return f"{name}: the run used {saved}, now {now}; a run can be extended (a larger {name}), not shortened"


def flag_problems(saved, now, defaults):
    """Each changed flag as '--flag: the run used OLD, now NEW'. A flag the run did not record
    is compared with its default (`defaults`: {dest: default})."""
    problems = []
    for key in sorted(set(now) - set(saved)):
        if key == TEXT_ENCODER_SHA256:  # a run from before the fingerprint: only its path is compared
            continue
        if key in defaults and _same(as_json(defaults[key]), now[key]):
            continue
        problems.append(f"{flag_name(key)}: the run did not record it (its checkpoints are older than the "
                        f"flag), now {_shown(now[key])}")
    for key, old, new in differences(saved, now):
        if key not in saved:
            continue
        if key == TEXT_ENCODER_SHA256:
            if old is not None and new is not None:  # else --text-encoder itself differs, or its folder is gone
                problems.append(f"--text-encoder: its text_encoder/model.safetensors is not the one the run was "
                                f"trained with (sha256 {str(old)[:12]}... then, {str(new)[:12]}... now: a text "
                                f"encoder retrained in place?), and the run's UNet only knows that one's hidden "
                                f"states; put the run's text encoder back")
            continue
        if key == "steps" and isinstance(old, int) and isinstance(new, int):
            problem = steps_problem("--steps", old, new)
            if problem:
                problems.append(problem)
            continue
        problems.append(f"{flag_name(key)}: the run used {_shown(old)}, now {_shown(new)}")
    return problems


def model_problems(saved, now, what):
    """Changed keys of a model or scheduler config ('_'-keys are metadata, not compared)."""
    problems = []
    for key, old, new in differences(saved, now):
        if key.startswith("_"):
            continue
        hint = f" ({FLAG_OF_MODEL_KEY[key]})" if key in FLAG_OF_MODEL_KEY else ""
        problems.append(f"{what} {key}{hint}: the run used {_shown(old)}, now {_shown(new)}")
    return problems


def refuse_changes(problems, where):
    """Raise one ValueError listing every problem; nothing when the list is empty."""
    if problems:
        raise ValueError(f"--resume: the settings differ from the run in {where}: " + "; ".join(problems)
                         + ". Resume with the run's settings (only --steps may grow, which extends it), "
                           "or start a new run with another --out")


def latest_trainer_state(out):
    """The trainer_state.json dict of the run's latest checkpoint (None without one)."""
    pointer = Path(out) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip() / "trainer_state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot be read ({err})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return state


def check_resume_flags(out, settings, defaults):
    """Refuse --resume when the flags differ from those the run in `out` recorded. Returns the
    run's trainer state (None if it has no checkpoint; the Trainer then says so)."""
    state = latest_trainer_state(out)
    if state is not None and isinstance(state.get("run_settings"), dict):
        refuse_changes(flag_problems(state["run_settings"], settings, defaults), out)
    return state
