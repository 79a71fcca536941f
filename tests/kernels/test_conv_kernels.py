"""The Numba conv2d kernels equal the NumPy references on hypothesis-drawn problems."""

import numpy as np
import pytest
from hypothesis import given, settings

from kernel_checks import RTOL, assert_close, conv_arrays, conv_cases
from tinydiff.kernels import (conv2d_backward, conv2d_backward_input, conv2d_backward_input_ref,
                              conv2d_backward_ref, conv2d_backward_weight,
                              conv2d_backward_weight_ref, conv2d_forward,
                              conv2d_forward_ref)

DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(case=conv_cases())
def test_conv_kernels_match_reference(case, dtype):
    x, w, b, dy = conv_arrays(case, dtype)
    s, p = case["stride"], case["padding"]
    rtol = RTOL[dtype]
    assert_close(conv2d_forward(x, w, b, s, p), conv2d_forward_ref(x, w, b, s, p), rtol, "y")
    assert_close(conv2d_backward_input(dy, w, x.shape[2:], s, p),
                 conv2d_backward_input_ref(dy, w, x.shape[2:], s, p), rtol, "dx")
    dw, db = conv2d_backward_weight(dy, x, w.shape[2:], s, p)
    dw_ref, db_ref = conv2d_backward_weight_ref(dy, x, w.shape[2:], s, p)
    assert_close(dw, dw_ref, rtol, "dw")
    assert_close(db, db_ref, rtol, "db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [
    ((1, 1), 1, 0),   # pointwise: the path that skips im2col
    ((3, 3), 1, 1),   # the UNet's workhorse
    ((3, 3), 2, 1),   # Downsample2x
    ((2, 4), 2, 0),   # even, non-square kernel, no padding
    ((5, 5), 1, 3),   # padding wider than half the kernel
])
def test_conv_kernels_match_reference_on_named_layers(kernel, stride, padding, dtype):
    case = dict(batch=2, c_in=6, c_out=5, hw=(9, 8), kernel=kernel, stride=stride,
                padding=padding, bias=True, seed=11)
    x, w, b, dy = conv_arrays(case, dtype)
    rtol = RTOL[dtype]
    assert_close(conv2d_forward(x, w, b, stride, padding),
                 conv2d_forward_ref(x, w, b, stride, padding), rtol, "y")
    assert_close(conv2d_backward_input(dy, w, (9, 8), stride, padding),
                 conv2d_backward_input_ref(dy, w, (9, 8), stride, padding), rtol, "dx")
    for got, want, name in zip(conv2d_backward_weight(dy, x, kernel, stride, padding),
                               conv2d_backward_weight_ref(dy, x, kernel, stride, padding),
                               ("dw", "db")):
        assert_close(got, want, rtol, name)
    # both gradients in one call, as the layers take them
    for got, want, name in zip(conv2d_backward(dy, x, w, stride, padding),
                               conv2d_backward_ref(dy, x, w, stride, padding), ("dx", "dw", "db")):
        assert_close(got, want, rtol, name)


def test_conv_kernels_accept_non_contiguous_input():
    case = dict(batch=2, c_in=3, c_out=4, hw=(7, 6), kernel=(3, 3), stride=1, padding=1,
                bias=False, seed=2)
    x, w, _, dy = conv_arrays(case, np.float64)
    x_t = np.asfortranarray(x)
    assert_close(conv2d_forward(x_t, w, None, 1, 1), conv2d_forward_ref(x, w, None, 1, 1),
                 1e-10, "y")
    assert_close(conv2d_backward_weight(dy[:, ::-1][:, ::-1], x_t, (3, 3), 1, 1)[0],
                 conv2d_backward_weight_ref(dy, x, (3, 3), 1, 1)[0], 1e-10, "dw")


def use_way(monkeypatch, way):
    """Make conv2d_* take the split way (the batch over threads) or the serial way."""
    from tinydiff.kernels.conv import batch
    if way == "serial":
        monkeypatch.setattr(batch, "split_threads", lambda: 1)
    elif batch.split_threads() < 2:
        pytest.skip("the split way needs OpenBLAS under NumPy and 2 or more Numba threads")


@pytest.mark.parametrize("way", ["split", "serial"])
@pytest.mark.parametrize("dw_per_image_max", [0, 10**9])  # both ways of summing dW
@pytest.mark.parametrize("chunk_bytes", [1, 2 * (6 * 3 * 3) * (7 * 6) * 8])  # 1 or 2 images
def test_conv_kernels_split_the_batch_into_chunks_correctly(monkeypatch, chunk_bytes,
                                                            dw_per_image_max, way):
    # large batches are processed a few images at a time; a tiny budget forces chunks of one or
    # two images, with a shorter chunk left over at the end of each thread's part
    from tinydiff.kernels.conv import batch, im2col
    use_way(monkeypatch, way)
    monkeypatch.setattr(batch, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(batch, "SPLIT_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(im2col, "PER_IMAGE_DW_MAX", dw_per_image_max)
    case = dict(batch=5, c_in=6, c_out=4, hw=(7, 6), kernel=(3, 3), stride=1, padding=1,
                bias=True, seed=8)
    x, w, b, dy = conv_arrays(case, np.float64)
    assert_close(conv2d_forward(x, w, b, 1, 1), conv2d_forward_ref(x, w, b, 1, 1), 1e-10, "y")
    assert_close(conv2d_backward_input(dy, w, (7, 6), 1, 1),
                 conv2d_backward_input_ref(dy, w, (7, 6), 1, 1), 1e-10, "dx")
    for got, want, name in zip(conv2d_backward_weight(dy, x, (3, 3), 1, 1),
                               conv2d_backward_weight_ref(dy, x, (3, 3), 1, 1), ("dw", "db")):
        assert_close(got, want, 1e-10, name)


@pytest.mark.parametrize("k,padding,winograd", [
    (3, 1, True),    # Winograd
    (3, 1, False),   # im2col
    (1, 0, False),   # pointwise, without either
])
def test_the_split_way_matches_the_serial_way_and_is_deterministic(monkeypatch, k, padding,
                                                                   winograd):
    from tinydiff.kernels.conv import dispatch
    monkeypatch.setattr(dispatch, "_winograd_on", winograd)
    case = dict(batch=7, c_in=8, c_out=16, hw=(8, 8), kernel=(k, k), stride=1, padding=padding,
                bias=True, seed=3)
    x, w, b, dy = conv_arrays(case, np.float32)

    def run():
        return (conv2d_forward(x, w, b, 1, padding), conv2d_backward_input(dy, w, (8, 8), 1, padding),
                conv2d_backward_weight(dy, x, (k, k), 1, padding)[0])
    with monkeypatch.context() as m:
        use_way(m, "split")
        split, again = run(), run()
    with monkeypatch.context() as m:
        use_way(m, "serial")
        serial = run()
    for a, b_, c, name in zip(split, again, serial, ("y", "dx", "dw")):
        np.testing.assert_array_equal(a, b_, err_msg=f"{name}: the split way is not deterministic")
        assert_close(a, c, RTOL[np.float32], name)
