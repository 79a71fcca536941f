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

import inspect
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
    """A JSON object (dict) from a UTF-8 file. Every problem with the file, whatever its kind
    (unreadable, UTF-16, binary, invalid JSON, a list where an object belongs), is one
    ValueError naming it; a missing file is a FileNotFoundError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw[:4]:
        raise ValueError(f"{path}: UTF-16 or UTF-32 encoded text; expected UTF-8 JSON (save it as UTF-8)")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark some editors add is tolerated
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start} is {raw[err.start:err.start + 1]!r}); "
                         f"expected a UTF-8 JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{...}}, got a JSON {json_kind(data)}")
    return data


def json_kind(value):
    """The JSON name of a decoded value's type, for messages."""
    for kind, name in ((bool, "boolean"), (dict, "object"), (list, "list"), (str, "string"),
                       ((int, float), "number"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def check_fields(data, fields, source):
    """Every one of `fields` present in the dict read from `source`."""
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{source}: missing field(s) {missing}; expected {list(fields)}")
    return data


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
    """Arrays by name from a safetensors file. A float array holding NaN or inf is refused,
    naming the file and the tensor: weights, EMA shadows or optimizer moments that are not
    finite come from a diverged or corrupted run, and would only produce NaN samples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        arrays = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise ValueError(f"{path}: tensor {name!r} holds {bad} NaN/inf value(s) of {a.size}; "
                             f"refusing non-finite weights")
    return arrays


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
    from tinydiff.models.clip_vision import CLIPConvVisionModel
    from tinydiff.models.unet_condition import UNet2DConditionModel
    from tinydiff.models.vae import AutoencoderKL

    return {"UNet2DModel": UNet2DModel, "MLPDenoiser": MLPDenoiser, "ConvClassifier": ConvClassifier,
            "AutoencoderKL": AutoencoderKL, "CLIPConvVisionModel": CLIPConvVisionModel,
            "UNet2DConditionModel": UNet2DConditionModel}


def model_from_config(config, source="config"):
    """Build (untrained) the model a config dict describes; keys starting with '_' are metadata.

    Every problem is a ValueError starting with `source` (a file name): no or an unknown
    _class_name, keys the class does not take, and whatever the class's constructor refuses
    (types, ranges, consistency, size: tinydiff.models.checks)."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: expected a JSON object {{...}}, got a JSON {json_kind(config)}")
    classes = model_classes()
    name = config.get("_class_name")
    if not isinstance(name, str) or name not in classes:
        raise ValueError(f"{source}: _class_name {name!r} is not one of {sorted(classes)}")
    cls = classes[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "rng"}
    kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} for a {name}; it takes {sorted(accepted)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None


def shown(names, limit=4):
    """At most `limit` names for a one-line message, and how many more there are."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{list(names[:limit])}{more}"


def check_weights(model, state, source, config_source):
    """`state` (name -> array, read from `source`) has exactly the tensors `model` (built from
    `config_source`) has, each of its shape and a float dtype; ValueError naming the tensor."""
    own = {name: p.data.shape for name, p in model.named_parameters()}
    kind = type(model).__name__
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"{source}: missing {len(missing)} tensor(s) of the {kind} that {config_source} "
                         f"describes: {shown(missing)}")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise ValueError(f"{source}: {len(unexpected)} tensor(s) that the {kind} of {config_source} does not "
                         f"have: {shown(unexpected)}")
    for name, shape in own.items():
        got = state[name]
        if got.shape != shape:
            raise ValueError(f"{source}: tensor {name!r} has shape {got.shape}, but the {kind} of "
                             f"{config_source} needs {shape}")
        if got.dtype.kind != "f":
            raise ValueError(f"{source}: tensor {name!r} has dtype {got.dtype}; expected floats")
    return {k: v.astype(np.float32) for k, v in state.items()}


def load_model(path):
    """Build the model a folder describes and load its weights (as float32).

    A problem with the folder's files is a ValueError (FileNotFoundError for a missing file)
    that names the file and what was expected."""
    path = Path(path)
    recover_folder(path)
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{path}: not a model folder (no {CONFIG_NAME})")
    config_file = path / CONFIG_NAME
    model = model_from_config(read_json(config_file), source=str(config_file))
    state = load_arrays(path / WEIGHTS_NAME)
    model.load_state_dict(check_weights(model, state, path / WEIGHTS_NAME, config_file))
    return model


def model_from_checkpoint(path):
    """The model of a training checkpoint folder, with its EMA weights (the ones sampled):
    ema.safetensors holds them as shadow.0, shadow.1, ... in named_parameters() order."""
    path = Path(path)
    config_file = path / CONFIG_NAME
    model = model_from_config(read_json(config_file), source=str(config_file))
    ema_file = path / "ema.safetensors"
    shadows = load_arrays(ema_file)
    names = [name for name, _ in model.named_parameters()]
    missing = [f"shadow.{i} ({name})" for i, name in enumerate(names) if f"shadow.{i}" not in shadows]
    if missing:
        raise ValueError(f"{ema_file}: missing {len(missing)} EMA shadow(s) of the {type(model).__name__} "
                         f"that {config_file} describes: {shown(missing)}")
    extra = sorted(set(shadows) - {f"shadow.{i}" for i in range(len(names))})
    if extra:
        raise ValueError(f"{ema_file}: {len(extra)} tensor(s) beyond the {len(names)} EMA shadows of the "
                         f"{type(model).__name__} that {config_file} describes: {shown(extra)}")
    state = {name: shadows[f"shadow.{i}"] for i, name in enumerate(names)}
    model.load_state_dict(check_weights(model, state, ema_file, config_file))
    return model


# ---- what a folder is, when it is not what was asked for -----------------------------------
def class_name(folder):
    """config.json's _class_name in `folder`, or None when there is no readable one."""
    try:
        return read_json(Path(folder) / CONFIG_NAME).get("_class_name")
    except (ValueError, FileNotFoundError):
        return None


def latest_checkpoint_in(folder):
    """The newest checkpoint folder (step-NNNNNNN) in a training run's checkpoints/ folder,
    as its `latest` pointer names it, else the highest step; None if there is none."""
    folder = Path(folder)
    pointer = folder / "latest"
    if pointer.is_file():
        named = folder / pointer.read_text(errors="replace").strip()
        if named.is_dir() and named.parent == folder:
            return named
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    return steps[-1] if steps else None


def vae_message(path):
    return (f"{path}: holds a VAE (AutoencoderKL, as `tinydiff train-vae` writes), not a diffusion model; "
            f"to train a diffusion model on its latents run `tinydiff train --latent {path} --dataset DATASET "
            f"--out DIR`, then sample DIR/final")


def not_a_pipeline(path):
    """One line saying why `path` is not a folder load_pipeline reads (a pipeline folder with
    model_index.json, or a training checkpoint) and what to pass instead."""
    path = Path(path)
    expected = ("expected a pipeline folder with model_index.json (a training run's final/) or a "
                "checkpoint folder with trainer_state.json")
    if not path.exists():
        return f"{path}: no such folder; {expected}"
    if not path.is_dir():
        return f"{path}: a file, not a model folder; {expected}"
    if "AutoencoderKL" in (class_name(path), class_name(path / "final")):
        return vae_message(path)
    if (path / "final" / "model_index.json").is_file():
        return (f"{path}: not a tinydiff model folder but a training run's output folder; its model is "
                f"{path / 'final'} (tinydiff sample --model {path / 'final'})")
    latest = latest_checkpoint_in(path / "checkpoints")
    if latest is not None:
        if class_name(latest) == "AutoencoderKL":
            return (f"{path}: a VAE training run (AutoencoderKL) that has no final/ yet; once it has, train a "
                    f"diffusion model on its latents with `tinydiff train --latent {path} ...`")
        return (f"{path}: not a tinydiff model folder but a training run without final/ yet; its latest "
                f"checkpoint is {latest} (tinydiff sample --model {latest})")
    latest = latest_checkpoint_in(path)
    if latest is not None:
        return (f"{path}: not a tinydiff model folder but a training run's checkpoints; the latest is {latest} "
                f"(tinydiff sample --model {latest})")
    name = class_name(path)
    if name is not None:
        if (path.parent / "model_index.json").is_file():
            return f"{path}: the {path.name}/ part of the pipeline folder {path.parent}; pass {path.parent}"
        return f"{path}: a bare {name} folder without a scheduler; {expected}"
    return f"{path}: not a tinydiff model; {expected}"


def check_pipeline_index(path):
    """model_index.json of a pipeline folder: a JSON object whose every listed part (unet,
    scheduler, vae) is a subfolder with its config. Returns the index."""
    path = Path(path)
    index = check_fields(read_json(path / "model_index.json"), ("unet",), path / "model_index.json")
    for part, config in (("unet", CONFIG_NAME), ("scheduler", "scheduler_config.json"), ("vae", CONFIG_NAME)):
        if part in index and not (path / part / config).is_file():
            raise FileNotFoundError(f"{path / 'model_index.json'} lists a {part}, but {path / part / config} "
                                    f"does not exist")
    return index
