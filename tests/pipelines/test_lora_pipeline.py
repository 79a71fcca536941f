"""TextToImagePipeline's LoRA methods (diffusers' names) and `tinydiff sample --lora FILE[:WEIGHT]`,
on the tiny random pipeline of test_export_sd."""

import numpy as np
import pytest
from test_export_sd import tiny_parts, tiny_pipeline

from tinydiff.cli import main
from tinydiff.nn import Module
from tinydiff.nn.gradcheck import gradcheck
from tinydiff.nn.lora_model import add_lora, lora_layers, lora_parameters
from tinydiff.nn.lora_model import TEXT_ENCODER_TARGETS
from tinydiff.pipelines.lora_files import save_lora_weights

LATENTS = np.random.default_rng(7).standard_normal((1, 2, 4, 4)).astype(np.float32)


def images(pipe, **options):
    return pipe("a red circle", num_inference_steps=2, rng=np.random.default_rng(0), latents=LATENTS, **options)


def trained_adapter(folder, seed, text_encoder=False, alpha=3.0):
    """An adapter file as if trained: A random, B random (B = 0 would be the base model)."""
    parts = tiny_parts()
    rng = np.random.default_rng(seed)
    add_lora(parts.unet, rank=2, alpha=alpha, rng=rng)
    if text_encoder:
        add_lora(parts.text_encoder, rank=2, alpha=alpha, target_modules=TEXT_ENCODER_TARGETS, rng=rng)
    for model in (parts.unet, parts.text_encoder) if text_encoder else (parts.unet,):
        for p in lora_parameters(model)[1::2]:
            p.data[...] = rng.standard_normal(p.shape) * 0.5
    return save_lora_weights(folder, unet=parts.unet, text_encoder=parts.text_encoder if text_encoder else None)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return trained_adapter(root / "a", 1, text_encoder=True), trained_adapter(root / "b", 2)


def test_pipeline_methods(files, tmp_path):
    pipe = tiny_pipeline(tiny_parts())
    base = images(pipe)
    assert pipe.load_lora_weights(files[0]) == "default_0"
    assert pipe.get_list_adapters() == {"unet": ["default_0"], "text_encoder": ["default_0"]}
    with_a = images(pipe)
    assert np.max(np.abs(with_a - base)) > 1e-3
    np.testing.assert_allclose(images(pipe, cross_attention_kwargs={"scale": 0.0}), base, atol=1e-6)
    assert all(layer.scale == 1.0 for _, layer in lora_layers(pipe.unet))  # the call's scale is put back
    half = images(pipe, cross_attention_kwargs={"scale": 0.5})
    pipe.set_adapters("default_0", 0.5)
    np.testing.assert_allclose(images(pipe), half, atol=1e-6)  # weight 0.5 == scale 0.5 for one adapter
    pipe.load_lora_weights(files[1].parent, adapter_name="b")
    # as diffusers: the adapter loaded last is the only active one (of the UNet; the file has no
    # text_encoder keys, so the text encoder keeps its own)
    assert {tuple(layer.active) for _, layer in lora_layers(pipe.unet)} == {("b",)}
    assert {tuple(layer.active) for _, layer in lora_layers(pipe.text_encoder)} == {("default_0",)}
    pipe.set_adapters(["default_0", "b"], [1.0, 0.0])
    np.testing.assert_allclose(images(pipe), with_a, atol=1e-6)
    pipe.set_adapters(["default_0", "b"], [0.7, 0.6])
    both = images(pipe)
    pipe.fuse_lora()
    np.testing.assert_allclose(images(pipe), both, atol=1e-5)
    with pytest.raises(ValueError, match="LoRA adapters"):
        pipe.save_pretrained(tmp_path / "refused")
    pipe.unfuse_lora()
    pipe.unload_lora_weights()
    assert pipe.get_list_adapters() == {}
    np.testing.assert_array_equal(images(pipe), base)  # unfused then unloaded: the base, bit for bit
    with pytest.raises(ValueError, match="scale"):
        images(pipe, cross_attention_kwargs={"scale": float("nan")})
    with pytest.raises(ValueError, match="tinydiff reads only 'scale'"):
        images(pipe, cross_attention_kwargs={"other": 1})
    with pytest.raises(ValueError, match="adapter_names"):
        pipe.set_adapters(["nope"])


def test_cli_sample_with_loras(files, tmp_path, capsys):
    tiny_pipeline(tiny_parts()).save_pretrained(tmp_path / "t2i")
    common = ["sample", "--model", str(tmp_path / "t2i"), "--prompt", "a red circle", "--num", "1",
              "--steps", "2", "--npz"]
    assert main(common + [str(tmp_path / "base.npz"), "--out", str(tmp_path / "base.png")]) == 0
    assert main(common + [str(tmp_path / "one.npz"), "--out", str(tmp_path / "one.png"),
                          "--lora", f"{files[0]}:0.8", "--lora", str(files[1].parent)]) == 0
    assert "LoRA pytorch_lora_weights.safetensors x0.8" in capsys.readouterr().out
    base, one = (np.load(tmp_path / f"{n}.npz")["samples"] for n in ("base", "one"))
    assert np.max(np.abs(base - one)) > 1e-3
    with pytest.raises(SystemExit, match="--lora: .* does not exist"):
        main(common + [str(tmp_path / "x.npz"), "--out", str(tmp_path / "x.png"), "--lora", str(tmp_path / "no")])
    with pytest.raises(SystemExit):  # argparse: WEIGHT must be a number
        main(common + [str(tmp_path / "y.npz"), "--out", str(tmp_path / "y.png"), "--lora", f"{files[0]}:lots"])
    assert "FILE:WEIGHT" in capsys.readouterr().err


class Wrapped(Module):
    """A model whose forward returns one array, for gradcheck: the text encoder's last hidden
    state, or the UNet's output."""

    def __init__(self, model, text):
        super().__init__()
        self.model, self.text = model, text

    def forward(self, *inputs):
        out = self.model(*inputs)
        return out.last_hidden_state if self.text else out

    def backward(self, grad_out):
        if self.text:
            self.model.backward(grad_out)
            return (None,)  # the token ids have no gradient
        d_sample, d_context = self.model.backward(grad_out)
        return d_sample, None, d_context  # the timestep has none


def test_adapted_text_encoder_and_unet_gradients_by_finite_differences():
    """Only the adapters train (the base is frozen); their gradients through whole models."""
    parts, rng = tiny_parts(), np.random.default_rng(3)
    add_lora(parts.text_encoder, rank=2, alpha=3.0, target_modules=TEXT_ENCODER_TARGETS, rng=rng)
    add_lora(parts.unet, rank=2, alpha=3.0, target_modules=("to_k", "conv1"), rng=rng)
    for model in (parts.text_encoder, parts.unet):
        for p in lora_parameters(model)[1::2]:
            p.data[...] = rng.standard_normal(p.shape)
    ids = parts.tokenizer(["a red circle"])
    report = gradcheck(Wrapped(parts.text_encoder, True), (ids,), rng, max_elements=12)
    assert len(report) == len(lora_parameters(parts.text_encoder))  # the frozen base is not there
    context = rng.standard_normal((1, 5, 8))
    report = gradcheck(Wrapped(parts.unet, False), (rng.standard_normal((1, 2, 4, 4)), np.array([9]), context),
                       rng, max_elements=4)
    assert len(report) == 2 + len(lora_parameters(parts.unet))
