"""tinydiff.kernels.threads.blas: the BLAS set to one thread inside single_threaded(), restored after."""

import threading

import numpy as np
import pytest

from tinydiff.kernels import conv2d_forward
from tinydiff.kernels.threads import blas

pytestmark = pytest.mark.skipif(not blas.available(), reason="threadpoolctl finds no BLAS whose thread count tinydiff can set")


def test_single_threaded_sets_one_thread_and_restores_the_count():
    before = blas.num_threads()
    with blas.single_threaded():
        assert blas.num_threads() == 1
    assert blas.num_threads() == before


def test_the_count_is_restored_after_an_exception():
    before = blas.num_threads()
    with pytest.raises(RuntimeError):
        with blas.single_threaded():
            raise RuntimeError("inside")
    assert blas.num_threads() == before


def test_a_convolution_leaves_the_blas_thread_count_as_it_found_it():
    before = blas.num_threads()
    x = np.ones((4, 3, 6, 6), np.float32)
    conv2d_forward(x, np.ones((2, 3, 3, 3), np.float32), None, 1, 1)
    assert blas.num_threads() == before
    assert "OpenBLAS" in blas.describe()


def test_a_block_inside_a_block_keeps_one_thread_until_the_outer_one_ends():
    before = blas.num_threads()
    with blas.single_threaded():
        with blas.single_threaded():
            assert blas.num_threads() == 1
        assert blas.num_threads() == 1
    assert blas.num_threads() == before


def test_another_thread_can_set_the_count_after_this_one_did():
    with blas.single_threaded():
        pass
    seen = []

    def other():
        with blas.single_threaded():
            seen.append(blas.num_threads())
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [1]
