"""LoRA files: diffusers/PEFT key names, alpha in the metadata diffusers reads, round trip,
and errors naming the key for an adapter of the wrong shape or made for another model."""

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from tinydiff.nn import Conv2d, Linear, Module, ModuleList
from tinydiff.nn.lora_model import add_lora, adapter_names, lora_layers
from tinydiff.pipelines.lora_files import load_lora_weights, save_lora_weights


class Attention(Module):
    def __init__(self, rng, width=6):
        super().__init__()
        self.to_q, self.to_k = Linear(width, width, rng=rng), Linear(4, width, rng=rng)
        self.to_out = ModuleList([Linear(width, width, rng=rng)])


class Tiny(Module):
    def __init__(self, rng, width=6):
        super().__init__()
        self.blocks = ModuleList([Attention(rng, width), Attention(rng, width)])
        self.conv = Conv2d(3, 3, 3, padding=1, rng=rng)

    def forward(self, x, c):
        return sum(b.to_out[0](b.to_q(x) + b.to_k(c)) for b in self.blocks)


def adapted(seed, rank=2, alpha=5.0, name="default", targets=("to_q", "to_k", "to_out.0")):
    rng = np.random.default_rng(seed)
    model = Tiny(rng)
    add_lora(model, rank=rank, alpha=alpha, target_modules=targets, adapter_name=name, rng=rng)
    for _, layer in lora_layers(model):
        b = layer.lora_B[name].weight
        b.data[...] = rng.standard_normal(b.shape)  # as if trained
    return model


def test_keys_metadata_and_round_trip(tmp_path):
    model = adapted(0)
    x, c = np.ones((2, 6), np.float32), np.ones((2, 4), np.float32)
    path = save_lora_weights(tmp_path, unet=model)
    assert path.name == "pytorch_lora_weights.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        keys, header = set(f.keys()), f.metadata()
    assert "unet.blocks.1.to_k.lora_A.weight" in keys and "unet.blocks.0.to_out.0.lora_B.weight" in keys
    assert len(keys) == 12 and not any("default" in k for k in keys)  # PEFT keys drop the name
    meta = json.loads(header["lora_adapter_metadata"])
    assert meta["unet.r"] == 2 and meta["unet.lora_alpha"] == 5.0
    fresh = Tiny(np.random.default_rng(0))  # same base weights
    assert load_lora_weights(fresh, None, tmp_path, adapter_name="style") == {"unet": 2}
    assert adapter_names(fresh) == ["style"]
    np.testing.assert_allclose(fresh(x, c), model(x, c), rtol=1e-6)  # alpha / r came back
    assert not np.allclose(fresh(x, c), Tiny(np.random.default_rng(0))(x, c))


def test_without_metadata_alpha_is_rank(tmp_path):
    model = adapted(1, alpha=2.0)  # alpha = r: the file needs no metadata
    path = save_lora_weights(tmp_path, unet=model)
    with safe_open(str(path), framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    save_file(arrays, str(tmp_path / "plain.safetensors"))
    fresh = Tiny(np.random.default_rng(1))
    load_lora_weights(fresh, None, tmp_path / "plain.safetensors")
    x, c = np.ones((1, 6), np.float32), np.ones((1, 4), np.float32)
    np.testing.assert_allclose(fresh(x, c), model(x, c), rtol=1e-6)


def test_errors_name_the_key(tmp_path):
    save_lora_weights(tmp_path, unet=adapted(2))
    other = Tiny(np.random.default_rng(2), width=8)  # another model: wider layers
    with pytest.raises(ValueError, match=r"key unet\.blocks\.0\.to_\w+\.lora_[AB]\.weight has shape"):
        load_lora_weights(other, None, tmp_path)
    assert adapter_names(other) == []  # nothing half-loaded
    with safe_open(str(tmp_path / "pytorch_lora_weights.safetensors"), framework="numpy") as f:
        arrays = {k.replace("blocks.1", "blocks.7"): f.get_tensor(k) for k in f.keys()}
    save_file(arrays, str(tmp_path / "renamed.safetensors"))
    with pytest.raises(ValueError, match=r"unet\.blocks\.7\..*names no module"):
        load_lora_weights(Tiny(np.random.default_rng(2)), None, tmp_path / "renamed.safetensors")
    del arrays["unet.blocks.0.to_q.lora_B.weight"]
    save_file(arrays, str(tmp_path / "half.safetensors"))
    with pytest.raises(ValueError, match=r"unet\.blocks\.0\.to_q\.lora_B\.weight is missing"):
        load_lora_weights(Tiny(np.random.default_rng(2)), None, tmp_path / "half.safetensors")
    with pytest.raises(ValueError, match="text_encoder"):
        save_lora_weights(tmp_path, unet=adapted(3), text_encoder=Tiny(np.random.default_rng(3)))
