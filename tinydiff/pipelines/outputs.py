"""Where the command line writes, checked before any work starts.

A wrong output path must not cost a training run, and nothing that exists is replaced unless
the user asked for it (--overwrite) -- and then only what tinydiff wrote itself:

- a model folder carries `_tinydiff_version` in its config.json or model_index.json;
- a training run folder (OUT) holds checkpoints/ (step-NNNNNNN folders and a `latest`
  pointer), samples/ (step-NNNNNNN.png grids), final/ and, for latent diffusion, vae/.
  Anything else in OUT is the user's and is never touched.

Every check raises OutputError, whose message starts with the flag as the user typed it; the
CLI prefixes the command's name and exits with that one line.
"""

import json
import os
import re
import shutil
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot or must not be written."""


# ---- single paths ------------------------------------------------------------------------------

def _nearest_existing(path):
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_writable_place(path, flag):
    """`path` (which need not exist) can be created: its nearest existing ancestor is a folder
    this process may write in. Missing folders in between are created when writing."""
    path = Path(path).absolute()
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise OutputError(f"{flag}: cannot create {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{flag}: cannot write in {ancestor} (permission denied)")


def check_folder_output(path, flag):
    """`path` is a folder tinydiff may write into, or can be created as one."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{flag}: {path} is a file; expected a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{flag}: cannot write in {path} (permission denied)")
    else:
        check_writable_place(path, flag)


def pillow_writes(path):
    """True if Pillow writes an RGB picture under the file name's extension (.png, .jpg, .gif,
    ...): some formats it knows take other modes only (.xbm is black and white), so a 1-pixel
    picture is written to memory to find out."""
    import io

    from PIL import Image

    Image.init()
    kind = Image.registered_extensions().get(Path(path).suffix.lower())
    if kind is None or kind not in Image.SAVE:
        return False
    try:
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=kind)
    except Exception:  # each plugin raises its own error types  # noqa: BLE001
        return False
    return True


def check_file_output(path, flag, overwrite=False, suffixes=None):
    """`path` can be written as a file: not a folder, not an existing file unless `overwrite`,
    with one of `suffixes` (e.g. (".npz",)) or, when None, an image extension Pillow writes."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag}: {path} is a folder; expected a file name such as {path / 'samples.png'}")
    if suffixes is None and not pillow_writes(path):
        raise OutputError(f"{flag}: Pillow cannot write a {path.suffix or 'file without an extension'!r} "
                          f"image; use a name ending in .png (or .jpg, .gif, .webp)")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise OutputError(f"{flag}: expected a file name ending in {' or '.join(suffixes)}, got {path}")
    if os.path.lexists(path):
        if not overwrite:
            raise OutputError(f"{flag}: {path} exists; pass --overwrite to replace it")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{flag}: cannot replace {path} (permission denied)")
    check_writable_place(path, flag)


def check_distinct(paths):
    """Two outputs of one command must not be the same file. paths: {flag: path or None}."""
    seen = {}
    for flag, path in paths.items():
        if path is None:
            continue
        key = Path(path).absolute()
        if key in seen:
            raise OutputError(f"{flag}: {path} is also {seen[key]}'s file; give each output its own name")
        seen[key] = flag


# ---- folders tinydiff wrote ----------------------------------------------------------------------

def _json_has_version(file):
    try:
        data = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "_tinydiff_version" in data


# every file tinydiff writes in a model folder (save_model, save_pipeline, TextToImagePipeline) and in a training
# checkpoint (Trainer.save_checkpoint); a folder holding anything else holds the user's work too
MODEL_FILES = frozenset({"config.json", "diffusion_pytorch_model.safetensors", "model_index.json",
                         "scheduler/scheduler_config.json", "unet/config.json",
                         "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                         "vae/diffusion_pytorch_model.safetensors",
                         # a TextToImagePipeline's frozen text encoder (transformers' layout) and tokenizer
                         "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/tokenizer.json",
                         "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json",
                         # a DreamBooth LoRA run's final/ (tinydiff finetune): the adapter and what it was taught
                         "pytorch_lora_weights.safetensors", "dreambooth.json"})
CHECKPOINT_FILES = frozenset({"config.json", "diffusion_pytorch_model.safetensors", "ema.safetensors",
                              "optimizer.safetensors", "optimizer_state.json", "scheduler_config.json",
                              "trainer_state.json"})


def foreign_entries(folder, files):
    """Entries below `folder` that are not among `files` (paths relative to it) or the folders
    holding them; links count as foreign. Returns paths, in sorted order."""
    folder = Path(folder)
    subfolders = {str(Path(f).parent) for f in files} - {"."}
    foreign = []
    for entry in sorted(folder.rglob("*")):
        rel = entry.relative_to(folder).as_posix()
        if entry.is_symlink():
            foreign.append(entry)
        elif entry.is_dir() and rel not in subfolders:
            foreign.append(entry)
        elif entry.is_file() and rel not in files:
            foreign.append(entry)
    return foreign


def written_by_tinydiff(folder):
    """True for a model folder tinydiff wrote: its config.json or model_index.json (or, in
    pipeline folders written before model_index.json carried it, unet/config.json) has
    `_tinydiff_version`."""
    folder = Path(folder)
    return (folder.is_dir() and not folder.is_symlink()
            and any(_json_has_version(folder / name)
                    for name in ("model_index.json", "config.json", "unet/config.json", "dreambooth.json"))
            and not foreign_entries(folder, MODEL_FILES))


def check_model_destination(path, flag, overwrite):
    """A model folder (export's --diffusers) may be written at `path`: it is new or empty, or,
    with `overwrite`, a model folder tinydiff wrote. A file is never replaced."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{flag}: {path} is a link; give the folder itself")
    check_folder_output(path, flag)
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputError(f"{flag}: {path} exists and is not empty; pass --overwrite to replace it "
                              f"(only a model folder tinydiff wrote is replaced)")
        if not written_by_tinydiff(path):
            raise OutputError(f"{flag}: {path} was not written by tinydiff, or holds files it did not write "
                              f"({_named(path)}), so it is not replaced; choose another folder")


# ---- training run folders ------------------------------------------------------------------------

STEP_NAME = re.compile(r"step-\d+$")
SAMPLE_NAME = re.compile(r"step-\d+\.png$")


def _is_ours(part):
    """Whether an entry of a run folder (checkpoints/, samples/, final/, vae/) holds only what
    tinydiff writes there, down to the last file."""
    if not part.is_dir() or part.is_symlink():
        return False
    if part.name == "checkpoints":
        return all(_is_checkpoint_entry(e) for e in part.iterdir())
    if part.name == "samples":
        return all(SAMPLE_NAME.match(e.name) and e.is_file() and not e.is_symlink() for e in part.iterdir())
    return written_by_tinydiff(part)


def _is_checkpoint_entry(entry):
    """The `latest` pointer (and its temporary twin) or a step folder, finished or temporary,
    holding checkpoint files only."""
    if entry.is_symlink():
        return False
    if entry.name in ("latest", "latest.tmp"):
        return entry.is_file()
    if STEP_NAME.match(entry.name) or entry.name.startswith(".step-"):
        return entry.is_dir() and not foreign_entries(entry, CHECKPOINT_FILES)
    return False


def _named(folder, most=3):
    """A few of the entries of `folder` tinydiff did not write, for messages."""
    folder = Path(folder)
    if folder.name == "checkpoints":
        odd = [e for e in sorted(folder.iterdir()) if not _is_checkpoint_entry(e)]
        odd += [f for e in odd if e.is_dir() and not e.is_symlink() for f in foreign_entries(e, CHECKPOINT_FILES)]
    elif folder.name == "samples":
        odd = [e for e in sorted(folder.iterdir()) if not (SAMPLE_NAME.match(e.name) and e.is_file())]
    else:
        odd = foreign_entries(folder, MODEL_FILES) if folder.is_dir() else [folder]
    shown = ", ".join(str(e) for e in odd[:most]) or "no _tinydiff_version in its config.json or model_index.json"
    return shown + (f" and {len(odd) - most} more" if len(odd) > most else "")


def latest_step(out):
    """(step, total steps) of the run's latest checkpoint, or None when it has none."""
    pointer = Path(out) / "checkpoints" / "latest"
    try:
        state = json.loads((pointer.parent / pointer.read_text().strip() / "trainer_state.json").read_text())
        return int(state["step"]), int(state["config"]["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe_run(out, parts):
    """'a run at step 300 of 3000' (and whether it finished), for messages."""
    found = [name for name in parts if (Path(out) / name).exists()]
    at = latest_step(out)
    if at is None:
        return f"an unfinished run without a checkpoint ({', '.join(n + '/' for n in found)})"
    step, total = at
    return f"a run at step {step} of {total}" + (" (finished)" if step >= total else "")


def check_run_folder(out, parts, resume, overwrite, flag="--out"):
    """Decide what training may do with folder `out`; refuse anything that would lose work.

    parts : names of the entries the command writes in `out` (checkpoints, samples, ...).
    Returns the entries to remove before training starts (--overwrite of a run), else [].
    """
    out = Path(out)
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other: --resume continues the run in "
                          f"{out}, --overwrite starts a new one there; give one of them")
    check_folder_output(out, flag)
    present = [out / name for name in parts if os.path.lexists(out / name)]
    for part in present:
        if not _is_ours(part):
            raise OutputError(f"{flag}: {part} was not written by tinydiff, or holds what it did not write "
                              f"({_named(part)}), and training would write there; move it away or choose "
                              f"another {flag}")
    if resume:
        if latest_step(out) is None:
            raise OutputError(f"--resume: no checkpoint in {out / 'checkpoints'} to continue from")
        return []
    if present and not overwrite:
        raise OutputError(f"{flag}: {out} already holds {describe_run(out, parts)}; continue it with "
                          f"--resume, or start over with --overwrite (removes its "
                          f"{', '.join(p.name + '/' for p in present)})")
    return present


def remove_run(out, present):
    """Remove the parts of a run that check_run_folder found (tinydiff's own), and any of their
    temporary or set-aside copies (.final.tmp-*, .final.old-*)."""
    for part in present:
        if not _is_ours(part):  # checked again: data and model building took a while
            raise OutputError(f"--overwrite: {part} changed since it was checked and now holds what tinydiff "
                              f"did not write ({_named(part)}); nothing was removed from it")
        shutil.rmtree(part)
        for leftover in Path(out).glob(f".{part.name}.*"):
            if leftover.is_dir() and re.search(r"\.(tmp|old)-[0-9a-f]+$", leftover.name):
                shutil.rmtree(leftover)
