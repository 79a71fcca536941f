"""The Module contract: names, state dicts, train/eval, dtypes, and clear errors."""

import numpy as np
import pytest

from tinydiff.nn import (
    GELU, Conv2d, Dropout, Embedding, GroupNorm, LayerNorm, Linear, Module, MultiHeadAttention,
    Parameter, Sequential, SiLU, SinusoidalTimestepEmbedding, Upsample2x, Downsample2x,
)


def small_model(rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    return Sequential([
        Conv2d(3, 4, 3, padding=1, rng=rng), GroupNorm(2, 4), SiLU(),
        Downsample2x(4, rng=rng), Upsample2x(4, use_conv=True, rng=rng),
    ])


def test_named_parameters_follow_pytorch_names_and_order():
    names = [name for name, _ in small_model().named_parameters()]
    assert names == [
        "0.weight", "0.bias", "1.weight", "1.bias",
        "3.conv.weight", "3.conv.bias", "4.conv.weight", "4.conv.bias",
    ]
    mha = MultiHeadAttention(8, 2, context_dim=5)
    assert [n for n, _ in mha.named_parameters()] == [
        "to_q.weight", "to_q.bias", "to_k.weight", "to_k.bias", "to_v.weight", "to_v.bias",
        "to_out.0.weight", "to_out.0.bias",
    ]
    assert mha.to_k.weight.shape == (8, 5)  # (out, in), as in PyTorch


def test_parameterless_modules_answer_named_parameters():
    for module in (SiLU(), GELU(), Dropout(0.1), Upsample2x(), SinusoidalTimestepEmbedding(8)):
        assert list(module.named_parameters()) == []
        assert module.state_dict() == {}


def test_bias_false_means_no_bias_parameter():
    assert [n for n, _ in Conv2d(2, 3, 3, bias=False).named_parameters()] == ["weight"]
    assert [n for n, _ in Linear(2, 3, bias=False).named_parameters()] == ["weight"]


def test_state_dict_round_trip_reproduces_outputs():
    rng = np.random.default_rng(1)
    a, b = small_model(np.random.default_rng(2)), small_model(np.random.default_rng(3))
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert not np.allclose(a(x), b(x))
    state = a.state_dict()
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x), b(x))
    state["0.weight"][...] = 0  # a state dict is a copy, not a view of the parameters
    assert np.any(a[0].weight.data != 0)


def test_load_state_dict_names_missing_unexpected_and_misshaped_keys():
    model = small_model()
    state = model.state_dict()
    del state["1.bias"]
    state["extra.weight"] = np.zeros(3)
    state["0.weight"] = np.zeros((4, 3, 5, 5))
    with pytest.raises(ValueError) as err:
        model.load_state_dict(state)
    message = str(err.value)
    assert "missing keys: ['1.bias']" in message
    assert "unexpected keys: ['extra.weight']" in message
    assert "0.weight: expected (4, 3, 3, 3), got (4, 3, 5, 5)" in message
    del state["0.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["0.weight", "1.bias"] and unexpected == ["extra.weight"]


def test_eval_mode_holds_no_activations_and_train_mode_does():
    model = small_model()
    x = np.ones((1, 3, 8, 8), dtype=np.float32)
    model.train()
    model(x)
    assert any(m._cache is not None for m in model.modules())
    model.eval()
    model(x)
    assert all(m._cache is None for m in model.modules())
    with pytest.raises(RuntimeError, match="training mode"):
        model.backward(np.ones((1, 4, 8, 8), dtype=np.float32))


def test_backward_releases_the_cache():
    layer = Linear(2, 2)
    x = np.ones((1, 2), dtype=np.float32)
    layer(x)
    layer.backward(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(RuntimeError, match="no saved forward pass"):
        layer.backward(np.ones((1, 2), dtype=np.float32))


def test_gradients_accumulate_until_zero_grad():
    layer = Linear(3, 2)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    dy = np.ones((2, 2), dtype=np.float32)
    layer(x)
    layer.backward(dy)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any()


def test_assigning_into_parameter_data_changes_the_layer():
    layer = Linear(2, 1)
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    layer.weight.data[...] = [[3.0, 4.0]]
    layer.bias.data[...] = 0.5
    np.testing.assert_allclose(layer(x), [[11.5]])


def test_to_casts_parameters_and_grads_and_dtype_mismatch_is_a_type_error():
    model = small_model()
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    model.to(np.float64)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    y = model(np.ones((1, 3, 4, 4)))
    assert y.dtype == np.float64
    with pytest.raises(TypeError, match="float64"):
        model(np.ones((1, 3, 4, 4), dtype=np.float32))
    temb = SinusoidalTimestepEmbedding(6).to(np.float64)
    assert temb(np.array([1, 2])).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        model.to(np.int32)


def test_float32_layers_stay_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    for layer in (Conv2d(4, 2, 3, rng=rng), GroupNorm(2, 4), SiLU(), GELU(), GELU("tanh"),
                  LayerNorm(6), Upsample2x(4, use_conv=True), Downsample2x(4)):
        y = layer(x)
        assert y.dtype == np.float32, type(layer).__name__
        assert layer.backward(np.ones_like(y)).dtype == np.float32, type(layer).__name__


def test_dropout_masks_scales_and_is_identity_in_eval():
    rng = np.random.default_rng(0)
    layer = Dropout(0.25, rng=rng)
    x = np.ones((200, 50), dtype=np.float32)
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    dx = layer.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx, 2.0 * y)  # same mask, same scale
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)
    same_seed = Dropout(0.25, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same_seed(x), y)


def test_sinusoidal_embedding_matches_its_definition():
    t = np.array([0.0, 1.0, 37.0])
    emb = SinusoidalTimestepEmbedding(8, flip_sin_to_cos=True, downscale_freq_shift=0.0).to(np.float64)(t)
    freqs = np.exp(-np.log(10000.0) * np.arange(4) / 4)
    expected = np.concatenate([np.cos(t[:, None] * freqs), np.sin(t[:, None] * freqs)], axis=1)
    np.testing.assert_allclose(emb, expected, rtol=1e-12)
    odd = SinusoidalTimestepEmbedding(7)(t)
    assert odd.shape == (3, 7) and np.all(odd[:, -1] == 0)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: Conv2d(3, 4, 3)(np.ones((3, 8, 8), np.float32)), ValueError, "x: expected a 4-D array"),
        (lambda: Conv2d(3, 4, 3)(np.ones((1, 2, 8, 8), np.float32)), ValueError, "in_channels=3"),
        (lambda: Conv2d(3, 4, 3)(np.ones((1, 3, 8, 8), np.int64)), TypeError, "float32 or float64"),
        (lambda: Conv2d(1, 1, 5, padding=1)(np.ones((1, 1, 2, 2), np.float32)), ValueError, "larger than the padded input"),
        (lambda: Conv2d(1, 1, 3, stride=0), ValueError, "stride"),
        (lambda: Conv2d(1, 1, 3, padding=-1), ValueError, "padding"),
        (lambda: Linear(3, 2)(np.ones((4, 2), np.float32)), ValueError, "in_features=3"),
        (lambda: Linear(3, 2)([1.0, 2.0, 3.0]), TypeError, "x: expected a numpy array"),
        (lambda: GroupNorm(3, 4), ValueError, "divisible"),
        (lambda: GroupNorm(2, 4)(np.ones((1, 6, 2, 2), np.float32)), ValueError, "num_channels=4"),
        (lambda: LayerNorm(5)(np.ones((2, 4), np.float32)), ValueError, "normalized_shape"),
        (lambda: Embedding(4, 2)(np.array([4])), ValueError, r"\[0, 4\)"),
        (lambda: Embedding(4, 2)(np.array([1.0])), TypeError, "integers"),
        (lambda: MultiHeadAttention(6, 4), ValueError, "divisible"),
        (lambda: MultiHeadAttention(4, 2)(np.ones((1, 3, 4), np.float32), np.ones((1, 2, 4), np.float32)), ValueError, "context"),
        (lambda: Dropout(1.0), ValueError, r"\[0, 1\)"),
        (lambda: GELU("fast"), ValueError, "approximate"),
        (lambda: Linear(2, 2, rng=0), TypeError, "rng"),
        (lambda: Parameter(np.arange(3)), TypeError, "float32 or float64"),
        (lambda: Module().load_state_dict([1]), TypeError, "mapping"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error, match=words):
        call()
