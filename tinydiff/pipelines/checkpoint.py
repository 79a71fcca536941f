"""Model folders and training checkpoints: config.json + safetensors, written atomically.

A model folder is what diffusers' save_pretrained writes: `config.json` (with `_class_name`)
and `diffusion_pytorch_model.safetensors`. A training checkpoint adds the EMA weights, the
optimizer's moments and a `trainer_state.json` (step, random-generator states, the loss log).

Nothing here uses pickle: arrays go to safetensors, numbers and names to JSON.

Atomic writes: a folder is filled under a temporary name beside its destination and renamed
into place only once every file is flushed to disk, so a crash mid-save leaves the previous
folder intact. Replacing an existing folder takes two renames (old one aside, new one in);
if a crash falls between them, load_folder finds the set-aside copy and puts it back.
"""

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

import tinydiff

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_folder_atomically(path, write_contents):
    """Create folder `path` by calling write_contents(tmp_dir), then renaming tmp_dir to path.

    An existing folder at `path` is replaced only after the new one is complete; anything
    else at `path` (a file, a link) is refused, never moved aside. Whether an existing folder
    may be replaced at all is the caller's question (tinydiff.pipelines.outputs).
    """
    path = Path(path)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
        raise FileExistsError(f"{path} exists and is not a folder; not replacing it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkdir honours the umask, as a folder the user made would (tempfile.mkdtemp makes it
    # private, 0700, which the rename would then carry over to the saved model)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        write_contents(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                fsync_file(file)
        if path.exists():
            aside = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, aside)
            os.rename(tmp, path)
            shutil.rmtree(aside)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(path):
    """If a replacement was interrupted between its two renames, put the old folder back."""
    path = Path(path)
    if path.exists():
        return
    aside = sorted(path.parent.glob(f".{path.name}.old-*"))
    if aside:
        os.rename(aside[-1], path)


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def save_arrays(path, arrays, dtype=None):
    """Arrays by name to a safetensors file; dtype (e.g. float16) casts float arrays for storage.
    Float arrays holding NaN or inf are refused (ValueError): a saved model is never one that
    silently produces NaN."""
    out = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds NaN or inf; refusing to save it to {path}")
        if dtype is not None and a.dtype.kind == "f":
            a = a.astype(dtype)
        out[name] = a
    try:
        save_file(out, str(path))
    except SafetensorError as err:
        raise os_error_of(err, path) from None


def os_error_of(err, path):
    """safetensors reports a failed write (a full disk) as its own error, 'I/O error: ...
    (os error 28)'; give it back as the OSError it was, so callers can tell ENOSPC apart."""
    code = re.search(r"\(os error (\d+)\)", str(err))
    if code is None:
        return err
    return OSError(int(code[1]), os.strerror(int(code[1])), str(path))


def load_arrays(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None


def model_config(model):
    """config.json content: diffusers' keys, the class name, and who wrote it."""
    config = {"_class_name": type(model).__name__, "_tinydiff_version": tinydiff.__version__}
    for key, value in model.config.items():
        config[key] = list(value) if isinstance(value, tuple) else value
    return config


def save_model(model, path, dtype=np.float32):
    """Write a model folder (config.json + weights) atomically. dtype=np.float16 halves the size."""

    def write(tmp):
        write_json(tmp / CONFIG_NAME, model_config(model))
        save_arrays(tmp / WEIGHTS_NAME, model.state_dict(), dtype)

    write_folder_atomically(path, write)


def model_classes():
    # imported here: config names map to these classes, and pipelines sit above models
    from tinydiff.models import MLPDenoiser, UNet2DModel
    from tinydiff.models.classifier import ConvClassifier
    from tinydiff.models.vae import AutoencoderKL

    return {"UNet2DModel": UNet2DModel, "MLPDenoiser": MLPDenoiser, "ConvClassifier": ConvClassifier,
            "AutoencoderKL": AutoencoderKL}


def model_from_config(config, source="config"):
    """Build (untrained) the model a config dict describes; keys starting with '_' are metadata."""
    classes = model_classes()
    name = config.get("_class_name")
    if name not in classes:
        raise ValueError(f"{source}: _class_name {name!r} is not one of {sorted(classes)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if not k.startswith("_")}
    try:
        return classes[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"{source}: does not describe a {name} ({err})") from None


def load_model(path):
    """Build the model a folder describes and load its weights (as float32)."""
    path = Path(path)
    recover_folder(path)
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{path}: not a model folder (no {CONFIG_NAME})")
    model = model_from_config(read_json(path / CONFIG_NAME), source=str(path / CONFIG_NAME))
    state = load_arrays(path / WEIGHTS_NAME)
    model.load_state_dict({k: v.astype(np.float32) for k, v in state.items()})
    return model
