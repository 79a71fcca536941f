"""Model folders and training checkpoints: config.json + safetensors, written atomically.

A model folder is what diffusers' save_pretrained writes: `config.json` (with `_class_name`)
and `diffusion_pytorch_model.safetensors`. A training checkpoint adds the EMA weights, the
optimizer's moments and a `trainer_state.json` (step, random-generator states, the loss log).

Nothing here uses pickle: arrays go to safetensors, numbers and names to JSON. The atomic
folder writes, JSON and safetensors files with their checks are tinydiff.files' (any layer
may import that module); the names below are re-exported for this module's callers.
"""

import inspect
from pathlib import Path

import numpy as np

import tinydiff
from tinydiff.files import (  # noqa: F401 (re-exported: pipelines' modules call them as ckpt.*)
    check_weights, json_kind, load_arrays, read_json, recover_folder, save_arrays, shown,
    write_folder_atomically, write_json)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


def check_fields(data, fields, source):
    """Every one of `fields` present in the dict read from `source`."""
    missing = [f for f in fields if f not in data]
    if missing:
        raise ValueError(f"{source}: missing field(s) {missing}; expected {list(fields)}")
    return data


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
    from tinydiff.models.pixel_transformer import PixelTransformer
    from tinydiff.models.pixel_vae import PixelVAE
    from tinydiff.models.unet_condition import UNet2DConditionModel
    from tinydiff.models.vae import AutoencoderKL

    return {"UNet2DModel": UNet2DModel, "MLPDenoiser": MLPDenoiser, "ConvClassifier": ConvClassifier,
            "AutoencoderKL": AutoencoderKL, "CLIPConvVisionModel": CLIPConvVisionModel,
            "UNet2DConditionModel": UNet2DConditionModel, "PixelVAE": PixelVAE, "PixelTransformer": PixelTransformer}


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
