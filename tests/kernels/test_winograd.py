"""Winograd F(2x2, 3x3): each fast transform equals the paper's, as the reference writes it
(tinydiff.kernels.reference.winograd), each backward transform is the adjoint of its forward one,
and the whole convolution, fast or reference, equals the direct convolution's reference."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel_checks import RTOL, assert_close, conv_arrays
from tinydiff.kernels import (conv, conv2d_backward, conv2d_backward_input,
                              conv2d_backward_input_ref, conv2d_backward_ref,
                              conv2d_backward_weight, conv2d_backward_weight_ref, conv2d_forward,
                              conv2d_forward_ref)
from tinydiff.kernels.conv import batch, dispatch
from tinydiff.kernels.conv import winograd as winograd_conv
from tinydiff.kernels.conv import winograd_transforms as winograd
from tinydiff.kernels.reference import (winograd_conv2d_backward_ref, winograd_conv2d_forward_ref,
                                        winograd_filter_transform_ref,
                                        winograd_input_transform_ref,
                                        winograd_output_transform_ref, winograd_tiles_ref)

def columns(a):
    """(B, R, th, tw, 16) -> (16, R, th*tw*B): winograd.py's layout, tile (i, j) of image b in
    column (i*tw + j)*B + b."""
    n_b, n_r, th, tw = a.shape[:4]
    return np.ascontiguousarray(a.transpose(4, 1, 2, 3, 0).reshape(16, n_r, th * tw * n_b))


SHAPES = [(3, 2, 4, 4), (2, 3, 5, 7), (1, 2, 1, 1), (4, 1, 6, 3), (2, 2, 2, 9)]


@pytest.mark.parametrize("shape", SHAPES)
def test_input_transform_is_bt_d_b_on_every_tile(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    th, tw = winograd.tiles(shape[2:])
    v = np.empty((16, shape[1], th * tw * shape[0]))
    winograd.input_forward(x, 0, shape[0], v)
    want = winograd_input_transform_ref(winograd_tiles_ref(x))  # (B, C, th, tw, 4, 4)
    np.testing.assert_allclose(v, columns(want.reshape(want.shape[:4] + (16,))), atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_output_transform_is_at_m_a_on_every_tile_plus_the_bias(shape):
    rng = np.random.default_rng(1)
    n_b, n_o, h, w = shape
    th, tw = winograd.tiles((h, w))
    m, bias = rng.standard_normal((16, n_o, th * tw * n_b)), rng.standard_normal(n_o)
    y = np.empty(shape)
    winograd.output_forward(m, bias, 0, n_b, y)
    # (16, O, th*tw*B) -> (4, 4, O, th, tw, B) -> (B, O, th, tw, 4, 4)
    m_tiles = m.reshape(4, 4, n_o, th, tw, n_b).transpose(5, 2, 3, 4, 0, 1)
    blocks = winograd_output_transform_ref(m_tiles)  # (B, O, th, tw, 2, 2)
    want = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n_b, n_o, 2 * th, 2 * tw)[:, :, :h, :w]
    np.testing.assert_allclose(y, want + bias[:, None, None], atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_output_adjoint_adds_the_bias_gradient(shape):
    dy = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    th, tw = winograd.tiles(shape[2:])
    dm = np.empty((16, shape[1], th * tw * shape[0]), dtype=np.float32)
    db = np.full(shape[1], 0.5)
    winograd.output_adjoint(dy, 0, shape[0], dm, db)
    np.testing.assert_allclose(db, 0.5 + dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-12)


def test_weight_transform_is_g_g_gt():
    w = np.random.default_rng(2).standard_normal((5, 3, 3, 3))
    # (O, C, 4, 4) -> (4, 4, O, C) -> (16, O, C)
    want = winograd_filter_transform_ref(w).transpose(2, 3, 0, 1).reshape(16, 5, 3)
    np.testing.assert_allclose(winograd.weights(w), want, atol=1e-12)


def inner(a, b):
    return float(np.sum(a * b))


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_transforms_are_the_adjoints_of_the_forward_ones(shape):
    # <T x, v> = <x, T* v> for random x and v: the dot-product test of a hand-written adjoint
    rng = np.random.default_rng(3)
    n_b, n_c, h, w = shape
    th, tw = winograd.tiles((h, w))
    x, dv = rng.standard_normal(shape), rng.standard_normal((16, n_c, th * tw * n_b))
    v, dx = np.empty_like(dv), np.empty_like(x)
    winograd.input_forward(x, 0, n_b, v)
    winograd.input_adjoint(dv, 0, n_b, dx)
    assert inner(v, dv) == pytest.approx(inner(x, dx), rel=1e-12)

    m, dy = rng.standard_normal((16, n_c, th * tw * n_b)), rng.standard_normal(shape)
    y, dm = np.empty_like(dy), np.empty_like(m)
    winograd.output_forward(m, np.zeros(n_c), 0, n_b, y)
    winograd.output_adjoint(dy, 0, n_b, dm, np.zeros(n_c))
    assert inner(y, dy) == pytest.approx(inner(m, dm), rel=1e-12)

    g, du = rng.standard_normal((4, n_c, 3, 3)), rng.standard_normal((16, 4, n_c))
    assert inner(winograd.weights(g), du) == pytest.approx(
        inner(g, winograd.weights_adjoint(du)), rel=1e-12)


def test_transforms_touch_only_their_images():
    # a chunk of images first..first+nb-1 reads and writes those images and no others
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 2, 4, 6))
    th, tw = winograd.tiles((4, 6))
    part, whole = np.empty((16, 2, th * tw * 2)), np.empty((16, 2, th * tw * 2))
    winograd.input_forward(x, 2, 2, part)
    winograd.input_forward(np.ascontiguousarray(x[2:4]), 0, 2, whole)
    np.testing.assert_array_equal(part, whole)
    dx = np.full_like(x, 7.0)
    winograd.input_adjoint(part, 2, 2, dx)
    assert np.all(dx[:2] == 7.0) and np.all(dx[4:] == 7.0) and not np.all(dx[2:4] == 7.0)


@contextlib.contextmanager
def winograd_for_all_channels():
    """Winograd on, down to 1 channel (the default leaves few channels to im2col)."""
    before = dispatch.WINOGRAD_MIN_CHANNELS
    dispatch.WINOGRAD_MIN_CHANNELS = 1
    try:
        with conv.winograd_enabled(True):
            yield
    finally:
        dispatch.WINOGRAD_MIN_CHANNELS = before


def check_against_reference(case, dtype, rtol):
    x, w, b, dy = conv_arrays(case, dtype)
    hw = case["hw"]
    assert_close(conv2d_forward(x, w, b, 1, 1), conv2d_forward_ref(x, w, b, 1, 1), rtol, "y")
    assert_close(conv2d_backward_input(dy, w, hw, 1, 1),
                 conv2d_backward_input_ref(dy, w, hw, 1, 1), rtol, "dx")
    for got, want, name in zip(conv2d_backward_weight(dy, x, (3, 3), 1, 1),
                               conv2d_backward_weight_ref(dy, x, (3, 3), 1, 1), ("dw", "db")):
        assert_close(got, want, rtol, name)
    for got, want, name in zip(conv2d_backward(dy, x, w, 1, 1),
                               conv2d_backward_ref(dy, x, w, 1, 1), ("dx", "dw", "db")):
        assert_close(got, want, rtol, name)


@settings(max_examples=15, deadline=None)
@given(batch=st.sampled_from([1, 2, 3]), c_in=st.integers(1, 4), c_out=st.integers(1, 4),
       h=st.integers(1, 7), w=st.integers(1, 7), seed=st.integers(0, 2**31 - 1))
def test_the_winograd_reference_equals_the_direct_convolution(batch, c_in, c_out, h, w, seed):
    # eq. 8 and its adjoints, written in einsum, against the tap-by-tap definition
    case = dict(batch=batch, c_in=c_in, c_out=c_out, hw=(h, w), kernel=(3, 3), stride=1,
                padding=1, bias=True, seed=seed)
    x, w_, b, dy = conv_arrays(case, np.float64)
    assert_close(winograd_conv2d_forward_ref(x, w_, b), conv2d_forward_ref(x, w_, b, 1, 1),
                 1e-12, "y")
    for got, want, name in zip(winograd_conv2d_backward_ref(dy, x, w_),
                               conv2d_backward_ref(dy, x, w_, 1, 1), ("dx", "dw", "db")):
        assert_close(got, want, 1e-12, name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=25, deadline=None)
@given(batch=st.sampled_from([1, 2, 3, 9]), c_in=st.integers(1, 5), c_out=st.integers(1, 5),
       h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_winograd_convolution_matches_reference(batch, c_in, c_out, h, w, seed, dtype):
    case = dict(batch=batch, c_in=c_in, c_out=c_out, hw=(h, w), kernel=(3, 3), stride=1,
                padding=1, bias=True, seed=seed)
    with winograd_for_all_channels():
        check_against_reference(case, dtype, RTOL[dtype])


@pytest.mark.parametrize("enabled", [True, False])
def test_unet_sized_convolutions_take_the_chosen_algorithm_and_match(monkeypatch, enabled):
    # 16 channels at 8x8: Winograd by default, im2col when disabled; both equal the reference
    calls = []
    monkeypatch.setattr(winograd, "input_forward",
                        lambda *a, _f=winograd.input_forward: calls.append(1) or _f(*a))
    case = dict(batch=6, c_in=16, c_out=24, hw=(8, 8), kernel=(3, 3), stride=1, padding=1,
                bias=True, seed=5)
    with conv.winograd_enabled(enabled):
        check_against_reference(case, np.float32, RTOL[np.float32])
    assert bool(calls) == enabled


@pytest.mark.parametrize("min_images", [1, 2])
def test_winograd_splits_the_batch_into_chunks_correctly(monkeypatch, min_images):
    # a tiny chunk budget: chunks of min_images, a shorter one left over at the end
    monkeypatch.setattr(batch, "CHUNK_BYTES", 1)
    monkeypatch.setattr(batch, "SPLIT_CHUNK_BYTES", 1)
    monkeypatch.setattr(winograd_conv, "MIN_IMAGES", min_images)
    case = dict(batch=7, c_in=8, c_out=9, hw=(5, 6), kernel=(3, 3), stride=1, padding=1,
                bias=True, seed=6)
    with conv.winograd_enabled(True):
        check_against_reference(case, np.float64, 1e-10)


def test_winograd_enabled_restores_the_setting_after_an_error():
    with pytest.raises(RuntimeError):
        with conv.winograd_enabled(False):
            assert not dispatch._winograd_on
            raise RuntimeError("inside")
    assert dispatch._winograd_on


def test_a_conv_layer_transforms_its_filters_once_per_forward_and_backward(monkeypatch):
    from tinydiff.nn import Conv2d
    layer = Conv2d(8, 8, 3, padding=1, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 8, 6, 6)).astype(np.float32)
    want_y = conv2d_forward_ref(x, layer.weight.data, layer.bias.data, 1, 1)
    want = conv2d_backward_ref(np.ones_like(want_y), x, layer.weight.data, 1, 1)
    calls = []
    transform = winograd.weights
    monkeypatch.setattr(winograd, "weights", lambda w: calls.append(w.shape) or transform(w))
    with conv.winograd_enabled(True):
        assert_close(layer(x), want_y, 1e-5, "y")
        dx = layer.backward(np.ones_like(want_y))
    assert calls == [(8, 8, 3, 3)]  # backward reused forward's U
    assert_close(dx, want[0], 1e-5, "dx")
    assert_close(layer.weight.grad, want[1], 1e-5, "dw")
