"""The layers DCGAN needs (ConvTranspose2d, BatchNorm2d, ReLU, LeakyReLU, Tanh): hand-written backward
against float64 central differences, on hypothesis shapes; ConvTranspose2d against the gradient of
Conv2d it is defined as; BatchNorm2d's running statistics and eval mode; PyTorch's default init."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff import kernels
from tinydiff.nn import BatchNorm2d, ConvTranspose2d, LeakyReLU, ReLU, Tanh
from tinydiff.nn.batch_norm import buffers_state, load_buffers_state
from tinydiff.nn.conv_transpose import conv_transpose2d_forward
from tinydiff.nn.gradcheck import gradcheck

seeds = st.integers(0, 2**32 - 1)


@given(seed=seeds, batch=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
       kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2),
       h=st.integers(1, 4), w=st.integers(1, 4), bias=st.booleans(), data=st.data())
def test_conv_transpose2d_gradcheck(seed, batch, c_in, c_out, kh, kw, stride, padding, h, w, bias, data):
    output_padding = data.draw(st.integers(0, stride - 1))
    padding = min(padding, (kh - 1) // 2, (kw - 1) // 2)  # something is left after cropping
    rng = np.random.default_rng(seed)
    layer = ConvTranspose2d(c_in, c_out, (kh, kw), stride, padding, output_padding, bias=bias, rng=rng)
    x = rng.standard_normal((batch, c_in, h, w))
    assert layer.to(np.float64)(x).shape[2:] == layer.output_size(h, w)
    gradcheck(layer, (x,), rng)


@given(seed=seeds, c_in=st.integers(1, 3), c_out=st.integers(1, 3), k=st.integers(1, 4),
       stride=st.integers(1, 3), padding=st.integers(0, 1), size=st.integers(3, 7))
def test_conv_transpose2d_is_the_gradient_of_conv2d(seed, c_in, c_out, k, stride, padding, size):
    """Conv2d maps x (B, C_out, size, size) to dy; its input gradient for an upstream dy is the
    transposed convolution of dy with the same weight (C_out, C_in, k, k), with output_padding
    choosing among the sizes a strided Conv2d maps to the same output size."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_out, size, size))
    w = rng.standard_normal((c_in, c_out, k, k))  # Conv2d: (out=c_in, in=c_out); transposed: (in=c_in, out=c_out)
    y = kernels.conv2d_forward_ref(x, w, None, stride, padding)
    dy = rng.standard_normal(y.shape)
    dx, _, _ = kernels.conv2d_backward_ref(dy, x, w, stride, padding)
    output_padding = size - ((y.shape[2] - 1) * stride - 2 * padding + k)
    assert 0 <= output_padding < stride
    out, _ = conv_transpose2d_forward(dy, w, None, stride, padding, output_padding)
    np.testing.assert_allclose(out, dx, rtol=1e-12, atol=1e-12)


@given(seed=seeds, batch=st.integers(2, 3), c=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(1, 3),
       affine=st.booleans())
def test_batch_norm2d_gradcheck(seed, batch, c, h, w, affine):
    rng = np.random.default_rng(seed)
    layer = BatchNorm2d(c, affine=affine)
    if affine:
        layer.weight.data[:] = rng.standard_normal(c)
        layer.bias.data[:] = rng.standard_normal(c)
    gradcheck(layer, (rng.standard_normal((batch, c, h, w)) * 2 + 1,), rng)


@pytest.mark.parametrize("make", [ReLU, LeakyReLU, lambda: LeakyReLU(0.2), Tanh], ids=["relu", "leaky", "leaky02", "tanh"])
@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_elementwise_gradcheck(make, seed, shape):
    rng = np.random.default_rng(seed)
    x = 3 * rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink at 0, where central differences straddle it
    gradcheck(make(), (x,), rng)


def test_batch_norm2d_running_statistics_and_eval():
    rng = np.random.default_rng(0)
    layer = BatchNorm2d(3, momentum=0.25).to(np.float64)
    x = rng.standard_normal((4, 3, 2, 5)) * 3 + 2
    layer(x)
    n = 4 * 2 * 5
    np.testing.assert_allclose(layer.running_mean, 0.25 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    unbiased = x.var(axis=(0, 2, 3)) * n / (n - 1)  # Ioffe & Szegedy 2015, Algorithm 2, step 10
    np.testing.assert_allclose(layer.running_var, 0.75 + 0.25 * unbiased, rtol=1e-12)
    layer.eval()
    expected = (x - layer.running_mean[:, None, None]) / np.sqrt(layer.running_var[:, None, None] + 1e-5)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    with pytest.raises(RuntimeError, match="no saved forward"):
        layer.backward(x)
    cumulative = BatchNorm2d(3, momentum=None).to(np.float64)
    batches = [rng.standard_normal((2, 3, 2, 2)) + k for k in range(3)]
    for b in batches:
        cumulative(b)
    np.testing.assert_allclose(cumulative.running_mean, np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0))


def test_batch_norm2d_buffers_round_trip():
    rng = np.random.default_rng(1)
    a, b = BatchNorm2d(2), BatchNorm2d(2)
    a(rng.standard_normal((3, 2, 2, 2)).astype(np.float32))
    assert load_buffers_state(b, buffers_state(a)) == []
    np.testing.assert_array_equal(b.running_var, a.running_var)
    assert b.num_batches_tracked == 1
    assert load_buffers_state(b, {}) == ["running_mean", "running_var", "num_batches_tracked"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="output_padding"):
        ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="crops away"):
        ConvTranspose2d(1, 1, 1, padding=1)(np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(ValueError, match="more than 1 value"):
        BatchNorm2d(2)(np.zeros((1, 2, 1, 1), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(2, momentum=1.5)
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(-1.0)


def test_default_init_bounds():
    """PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_out * kH * kW for a
    transposed convolution (its weight's dimension 1 is C_out). A wrong fan_in (C_in's) would
    give a bound 2x off here."""
    layer = ConvTranspose2d(64, 16, 4, rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(16 * 16)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.99 * bound
    np.testing.assert_allclose(layer.weight.data.std(), bound / np.sqrt(3), rtol=0.02)
    assert np.abs(layer.bias.data).max() <= bound
    norm = BatchNorm2d(5)
    assert (norm.weight.data == 1).all() and (norm.bias.data == 0).all()
    assert (norm.running_mean == 0).all() and (norm.running_var == 1).all()
