"""iterate_batches: epochs over arrays (shuffled or not, drop_last) and endless data sets."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.data import GlyphDataset, ShapeDataset, iterate_batches


@given(n=st.integers(0, 50), batch_size=st.integers(1, 12), drop_last=st.booleans(),
       shuffle=st.booleans(), seed=st.integers(0, 2**32))
def test_an_epoch_visits_every_row_once(n, batch_size, drop_last, shuffle, seed):
    x = np.arange(n) * 10
    y = np.arange(n)
    rng = np.random.default_rng(seed) if shuffle else None
    batches = list(iterate_batches((x, y), batch_size, rng=rng, drop_last=drop_last))
    sizes = [len(b[1]) for b in batches]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([] if drop_last or rest == 0 else [rest])
    seen = np.concatenate([b[1] for b in batches]) if batches else np.array([], int)
    assert len(set(seen.tolist())) == len(seen)  # no row twice
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(n))
    if not shuffle:
        assert seen.tolist() == list(range(len(seen)))
    for bx, by in batches:
        np.testing.assert_array_equal(bx, by * 10)  # the fields stay aligned


def test_shuffle_is_reproducible_and_depends_on_the_generator():
    x = np.arange(100)
    first = [b.copy() for b in iterate_batches(x, 10, rng=np.random.default_rng(1))]
    again = list(iterate_batches(x, 10, rng=np.random.default_rng(1)))
    other = list(iterate_batches(x, 10, rng=np.random.default_rng(2)))
    assert all(isinstance(b, np.ndarray) for b in first)  # a lone array yields arrays
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
    assert not np.array_equal(np.concatenate(first), x)


def test_shape_labels_batch_with_their_images():
    images, labels = ShapeDataset(seed=0)[0:30]
    for bx, bl in iterate_batches((images, labels), 7, rng=np.random.default_rng(0)):
        assert len(bx) == len(bl)
        for img, x, y in zip(bx, bl.x, bl.y):
            # the shape's centre pixel is not background
            assert np.any(img[:, int(y), int(x)] > -1.0)


def test_endless_data_in_order_and_resumed():
    ds = GlyphDataset(seed=4)
    stream = iterate_batches(ds, 8)
    batches = list(itertools.islice(stream, 3))
    images, labels = ds[0:24]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), images)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    resumed = next(iterate_batches(ds, 8, start=16))  # a run resumed at step 2
    np.testing.assert_array_equal(resumed[0], batches[2][0])


def test_endless_data_at_random():
    ds = GlyphDataset(seed=4)
    a = next(iterate_batches(ds, 5, rng=np.random.default_rng(9)))
    b = next(iterate_batches(ds, 5, rng=np.random.default_rng(9)))
    c = next(iterate_batches(ds, 5))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_bad_arguments():
    x = np.zeros(10)
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(x, 0))
    with pytest.raises(ValueError, match=r"equal length.*\[10, 9\]"):
        iterate_batches((x, x[:9]), 2)  # raised at the call, before any batch
    with pytest.raises(TypeError, match="rng"):
        next(iterate_batches(x, 2, rng=3))
    with pytest.raises(ValueError, match="start"):
        next(iterate_batches(x, 2, start=4))
    with pytest.raises(TypeError, match=r"data\[1\]"):
        iterate_batches((x, 5), 2)
