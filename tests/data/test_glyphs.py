"""Glyphs: format, reproducibility, random access, label balance and that labels match pixels."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tinydiff.data import GlyphDataset


@pytest.fixture(scope="module")
def batch():
    return GlyphDataset(seed=0)[0:1500]


def test_format_and_ranges(batch):
    images, labels = batch
    assert images.shape == (1500, 1, 32, 32) and images.dtype == np.float32
    assert labels.shape == (1500,) and labels.dtype == np.int64
    assert images.min() == -1.0 and images.max() == 1.0  # black background, white ink
    assert set(np.unique(labels)) == set(range(10))
    ink = (images > 0).mean(axis=(1, 2, 3))
    assert ink.min() > 0.03 and ink.max() < 0.5  # every image has a digit, none is a blob


def test_digits_are_balanced(batch):
    share = np.bincount(batch[1], minlength=10) / len(batch[1])
    assert share.min() > 0.07 and share.max() < 0.13


@pytest.mark.parametrize("size", [28, 32])
def test_digits_stay_inside_the_frame(size):
    images, _ = GlyphDataset(seed=7, size=size)[0:1500]
    ring = np.concatenate([images[:, 0, 0], images[:, 0, -1],
                           images[:, 0, :, 0], images[:, 0, :, -1]], axis=1)
    assert np.all(ring == -1.0)


def test_same_seed_same_images_other_seed_other_images(batch):
    again = GlyphDataset(seed=0)[0:1500]
    np.testing.assert_array_equal(batch[0], again[0])
    np.testing.assert_array_equal(batch[1], again[1])
    other = GlyphDataset(seed=1)[0:1500]
    assert np.mean(other[1] == batch[1]) < 0.2  # about 0.1 by chance
    assert not np.allclose(other[0], batch[0])


def test_random_access_matches_the_stream(batch):
    ds = GlyphDataset(seed=0)
    picked = [1499, 3, 3, 700]
    images, labels = ds.get(picked)
    np.testing.assert_array_equal(images, batch[0][picked])
    np.testing.assert_array_equal(labels, batch[1][picked])
    # far-away indices render too: the stream is endless
    assert ds.get([10**15])[0].shape == (1, 1, 32, 32)
    stepped = ds[10:20:3]
    np.testing.assert_array_equal(stepped[0], batch[0][10:20:3])


def test_labels_describe_the_pixels(batch):
    # Nearest class-mean template (correlation) fitted on seed 0, tested on seed 1: scrambled
    # labels would score about 10%.
    images, labels = batch
    flat = images.reshape(len(images), -1)  # (N, 1, H, W) -> (N, H*W)
    means = np.stack([flat[labels == k].mean(axis=0) for k in range(10)])
    means -= means.mean(axis=1, keepdims=True)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    test_images, test_labels = GlyphDataset(seed=1)[0:1000]
    test = test_images.reshape(1000, -1)
    test = test - test.mean(axis=1, keepdims=True)
    accuracy = np.mean(np.argmax(test @ means.T, axis=1) == test_labels)
    assert accuracy > 0.6


def test_without_variation_a_label_is_always_the_same_picture():
    ds = GlyphDataset(seed=3, height_range=(0.6, 0.6), max_rotation=0.0, max_shift=0.0,
                      stroke_widths=(2,))
    images, labels = ds[0:200]
    for k in range(10):
        same = images[labels == k]
        assert len(same) > 1
        np.testing.assert_array_equal(same, np.broadcast_to(same[0], same.shape))
    firsts = np.stack([images[labels == k][0] for k in range(10)])
    distances = np.abs(firsts[:, None] - firsts[None]).sum(axis=(2, 3, 4))  # (10, 10)
    assert np.all(distances[~np.eye(10, dtype=bool)] > 10)


def unit_rows(x):
    x = x.reshape(len(x), -1).astype(np.float64)  # (N, ...) -> (N, D)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_label_k_shows_the_character_k():
    # Reference digits drawn here, straight from the font, centred: each data-set digit
    # (no random variation) must look most like the reference of its own label.
    ds = GlyphDataset(seed=3, height_range=(0.6, 0.6), max_rotation=0.0, max_shift=0.0,
                      stroke_widths=(1,))
    images, labels = ds[0:200]
    font = ImageFont.load_default(size=26)
    refs = []
    for k in range(10):
        canvas = Image.new("L", (32, 32), 0)
        ImageDraw.Draw(canvas).text((16, 16), str(k), font=font, fill=255, anchor="mm")
        refs.append(np.asarray(canvas))
    ours = np.stack([images[labels == k][0] for k in range(10)])
    similarity = unit_rows(ours) @ unit_rows(np.stack(refs)).T  # (10, 10)
    np.testing.assert_array_equal(similarity.argmax(axis=1), np.arange(10))


def test_other_sizes_and_the_font_cache():
    ds = GlyphDataset(seed=0, size=16)
    images, _ = ds[0:50]
    assert images.shape == (50, 1, 16, 16)
    assert len(ds._fonts) == 1  # one font object, loaded once, owned by the data set
    assert len(GlyphDataset(seed=0)._fonts) == 0  # no state shared between data sets


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed"):
        GlyphDataset(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        GlyphDataset(seed=1.5)
    with pytest.raises(ValueError, match="size"):
        GlyphDataset(size=128)
    with pytest.raises(ValueError, match="height_range"):
        GlyphDataset(height_range=(0.8, 0.5))
    with pytest.raises(ValueError, match="max_rotation"):
        GlyphDataset(max_rotation=-1)
    with pytest.raises(ValueError, match="stroke_widths"):
        GlyphDataset(stroke_widths=())
    ds = GlyphDataset()
    with pytest.raises(ValueError, match="indices"):
        ds.get([-1])
    with pytest.raises(TypeError, match="indices"):
        ds.get([0.5])
    with pytest.raises(ValueError, match="stop"):
        ds[5:]


def test_indices_with_labels_give_exactly_the_requested_digits():
    data = GlyphDataset(seed=7, size=16)
    wanted = np.array([3, 3, 0, 9, 3, 1])
    idx = data.indices_with_labels(wanted, start=50)
    _, labels = data.get(idx)
    np.testing.assert_array_equal(labels, wanted)
    assert len(set(idx.tolist())) == len(idx) and idx.min() >= 50
    # for each digit, the indices are the first ones from `start` on that show it, in order
    _, scanned = data.get(range(50, idx.max() + 1))
    for digit in np.unique(wanted):
        first = 50 + np.flatnonzero(scanned == digit)[:np.sum(wanted == digit)]
        np.testing.assert_array_equal(idx[wanted == digit], first)
    with pytest.raises(ValueError, match="labels"):
        data.indices_with_labels([10])
    assert data.indices_with_labels(np.array([], dtype=int)).size == 0
