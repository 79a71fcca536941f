"""The Numba nearest-neighbour upsampling kernels equal their NumPy references to the bit, and
the references are what they say: each pixel a 2x2 block forward, the block's sum backward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.kernels import (upsample_nearest2x, upsample_nearest2x_backward,
                              upsample_nearest2x_backward_ref, upsample_nearest2x_ref)


@settings(max_examples=30, deadline=None)
@given(batch=st.sampled_from([1, 2, 3, 64]), channels=st.integers(1, 5), h=st.integers(1, 9),
       w=st.integers(1, 9), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_kernels_equal_references_to_the_bit(batch, channels, h, w, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, h, w)).astype(dtype)
    dy = rng.standard_normal((batch, channels, 2 * h, 2 * w)).astype(dtype)
    y, dx = upsample_nearest2x(x), upsample_nearest2x_backward(dy)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(y, upsample_nearest2x_ref(x))
    np.testing.assert_array_equal(dx, upsample_nearest2x_backward_ref(dy))


def test_reference_copies_each_pixel_into_a_block_and_sums_blocks_back():
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    y = upsample_nearest2x_ref(x)
    np.testing.assert_array_equal(y[0, 0], np.kron(x[0, 0], np.ones((2, 2))))
    dy = np.arange(24.0).reshape(1, 1, 4, 6)
    want = dy[0, 0].reshape(2, 2, 3, 2).sum(axis=(1, 3))
    np.testing.assert_array_equal(upsample_nearest2x_backward_ref(dy)[0, 0], want)
    # backward is the adjoint of forward: <up(x), dy> = <x, up^T(dy)>
    assert np.vdot(y, dy) == pytest.approx(np.vdot(x, upsample_nearest2x_backward_ref(dy)))


def test_kernels_take_non_contiguous_input():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)[:, ::2]
    np.testing.assert_array_equal(upsample_nearest2x(x), upsample_nearest2x_ref(x))
    dy = rng.standard_normal((3, 2, 10, 12)).astype(np.float32).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(upsample_nearest2x_backward(dy), upsample_nearest2x_backward_ref(dy))


def test_backward_names_an_odd_gradient_shape():
    with pytest.raises(ValueError, match="even height and width"):
        upsample_nearest2x_backward(np.zeros((1, 1, 3, 4), dtype=np.float32))
