"""CLIP text model folders in transformers' layout: config.json + model.safetensors.

config.json holds CLIPTextConfig's fields plus model_type "clip_text_model" and architectures,
so transformers' CLIPTextConfig / CLIPTextModel(WithProjection).from_pretrained read it; the
weights carry transformers' names. The atomic folder write, JSON and safetensors reading with
their checks are tinydiff.files'.
"""

from pathlib import Path

import numpy as np

from tinydiff.files import check_weights, load_arrays, read_json, save_arrays, write_folder_atomically, write_json

MODEL_TYPE = "clip_text_model"
WEIGHTS_NAME = "model.safetensors"
# keys transformers writes that change nothing in this model (dropouts must then be 0)
IGNORED_KEYS = ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype",
                "initializer_range", "output_attentions", "output_hidden_states", "return_dict")
ZERO_KEYS = ("dropout", "attention_dropout")


def transformers_config(model):
    """config.json's content for `model` (a CLIPTextModel or CLIPTextModelWithProjection)."""
    return {"architectures": [type(model).__name__], "model_type": MODEL_TYPE, **model.config,
            "dropout": 0.0, "attention_dropout": 0.0}


def save_clip_text(model, path, dtype=np.float32):
    """Write the folder atomically; dtype casts the stored weights (float16 halves the size)."""
    def write(tmp):
        write_json(tmp / "config.json", transformers_config(model))
        save_arrays(tmp / WEIGHTS_NAME, model.state_dict(), dtype)

    write_folder_atomically(path, write)


def load_clip_text(cls, path):
    """Build `cls` from path/config.json and load path/model.safetensors into it (float32).
    Every problem is a ValueError (FileNotFoundError for a missing file) naming the file."""
    config_file = Path(path) / "config.json"
    config = read_json(config_file)
    if config.get("model_type") != MODEL_TYPE:
        raise ValueError(f"{config_file}: model_type must be {MODEL_TYPE!r}, got {config.get('model_type')!r}")
    for key in ZERO_KEYS:
        if config.get(key, 0.0) != 0.0:
            raise ValueError(f"{config_file}: {key}={config[key]!r}; tinydiff's CLIP text model has no dropout")
    fields = {k: v for k, v in config.items()
              if not k.startswith("_") and k not in IGNORED_KEYS + ZERO_KEYS}
    try:
        model = cls(**fields)
    except TypeError as err:  # an unknown field, or a wrong type
        raise ValueError(f"{config_file}: {err}") from None
    except ValueError as err:
        raise ValueError(f"{config_file}: {err}") from None
    weights = Path(path) / WEIGHTS_NAME
    state = load_arrays(weights)
    # transformers >= 5 writes CLIPTextModel's weights without the "text_model." prefix (its
    # class lost that level) and loads either form; tinydiff keeps the prefix, as Stable
    # Diffusion's text_encoder folders have it
    state = {k if k.startswith("text_model.") or k == "text_projection.weight" else f"text_model.{k}": v
             for k, v in state.items()}
    model.load_state_dict(check_weights(model, state, weights, config_file))
    return model
