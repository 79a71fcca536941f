"""LoRA layers (Hu et al. 2021): hand-written backward against float64 finite differences,
the exact start at the base model, several adapters with weights, fuse/unfuse, unload."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.nn import Conv2d, Linear, Module
from tinydiff.nn.gradcheck import gradcheck
from tinydiff.nn.lora import LoRAConv2d, LoRALinear, lora_delta_weight
from tinydiff.nn.lora_model import (add_lora, count_lora_parameters, delete_adapter, fuse_lora,
                                    lora_parameters, set_adapters, set_lora_scale, unfuse_lora,
                                    unload_lora)

pytestmark = pytest.mark.usefixtures("each_backend")
seeds = st.integers(0, 2**32 - 1)


class Block(Module):
    """A tiny model with diffusers-like names: attn.to_q, attn.to_out.0, conv1 (3x3), proj (1x1)."""

    def __init__(self, rng):
        super().__init__()
        self.to_q = Linear(4, 6, rng=rng)
        self.conv1 = Conv2d(3, 5, 3, padding=1, rng=rng)
        self.proj = Conv2d(5, 2, 1, rng=rng)

    def forward(self, x, img):
        return self.to_q(x), self.proj(self.conv1(img))


def randomise_b(layer, rng):
    """B = 0 at the start makes dA = 0; a random B exercises every term of the backward."""
    for name in layer.lora_B.keys():
        b = layer.lora_B[name].weight
        b.data[...] = rng.standard_normal(b.shape)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, lead=st.integers(0, 2), rank=st.integers(1, 3), bias=st.booleans(),
       frozen=st.booleans())
def test_lora_linear_gradients(seed, lead, rank, bias, frozen):
    rng = np.random.default_rng(seed)
    layer = LoRALinear(Linear(5, 4, bias=bias, rng=rng))
    layer.new_adapter("one", rank, 2.0 * rank, rng)
    layer.new_adapter("two", 1, 3.0, rng)
    layer.active = {"one": 0.7, "two": -1.3}
    layer.scale = 0.6
    randomise_b(layer, rng)
    layer.weight.requires_grad = not frozen
    gradcheck(layer, (rng.standard_normal((2,) + (3,) * lead + (5,)),), rng)


@settings(max_examples=12, deadline=None)
@given(seed=seeds, kernel=st.sampled_from([1, 3]), stride=st.integers(1, 2),
       padding=st.integers(0, 1), rank=st.integers(1, 3), frozen=st.booleans())
def test_lora_conv_gradients(seed, kernel, stride, padding, rank, frozen):
    rng = np.random.default_rng(seed)
    layer = LoRAConv2d(Conv2d(3, 4, kernel, stride=stride, padding=padding, rng=rng))
    layer.new_adapter("default", rank, 1.5, rng)
    layer.active = {"default": 1.0}
    randomise_b(layer, rng)
    layer.weight.requires_grad = not frozen
    gradcheck(layer, (rng.standard_normal((2, 3, 5, 4)),), rng)


def test_start_is_the_base_model_and_a_has_std_one_over_r():
    rng = np.random.default_rng(0)
    model = Block(rng)
    x, img = rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    before = model(x, img)
    names = add_lora(model, rank=8, alpha=16, target_modules=("to_q", "conv1", "proj"), rng=rng)
    assert names == ["to_q", "conv1", "proj"]
    after = model(x, img)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)  # B = 0: exactly, not approximately
    a = np.concatenate([p.data.ravel() for p in lora_parameters(model)[0::2]])
    assert abs(a.std() - 1 / 8) < 0.015  # A ~ N(0, (1/r)^2), diffusers' "gaussian" init
    assert all(np.all(p.data == 0) for p in lora_parameters(model)[1::2])


def test_freezing_keeps_names_and_trains_only_the_adapter():
    rng = np.random.default_rng(1)
    model = Block(rng)
    keys = list(model.state_dict())
    add_lora(model, rank=2, target_modules=("to_q", "conv1"), rng=rng)
    assert [k for k in model.state_dict() if ".lora_" not in k] == keys  # base names unchanged
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["to_q.lora_A.default.weight", "to_q.lora_B.default.weight",
                         "conv1.lora_A.default.weight", "conv1.lora_B.default.weight"]
    assert all(p.grad is None for n, p in model.named_parameters() if ".lora_" not in n)
    # r (d_in + d_out) per matrix; a 3x3 conv's d_in is C * 9
    assert count_lora_parameters(model) == 2 * (4 + 6) + 2 * (3 * 9 + 5)


def test_adapter_weights_scale_and_fuse_unfuse():
    rng = np.random.default_rng(2)
    model = Block(rng)
    x, img = rng.standard_normal((3, 4)), rng.standard_normal((2, 3, 5, 5))
    model.to(np.float64)
    base = model(x, img)
    add_lora(model, rank=2, alpha=4, target_modules=("to_q", "conv1"), adapter_name="a", rng=rng)
    add_lora(model, rank=3, alpha=1, target_modules=("to_q", "conv1"), adapter_name="b", rng=rng)
    layer = model.to_q
    for name in ("a", "b"):
        randomise_b(model.to_q, rng)
        randomise_b(model.conv1, rng)
    set_adapters(model, ["a", "b"], [0.5, 2.0])
    w0 = layer.weight.data.copy()
    delta = 0.5 * (4 / 2) * lora_delta_weight(layer.lora_A["a"].weight.data, layer.lora_B["a"].weight.data) \
        + 2.0 * (1 / 3) * lora_delta_weight(layer.lora_A["b"].weight.data, layer.lora_B["b"].weight.data)
    np.testing.assert_allclose(model(x, img)[0], base[0] + x @ delta.T, atol=1e-12)  # eq. 3, summed
    set_lora_scale(model, 0.25)
    np.testing.assert_allclose(model(x, img)[0], base[0] + 0.25 * x @ delta.T, atol=1e-12)
    set_lora_scale(model, 1.0)
    unfused = model(x, img)
    conv_w0 = model.conv1.weight.data.copy()
    fuse_lora(model)
    assert model.to_q.fused == ["a", "b"]
    for y, z in zip(model(x, img), unfused):
        np.testing.assert_allclose(y, z, atol=1e-12)
    unfuse_lora(model)
    np.testing.assert_array_equal(layer.weight.data, w0)  # bit for bit
    np.testing.assert_array_equal(model.conv1.weight.data, conv_w0)
    fuse_lora(model, lora_scale=0.5, adapter_names_=["a"])
    set_adapters(model, "b", 0.0)
    np.testing.assert_allclose(model(x, img)[0], base[0] + 0.5 * 0.5 * 2 * x @ lora_delta_weight(
        layer.lora_A["a"].weight.data, layer.lora_B["a"].weight.data).T, atol=1e-12)
    unfuse_lora(model)
    delete_adapter(model, "b")
    assert list(model.to_q.ranks) == ["a"]
    unload_lora(model)
    assert type(model.to_q) is Linear and type(model.conv1) is Conv2d
    np.testing.assert_array_equal(model(x, img)[0], base[0])


def test_fuse_then_unload_keeps_the_merged_weights():
    rng = np.random.default_rng(3)
    model = Block(rng)
    x, img = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    add_lora(model, rank=2, target_modules=("proj",), rng=rng)
    randomise_b(model.proj, rng)
    adapted = model(x, img)[1]
    fuse_lora(model)
    unload_lora(model)
    assert type(model.proj) is Conv2d
    np.testing.assert_allclose(model(x, img)[1], adapted, atol=1e-5)


def test_bad_arguments_are_named():
    model = Block(np.random.default_rng(4))
    with pytest.raises(ValueError, match="target_modules"):
        add_lora(model, target_modules=("to_k",))
    with pytest.raises(ValueError, match="rank"):
        add_lora(model, rank=0, target_modules=("to_q",))
    add_lora(model, rank=1, target_modules=("to_q",))
    with pytest.raises(ValueError, match="already"):
        add_lora(model, rank=1, target_modules=("to_q",))
    with pytest.raises(ValueError, match="adapter_names"):
        set_adapters(model, ["nope"])
    with pytest.raises(ValueError, match="adapter_weights"):
        set_adapters(model, ["default"], [1.0, 2.0])
    with pytest.raises(ValueError, match="kernel_size"):
        LoRAConv2d(Conv2d(2, 2, 5))
