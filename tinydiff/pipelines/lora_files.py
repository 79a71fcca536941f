"""LoRA adapter files in diffusers' format: `pytorch_lora_weights.safetensors`.

Only the adapter is saved. Keys are PEFT's, prefixed by the part they adapt:

    unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight   (r, D_in)
    unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight   (D_out, r)
    text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight         ...

PEFT keys carry no alpha. diffusers (0.42) reads it from the safetensors header: the metadata
entry "lora_adapter_metadata" holds a JSON object of LoraConfig arguments per part,
{"unet.r": 4, "unet.lora_alpha": 8.0, "unet.target_modules": [...], ...}; without it diffusers
assumes alpha = r. save_lora_weights writes that entry and load_lora_weights reads it back.
"""

import json
import os
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from tinydiff.files import load_arrays
from tinydiff.nn.checks import describe
from tinydiff.nn.lora_model import adapter_names, add_lora, lora_layers

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
METADATA_KEY = "lora_adapter_metadata"  # diffusers.loaders.lora_base.LORA_ADAPTER_METADATA_KEY
PARTS = ("unet", "text_encoder")


def adapter_state(model, prefix, adapter_name):
    """{prefix.module.lora_A.weight: A, prefix.module.lora_B.weight: B} and the LoraConfig
    arguments (r, lora_alpha, target_modules) of one adapter on `model`."""
    state, ranks, alphas, targets = {}, set(), set(), set()
    for name, layer in lora_layers(model):
        if adapter_name not in layer.ranks:
            continue
        state[f"{prefix}.{name}.lora_A.weight"] = layer.lora_A[adapter_name].weight.data
        state[f"{prefix}.{name}.lora_B.weight"] = layer.lora_B[adapter_name].weight.data
        ranks.add(layer.ranks[adapter_name])
        alphas.add(layer.alphas[adapter_name])
        # transformers 5 flattens CLIPTextModel (no text_model.): a suffix matches either tree
        targets.update(t.removeprefix("text_model.") for t in layer.targets[adapter_name])
    if not state:
        raise ValueError(f"adapter_name: no adapter {adapter_name!r} on the {prefix} "
                         f"(adapters: {adapter_names(model)})")
    (rank,), (alpha,) = ranks, alphas  # add_lora gives one rank and alpha per adapter
    config = {"r": rank, "lora_alpha": alpha, "target_modules": sorted(targets),
              "init_lora_weights": "gaussian", "lora_dropout": 0.0, "bias": "none"}
    return state, config


def save_lora_weights(folder, unet=None, text_encoder=None, adapter_name="default"):
    """Write folder/pytorch_lora_weights.safetensors (float32) with one adapter of the UNet
    and/or the text encoder; returns its path. The write is atomic (temp file, then rename)."""
    if unet is None and text_encoder is None:
        raise ValueError("save_lora_weights: pass unet and/or text_encoder (the adapted models)")
    arrays, metadata = {}, {}
    for prefix, model in zip(PARTS, (unet, text_encoder)):
        if model is None:
            continue
        state, config = adapter_state(model, prefix, adapter_name)
        arrays.update({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()})
        metadata.update({f"{prefix}.{k}": v for k, v in config.items()})
    bad = [k for k, v in arrays.items() if not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"save_lora_weights: {bad[0]} holds NaN or inf; refusing to save it")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LORA_WEIGHT_NAME
    temporary = folder / f".{LORA_WEIGHT_NAME}.tmp"
    header = {"format": "pt", METADATA_KEY: json.dumps(metadata, indent=2, sort_keys=True)}
    save_file(arrays, str(temporary), metadata=header)
    os.replace(temporary, path)
    return path


def read_lora_file(path):
    """(arrays by key, LoRA metadata dict or None) of a LoRA safetensors file or its folder."""
    path = Path(path)
    if path.is_dir():
        path = path / LORA_WEIGHT_NAME
    arrays = load_arrays(path)
    with safe_open(str(path), framework="numpy") as f:
        header = f.metadata() or {}
    raw = header.get(METADATA_KEY)
    try:
        metadata = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        raise ValueError(f"{path}: its {METADATA_KEY!r} metadata is not valid JSON") from None
    return path, arrays, metadata


def split_part(arrays, prefix, source):
    """{module: (A, B)} for the keys `prefix.<module>.lora_A.weight` / `.lora_B.weight`."""
    pairs = {}
    for key, value in arrays.items():
        if not key.startswith(prefix + "."):
            continue
        body = key[len(prefix) + 1:]
        for which in ("lora_A", "lora_B"):
            if body.endswith(f".{which}.weight"):
                module = body[: -len(f".{which}.weight")]
                pairs.setdefault(module, {})[which] = value
                break
        else:
            raise ValueError(f"{source}: key {key!r} is not a LoRA weight (expected "
                             f"'{prefix}.<module>.lora_A.weight' or '.lora_B.weight')")
    for module, pair in pairs.items():
        if len(pair) != 2:
            missing = "lora_B" if "lora_A" in pair else "lora_A"
            raise ValueError(f"{source}: key {prefix}.{module}.{missing}.weight is missing")
    return pairs


def load_into(model, pairs, prefix, alpha, targets, adapter_name, source):
    """add_lora on exactly the file's modules, then copy A and B in; errors name the key."""
    modules = dict(model.named_modules())
    unknown = [m for m in pairs if m not in modules]
    if unknown:
        raise ValueError(f"{source}: key {prefix}.{unknown[0]}.lora_A.weight names no module of this "
                         f"{type(model).__name__} ({len(unknown)} such keys): an adapter made for "
                         f"another model?")
    ranks = {pair["lora_A"].shape[0] for pair in pairs.values()}
    if len(ranks) != 1:
        raise ValueError(f"{source}: the {prefix} adapters have several ranks {sorted(ranks)}; "
                         f"tinydiff loads one rank per adapter")
    (rank,) = ranks
    for module, pair in pairs.items():
        base = modules[module]
        base = getattr(base, "base_layer", base)
        w = base.weight.shape
        a_shape = (rank, w[1]) + tuple(w[2:])
        b_shape = (w[0], rank) + ((1, 1) if len(w) == 4 else ())
        for which, shape in (("lora_A", a_shape), ("lora_B", b_shape)):
            if pair[which].shape != shape:
                raise ValueError(f"{source}: key {prefix}.{module}.{which}.weight has shape "
                                 f"{pair[which].shape}, but {module} of this {type(model).__name__} "
                                 f"(weight {w}) needs {shape} for rank {rank}: an adapter made for "
                                 f"another model?")
    add_lora(model, rank, alpha, tuple(pairs), adapter_name)
    layers = dict(lora_layers(model))
    for module, pair in pairs.items():
        layer = layers[module]
        layer.lora_A[adapter_name].weight.data[...] = pair["lora_A"]
        layer.lora_B[adapter_name].weight.data[...] = pair["lora_B"]
    if targets is not None:  # the file's own target_modules, written back if it is saved again
        for module in pairs:
            layers[module].targets[adapter_name] = tuple(targets)
    return rank


def load_lora_weights(unet, text_encoder, path, adapter_name="default"):
    """Load a LoRA file (or the folder holding pytorch_lora_weights.safetensors) onto the UNet
    and, if the file has `text_encoder.` keys, the text encoder, as adapter `adapter_name`.

    alpha comes from the file's lora_adapter_metadata ("unet.lora_alpha"), else alpha = r as
    diffusers assumes. The new adapter becomes the only active one of each part it adapts, at
    weight 1, as in diffusers (set_adapters combines several). Returns {part: rank} loaded."""
    path, arrays, metadata = read_lora_file(path)
    source = str(path)
    others = [k for k in arrays if not k.startswith(tuple(p + "." for p in PARTS))]
    if others:
        raise ValueError(f"{source}: key {others[0]!r} is neither 'unet.' nor 'text_encoder.' "
                         f"(tinydiff reads diffusers/PEFT-format LoRA files)")
    loaded = {}
    for prefix, model in zip(PARTS, (unet, text_encoder)):
        pairs = split_part(arrays, prefix, source)
        if not pairs:
            continue
        if model is None:
            raise ValueError(f"{source}: has {prefix}. keys but no {prefix} was given to load them into")
        if adapter_name in adapter_names(model):
            raise ValueError(f"adapter_name: {adapter_name!r} is already loaded; pick another name")
        alpha = None if metadata is None else metadata.get(f"{prefix}.lora_alpha")
        if alpha is not None and not isinstance(alpha, (int, float)):
            raise ValueError(f"{source}: metadata {prefix}.lora_alpha must be a number, got {describe(alpha)}")
        targets = None if metadata is None else metadata.get(f"{prefix}.target_modules")
        if targets is not None and (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)):
            targets = None  # not ours to judge: the weights' own module names stand in
        loaded[prefix] = load_into(model, pairs, prefix, alpha, targets, adapter_name, source)
    if not loaded:
        raise ValueError(f"{source}: no LoRA weights ('unet.<module>.lora_A.weight' ...) in this file")
    return loaded
