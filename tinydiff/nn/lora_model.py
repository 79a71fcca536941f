"""Putting LoRA adapters on a model and managing them, with diffusers/PEFT's names.

    add_lora(model, rank, alpha, target_modules, adapter_name, rng)  wrap + freeze the base
    lora_parameters(model, adapter_name)                             what the optimiser trains
    set_adapters(model, adapter_names, adapter_weights)              which adapters, how strong
    set_lora_scale(model, scale)                                     the call-time scale s
    fuse_lora(model, lora_scale, adapter_names) / unfuse_lora(model) W0 + delta W, and back
    unload_lora(model)                                               the plain layers again
    delete_adapter(model, adapter_name)                              drop one adapter

A module is targeted when its dotted path equals a target or ends with "." + target, as PEFT
matches a list of target_modules: "to_q" adapts every `...attn1.to_q` and `...attn2.to_q`,
"to_out.0" the output projection of each attention. The equations are in tinydiff/nn/lora.py.
"""

import numpy as np

from tinydiff.nn.checks import describe
from tinydiff.nn.init import generator
from tinydiff.nn.lora import LoRALayer, check_rank, wrap_for_lora
from tinydiff.nn.module import Module

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")  # diffusers' for CLIPTextModel


def matches(name, target_modules):
    """PEFT's rule for a list of targets: the full path or a suffix after a dot."""
    return any(name == t or name.endswith("." + t) for t in target_modules)


def lora_layers(model):
    """(dotted name, LoRALayer) of every adapted layer of `model`, in module order."""
    _check_model(model)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALayer)]


def adapter_names(model):
    """Every adapter name present on `model`, in the order first seen."""
    names = []
    for _, layer in lora_layers(model):
        names += [n for n in layer.ranks if n not in names]
    return names


def _check_model(model):
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a tinydiff Module, got {describe(model)}")


def _replace(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model
    for part in parent_name.split(".") if parent_name else ():
        parent = getattr(parent, part)
    setattr(parent, child, new)


def add_lora(model, rank=4, alpha=None, target_modules=DEFAULT_TARGETS, adapter_name="default",
             rng=None):
    """Put a LoRA adapter on every Linear / Conv2d (1x1, 3x3) whose path matches target_modules.

    Freezes every parameter of `model` first (requires_grad_(False)); the new adapter's A and B
    are the only trainable parameters afterwards (lora_parameters(model, adapter_name)). The new
    adapter becomes the only active one on the whole model, at weight 1, as in diffusers after
    load_lora_weights (set_adapters changes that).

    Parameters
    ----------
    rank : int
        r >= 1.
    alpha : float, optional
        Scale numerator; the update is (alpha / r) B A x. Default: alpha = rank.
    target_modules : sequence of str
        Module path suffixes (diffusers' UNet default: to_q, to_k, to_v, to_out.0).
    adapter_name : str
        A new name (a valid identifier; no dots).
    rng : numpy.random.Generator, optional
        Draws A ~ N(0, (1/r)^2) (Hu et al. 2021, sec. 4.1), module by module in model order.

    Returns
    -------
    list of str : the adapted modules' dotted names.
    """
    _check_model(model)
    rank = check_rank(rank)
    alpha = float(rank if alpha is None else alpha)
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha: expected a number > 0, got {alpha}")
    if isinstance(target_modules, str) or not target_modules or \
            not all(isinstance(t, str) and t for t in target_modules):
        raise TypeError(f"target_modules: expected a non-empty sequence of module names, got "
                        f"{target_modules!r}")
    if not isinstance(adapter_name, str) or not adapter_name.isidentifier():
        raise ValueError(f"adapter_name: expected an identifier such as 'default', got {adapter_name!r}")
    if adapter_name in adapter_names(model):
        raise ValueError(f"adapter_name: {adapter_name!r} is already on this model; pick another "
                         f"name or delete_adapter first")
    rng = generator(rng)
    targets = [(n, m) for n, m in model.named_modules() if n and matches(n, target_modules)]
    adaptable = [(n, m) for n, m in targets if type(m).__name__ in ("Linear", "Conv2d") or isinstance(m, LoRALayer)]
    if not adaptable:
        raise ValueError(f"target_modules: no Linear or Conv2d module of this {type(model).__name__} "
                         f"matches {list(target_modules)} (matched modules: {[n for n, _ in targets][:6]})")
    model.requires_grad_(False)
    for name, module in adaptable:
        layer = wrap_for_lora(module)
        layer.new_adapter(adapter_name, rank, alpha, rng)
        layer.targets[adapter_name] = tuple(target_modules)
        if layer is not module:
            _replace(model, name, layer)
    set_adapters(model, [adapter_name])  # the new one alone, as diffusers after loading an adapter
    return [name for name, _ in adaptable]


def lora_parameters(model, adapter_name=None):
    """The A and B parameters (of one adapter, or of all), in model order: what to train."""
    params = []
    for _, layer in lora_layers(model):
        for name in layer.ranks:
            if adapter_name is None or name == adapter_name:
                params += [layer.lora_A[name].weight, layer.lora_B[name].weight]
    if not params:
        raise ValueError(f"adapter_name: no adapter {adapter_name!r} on this model "
                         f"(adapters: {adapter_names(model)})")
    return params


def set_adapters(model, adapter_names_, adapter_weights=None):
    """Make exactly these adapters active, adapter k at weight w_k (default 1.0 each).

    adapter_names_ : str or list of str; adapter_weights : float, list of floats or None."""
    known = adapter_names(model)
    names = [adapter_names_] if isinstance(adapter_names_, str) else list(adapter_names_)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"adapter_names: {unknown} not on this model (adapters: {known})")
    if adapter_weights is None:
        weights = [1.0] * len(names)
    elif isinstance(adapter_weights, (int, float, np.number)):
        weights = [float(adapter_weights)] * len(names)
    else:
        weights = [float(w) for w in adapter_weights]
    if len(weights) != len(names):
        raise ValueError(f"adapter_weights: expected {len(names)} weights for adapters {names}, "
                         f"got {len(weights)}")
    if not all(np.isfinite(weights)):
        raise ValueError(f"adapter_weights: expected finite numbers, got {weights}")
    for _, layer in lora_layers(model):
        layer.active = {n: w for n, w in zip(names, weights) if n in layer.ranks}


def set_lora_scale(model, scale):
    """The call-time scale s on every adapted layer (diffusers' cross_attention_kwargs
    {"scale": s}); returns the previous one, so a caller can put it back."""
    scale = float(scale)
    if not np.isfinite(scale):
        raise ValueError(f"scale: expected a finite number, got {scale}")
    previous = 1.0
    for _, layer in lora_layers(model):
        previous, layer.scale = layer.scale, scale
    return previous


def fuse_lora(model, lora_scale=1.0, adapter_names_=None):
    """Merge adapters into the base weights: W <- W0 + lora_scale * sum_k w_k (alpha_k/r_k) B_k A_k.

    adapter_names_ defaults to the active ones. Fused adapters no longer run in forward (same
    outputs, one product per layer). unfuse_lora restores W0 exactly (a kept copy)."""
    lora_scale = float(lora_scale)
    layers = lora_layers(model)
    if not layers:
        raise ValueError("fuse_lora: the model has no LoRA adapters")
    for _, layer in layers:
        names = list(layer.active) if adapter_names_ is None else \
            [n for n in ([adapter_names_] if isinstance(adapter_names_, str) else adapter_names_)
             if n in layer.ranks]
        layer.fuse(names, lora_scale)


def unfuse_lora(model):
    """Undo every fuse_lora: the base weights as they were before the first one, bit for bit."""
    for _, layer in lora_layers(model):
        layer.unfuse()


def delete_adapter(model, adapter_name):
    """Remove one adapter from every layer (layers left without adapters become plain again)."""
    if adapter_name not in adapter_names(model):
        raise ValueError(f"adapter_name: no adapter {adapter_name!r} on this model "
                         f"(adapters: {adapter_names(model)})")
    for name, layer in lora_layers(model):
        if adapter_name in layer.ranks:
            layer.remove_adapter(adapter_name)
        if not layer.ranks:
            _unwrap(model, name, layer)


def unload_lora(model):
    """Replace every adapted layer by its plain Linear / Conv2d, keeping its current weight
    (so fuse_lora then unload_lora leaves a merged model, as diffusers does). Adapters not
    fused are dropped. Returns the names of the layers put back."""
    names = []
    for name, layer in lora_layers(model):
        _unwrap(model, name, layer)
        names.append(name)
    return names


def _unwrap(model, name, layer):
    base = layer.base_layer
    base.weight, base.bias = layer.weight, layer.bias  # the same Parameters (to() may have cast)
    base.training = layer.training
    _replace(model, name, base)


def count_lora_parameters(model, adapter_name=None):
    """Sum over adapted matrices of r * (d_in + d_out) (a conv's d_in is C * kH * kW)."""
    return int(sum(p.data.size for p in lora_parameters(model, adapter_name)))
