"""Shapes: format, exact attributes recovered from pixels, captions, reproducibility."""

import re

import numpy as np
import pytest

from tinydiff.data import COLOUR_NAMES, COLOURS, SHAPES, SIZES, ShapeDataset, ShapeLabels
from tinydiff.data import read_shapes
from tinydiff.data.shapes import COLUMNS, ROWS, caption

INDEX_FIELDS = ("shape", "colour", "size", "row", "col")


@pytest.fixture(scope="module")
def batch():
    return ShapeDataset(seed=0)[0:1500]


def test_format_and_ranges(batch):
    images, labels = batch
    assert images.shape == (1500, 3, 32, 32) and images.dtype == np.float32
    assert images.flags.c_contiguous
    assert images.min() == -1.0 and images.max() == 1.0
    assert isinstance(labels, ShapeLabels) and len(labels) == 1500
    for field in INDEX_FIELDS:
        assert getattr(labels, field).dtype == np.int64
    # every attribute value occurs
    assert set(labels.shape) == {0, 1, 2} and set(labels.size) == {0, 1, 2}
    assert set(labels.colour) == set(range(len(COLOURS)))
    assert set(labels.position) == set(range(9))


def test_background_is_plain_black_and_colour_is_the_named_one(batch):
    images, labels = batch
    palette = np.array(list(COLOURS.values())) / 127.5 - 1.0  # (K, 3) in [-1, 1]
    for img, colour in zip(images[:200], labels.colour[:200]):
        pixels = img.reshape(3, -1).T  # (3, H, W) -> (H*W, 3)
        background = np.all(pixels == -1.0, axis=1)
        pure = np.all(pixels == palette[colour], axis=1)
        assert background.mean() > 0.6 and pure.sum() >= 9
        # anti-aliased edge pixels are blends of the colour with black, nothing else
        t = (pixels + 1) / 2
        c = (palette[colour] + 1) / 2
        alpha = t @ c / (c @ c)
        np.testing.assert_allclose(t, alpha[:, None] * c, atol=1 / 255)


# The documented geometry, restated here by name so that the test does not lean on the
# renderer's own tables: side of the bounding box at 32 px, and the area each shape covers.
SIDE = {"small": 8, "medium": 12, "large": 16}
AREA = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}  # times side^2


def test_named_attributes_match_the_pixels(batch):
    images, labels = batch
    for i in range(300):
        shape, size = SHAPES[labels.shape[i]], SIZES[labels.size[i]]
        row, col = ROWS[labels.row[i]], COLUMNS[labels.col[i]]
        rgb = np.array(COLOURS[COLOUR_NAMES[labels.colour[i]]]) / 255.0
        pixels = (images[i] + 1) / 2  # (3, H, W) in [0, 1]
        coverage = np.einsum("chw,c->hw", pixels, rgb) / (rgb @ rgb)
        assert coverage.sum() == pytest.approx(AREA[shape] * SIDE[size] ** 2, rel=0.015)
        ys, xs = np.nonzero(coverage > 0)
        assert xs.max() + 1 - xs.min() == SIDE[size] == ys.max() + 1 - ys.min()
        x, y = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2  # box centre
        assert (x, y) == (labels.x[i], labels.y[i])
        assert {"left": x < 13, "centre": 13 <= x <= 19, "right": x > 19}[col]
        assert {"top": y < 13, "middle": 13 <= y <= 19, "bottom": y > 19}[row]


@pytest.mark.parametrize("size", [16, 32, 64])
def test_attributes_are_recovered_exactly_from_pixels(size):
    images, labels = ShapeDataset(seed=size, size=size)[0:600]
    read = read_shapes(images)
    for field in INDEX_FIELDS:
        np.testing.assert_array_equal(getattr(read, field), getattr(labels, field), err_msg=field)
    np.testing.assert_allclose(read.x, labels.x, atol=0.1)
    np.testing.assert_allclose(read.y, labels.y, atol=0.1)


def test_read_shapes_notices_a_wrong_label(batch):
    # Swap a square's pixels for a circle's of the same colour, size and place: the reader
    # must disagree with the square's label.
    images, labels = batch
    i = int(np.flatnonzero((labels.shape == 1) & (labels.size == 2))[0])
    ds = ShapeDataset(seed=0)
    pixels = ds._render_one(0, int(labels.colour[i]), 2, labels.x[i], labels.y[i])
    swapped = pixels.transpose(2, 0, 1)[None] / 127.5 - 1.0  # (H, W, 3) -> (1, 3, H, W)
    assert read_shapes(swapped).shape[0] == 0 != labels.shape[i]
    blank = read_shapes(-np.ones((1, 3, 32, 32)))
    assert blank.shape[0] == -1 and np.isnan(blank.x[0])


def test_captions():
    assert caption(0, 0, 0, 0, 0) == "a small red circle at the top left"
    assert caption(1, 2, 2, 1, 1) == "a large blue square in the centre"
    assert caption(2, 6, 1, 1, 2) == "a medium white triangle on the right"
    assert caption(2, 3, 1, 2, 1) == "a medium yellow triangle at the bottom"
    _, labels = ShapeDataset(seed=5)[0:100]
    pattern = re.compile(r"^a (small|medium|large) (\w+) (circle|square|triangle) "
                         r"(at the (top|bottom)( left| right)?|on the (left|right)|in the centre)$")
    captions = labels.captions
    assert len(captions) == 100 and all(pattern.match(c) for c in captions)
    assert len(set(captions)) > 50


def test_reproducible_and_random_access(batch):
    images, labels = batch
    again_images, again_labels = ShapeDataset(seed=0).get([1499, 2, 2])
    np.testing.assert_array_equal(again_images, images[[1499, 2, 2]])
    np.testing.assert_array_equal(again_labels.x, labels.x[[1499, 2, 2]])
    other_images, other_labels = ShapeDataset(seed=1)[0:1500]
    assert np.mean(other_labels.shape == labels.shape) < 0.5
    assert not np.allclose(other_images, images)


def test_labels_index_like_arrays(batch):
    _, labels = batch
    picked = labels[np.array([4, 1])]
    assert len(picked) == 2
    assert picked.captions == [labels.captions[4], labels.captions[1]]
    single = labels[3]
    assert len(single) == 1 and single.x[0] == labels.x[3]
    assert set(labels.as_dict()) == set(ShapeLabels.FIELDS)


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        ShapeDataset(size=24)
    with pytest.raises(ValueError, match="seed"):
        ShapeDataset(seed=-3)
    with pytest.raises(ValueError, match="images"):
        read_shapes(np.zeros((2, 1, 32, 32)))
    with pytest.raises(ValueError, match="stop"):
        ShapeDataset()[0:]
