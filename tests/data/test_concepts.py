"""The fine-tuning concepts are drawn like the Shapes: exact areas, the 2h-wide box at the grid
positions, the four instance images' promised attributes, and clear errors."""

import numpy as np
import pytest

from tinydiff.data.concepts import (INSTANCE_SPECS, RING_INNER_RATIO, STAR_INNER_RATIO, concept_coverage,
                                    instance_images, random_concept_images, render_concept, star_polygon)
from tinydiff.data.shapes import COLOUR_NAMES, HALF_EXTENT, centres


def polygon_area(points):
    x, y = np.array(points).T
    return 0.5 * abs(x @ np.roll(y, -1) - y @ np.roll(x, -1))


@pytest.mark.parametrize("h", [6.0, 8.0, 12.0])
def test_areas_are_the_geometry_s(h):
    ring = concept_coverage("ring", 64, 32.0, 32.0, h).sum()
    assert ring == pytest.approx(np.pi * h * h * (1 - RING_INNER_RATIO**2), rel=0.03)
    star = concept_coverage("star", 64, 32.0, 32.0, h).sum()
    assert star == pytest.approx(polygon_area(star_polygon(32.0, 32.0, h)), rel=0.03)


def test_star_is_two_h_wide_and_centred_in_its_box():
    x, y = np.array(star_polygon(10.0, 20.0, 5.0)).T
    assert x.max() - x.min() == pytest.approx(10.0)
    assert (y.max() + y.min()) / 2 == pytest.approx(20.0)
    inner = np.hypot(x[1::2] - 10.0, y[1::2] - (y[0] + 5.0 / np.sin(np.radians(72))))
    assert inner == pytest.approx(np.full(5, STAR_INNER_RATIO * 5.0 / np.sin(np.radians(72))))


def test_render_places_the_colour_in_the_grid_cell():
    img = render_concept("ring", "green", "large", 2, 0)  # bottom left
    lit = np.argwhere(img[1] > 0.0)
    centre = (lit.min(axis=0) + lit.max(axis=0) + 1) / 2
    grid = centres(32)[2]
    assert centre == pytest.approx([grid[2], grid[0]])
    assert lit.max(axis=0)[1] + 1 - lit.min(axis=0)[1] == 2 * HALF_EXTENT[2]
    assert img[0].max() == -1.0 and img[2].max() == -1.0  # pure green on black
    assert img[1, 0, 0] == -1.0


def test_instance_images_hold_what_their_specs_promise_and_never_blue_at_the_bottom_right():
    images, labels = instance_images("ring", seed=3)
    again, _ = instance_images("ring", seed=3)
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.float32
    np.testing.assert_array_equal(images, again)
    assert [COLOUR_NAMES[c] for c in labels.colour] == [s[0] for s in INSTANCE_SPECS]
    assert "blue" not in [s[0] for s in INSTANCE_SPECS] and 8 not in labels.position.tolist()
    assert not np.array_equal(images, instance_images("ring", seed=4)[0])  # the jitter is keyed by the seed


def test_random_images_are_keyed_by_the_seed():
    a, la = random_concept_images("star", 5, seed=1)
    b, _ = random_concept_images("star", 5, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(la) == 5 and a.min() == -1.0


@pytest.mark.parametrize("kwargs, name", [(dict(concept="hexagon"), "concept"), (dict(colour="pink"), "colour"),
                                          (dict(size="huge"), "size"), (dict(row=3), "row"),
                                          (dict(jitter=(2, 0)), "jitter"), (dict(image_size=48), "image_size")])
def test_bad_arguments_are_named(kwargs, name):
    args = dict(concept="ring", colour="red", size="large", row=1, col=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        render_concept(**args)


def test_the_identifier_prompts_tokenize_and_parse():
    from tinydiff.data import WordTokenizer, parse_caption

    tokenizer = WordTokenizer()
    ids = np.asarray(tokenizer(["a sks shape", "a blue sks shape at the bottom right"]))
    assert tokenizer.vocab["sks"] in ids[0] and tokenizer.vocab["sks"] in ids[1]
    assert tokenizer.unk_token_id not in ids
    assert parse_caption("a sks shape") == {}
    assert parse_caption("a blue sks shape at the bottom right") == {"colour": COLOUR_NAMES.index("blue"), "position": 8}
