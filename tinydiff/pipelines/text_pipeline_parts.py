"""What the text-conditional pipeline folders share (TextToImagePipeline, TextToVideoPipeline): the
checks that a UNet, a VAE and a text encoder fit together, writing unet/, vae/, text_encoder/,
tokenizer/ and scheduler/ into a folder, and reading the folder's index and scheduler back.
Every problem is one line naming the file."""

from pathlib import Path

from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config

SCHEDULER_KINDS = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim", "DPMSolverMultistepScheduler": "dpm"}


def check_text_parts(unet, vae, text_encoder):
    """The UNet reads the text encoder's states (cross_attention_dim = hidden_size) and
    denoises the VAE's latents (in_channels = latent_channels); ValueError naming the mismatch."""
    width = unet.config.get("cross_attention_dim")
    if width is None:
        raise ValueError(f"unet: expected a text-conditional UNet, got a {type(unet).__name__}")
    if width != text_encoder.config["hidden_size"]:
        raise ValueError(f"unet: cross_attention_dim={width}, but the text encoder's hidden_size is "
                         f"{text_encoder.config['hidden_size']}")
    if unet.config["in_channels"] != vae.config["latent_channels"]:
        raise ValueError(f"unet: in_channels={unet.config['in_channels']}, but the VAE has latent_channels="
                         f"{vae.config['latent_channels']}")


def scheduler_kind(scheduler):
    """The scheduler's class name, one a pipeline folder can hold (TypeError otherwise)."""
    kind = type(scheduler).__name__
    if kind not in SCHEDULER_KINDS:
        raise TypeError(f"scheduler: expected one of {sorted(SCHEDULER_KINDS)}, got {kind}")
    return kind


def write_text_parts(tmp, models, text_encoder, tokenizer, scheduler, dtype):
    """Into the folder being written: one model folder per entry of `models` ({"unet": ...,
    "vae": ...}), text_encoder/ (a transformers folder), tokenizer/ and
    scheduler/scheduler_config.json. Returns model_index.json's entries for them."""
    kind = scheduler_kind(scheduler)
    for part, model in models.items():
        (tmp / part).mkdir()
        ckpt.write_json(tmp / part / ckpt.CONFIG_NAME, ckpt.model_config(model))
        ckpt.save_arrays(tmp / part / ckpt.WEIGHTS_NAME, model.state_dict(), dtype)
    text_encoder.save_pretrained(tmp / "text_encoder", dtype)
    tokenizer.save(tmp / "tokenizer")
    (tmp / "scheduler").mkdir()
    ckpt.write_json(tmp / "scheduler" / "scheduler_config.json", {"_class_name": kind, **scheduler_config(scheduler)})
    return {**{part: ["diffusers", type(model).__name__] for part, model in models.items()},
            "text_encoder": ["transformers", type(text_encoder).__name__],
            "tokenizer": ["transformers", "PreTrainedTokenizerFast"], "scheduler": ["diffusers", kind]}


def is_pipeline_folder(path, class_name):
    """Whether `path` holds a model_index.json naming `class_name`."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return False
    try:
        return ckpt.read_json(index).get("_class_name") == class_name
    except ValueError:
        return False


def read_text_index(path, class_name, what, parts):
    """model_index.json of a `class_name` folder (`what`: "text-to-image", ...) whose `parts`
    are all there; FileNotFoundError naming what is missing."""
    path = Path(path)
    ckpt.recover_folder(path)
    if not is_pipeline_folder(path, class_name):
        raise FileNotFoundError(f"{path}: not a {what} pipeline folder (expected model_index.json with "
                                f"_class_name {class_name!r})")
    index = ckpt.check_pipeline_index(path)
    for part in parts:
        if part not in index or not (path / part).is_dir():
            raise FileNotFoundError(f"{path}: a {class_name} folder needs {part}/ (and its entry in model_index.json)")
    return index


def read_scheduler(path):
    """The scheduler of a pipeline folder's scheduler/scheduler_config.json (its class, DDPM if
    it names none tinydiff knows)."""
    config_file = Path(path) / "scheduler" / "scheduler_config.json"
    config = ckpt.read_json(config_file)
    kind = SCHEDULER_KINDS.get(config.get("_class_name"), "ddpm")
    try:
        return scheduler_from_config(kind, {k: v for k, v in config.items() if not k.startswith("_")})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_file}: {err}") from None
