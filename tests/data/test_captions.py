"""Captioned Shapes: captions true of their image, parse_caption their exact inverse, the caption
policy's frequencies, and held-out pairs that training never sees."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.data import (COLOUR_NAMES, HELD_OUT_PAIRS, SHAPES, CaptionedShapes, WordTokenizer,
                           parse_caption, random_full_caption, read_shapes, write_caption)
from tinydiff.data.captions import (ATTRIBUTES, CAPTION_WORDS, NUM_TEMPLATES, RARE_WORDS,
                                    split_words)
from tinydiff.data.tokenizer import DEFAULT_MAX_LENGTH

CHOICES = {"shape": 3, "colour": 7, "size": 3, "position": 9}


def every_named():
    """Every dict of named attributes: each attribute left out or given one of its values."""
    options = [[None] + list(range(CHOICES[a])) for a in ATTRIBUTES]
    for values in itertools.product(*options):
        yield {a: v for a, v in zip(ATTRIBUTES, values) if v is not None}


@pytest.fixture(scope="module")
def all_captions():
    return [(named, t, write_caption(named, t)) for named in every_named() for t in range(NUM_TEMPLATES)]


def test_parse_caption_inverts_every_caption_and_every_caption_tokenizes(all_captions):
    tokenizer = WordTokenizer()
    assert len(all_captions) == 4 * 8 * 4 * 10 * NUM_TEMPLATES
    for named, t, text in all_captions:
        assert parse_caption(text) == named, (named, t, text)
    ids = tokenizer([text for _, _, text in all_captions], max_length=DEFAULT_MAX_LENGTH)
    assert (ids != tokenizer.unk_token_id).all()


def test_vocabulary_is_exactly_the_words_captions_use(all_captions):
    used = {w for _, _, text in all_captions for w in split_words(text)}
    assert used == set(CAPTION_WORDS)
    assert not used & set(RARE_WORDS)


def test_templates_differ_and_read_as_documented():
    full = {"shape": 0, "colour": 0, "size": 0, "position": 0}  # small red circle, top left
    texts = [write_caption(full, t) for t in range(NUM_TEMPLATES)]
    assert texts == ["a small red circle at the top left", "a red circle, small, at the top left",
                     "top left: a small red circle", "at the top left, a small red circle",
                     "a small circle in red at the top left"]
    assert write_caption({}, 1) == "a shape"
    assert write_caption({"colour": 0}, 0) == "a red shape"
    assert write_caption({"size": 0, "position": 4}, 2) == "centre: a small shape"


@given(seed=st.integers(0, 2**32), start=st.integers(0, 10**6), split=st.sampled_from(["train", "heldout"]))
def test_captions_are_true_of_their_images(seed, start, split):
    images, captions, labels = CaptionedShapes(seed=seed, split=split).get(range(start, start + 8))
    assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32 and len(captions) == 8
    seen = read_shapes(images)
    for field in ("shape", "colour", "size", "row", "col"):
        assert np.array_equal(getattr(seen, field), getattr(labels, field))
    truth = np.stack([labels.shape, labels.colour, labels.size, labels.position], axis=1)
    for text, row in zip(captions, truth):
        for attribute, value in parse_caption(text).items():
            assert value == row[ATTRIBUTES.index(attribute)], (text, row)


@pytest.fixture(scope="module")
def train_batch():
    return CaptionedShapes(seed=3)[0:2000]


def test_training_never_sees_a_held_out_pair(train_batch):
    _, captions, labels = train_batch
    held = {(SHAPES.index(s), COLOUR_NAMES.index(c)) for c, s in HELD_OUT_PAIRS}
    pairs = set(zip(labels.shape.tolist(), labels.colour.tolist()))
    assert len(pairs) == 21 - len(held) and not pairs & held
    # every colour and every shape still appears
    assert set(labels.colour.tolist()) == set(range(7)) and set(labels.shape.tolist()) == {0, 1, 2}
    for text in captions:
        named = parse_caption(text)
        assert (named.get("shape"), named.get("colour")) not in held


def test_held_out_split_draws_only_held_out_pairs():
    _, captions, labels = CaptionedShapes(seed=3, split="heldout", p_full=1.0)[0:300]
    held = {(SHAPES.index(s), COLOUR_NAMES.index(c)) for c, s in HELD_OUT_PAIRS}
    assert set(zip(labels.shape.tolist(), labels.colour.tolist())) == held
    assert all(len(parse_caption(text)) == 4 for text in captions)
    assert len({c for c, _ in HELD_OUT_PAIRS}) == len({s for _, s in HELD_OUT_PAIRS}) == len(HELD_OUT_PAIRS)


def test_caption_policy_frequencies(train_batch):
    """Full with probability 1/2, else one of the 15 proper subsets uniformly: 'shape' as the
    noun in 1/2 * 8/15 of captions; binomial standard errors over 2000 are about 0.011."""
    _, captions, _ = train_batch
    named = [parse_caption(text) for text in captions]
    full = np.mean([len(n) == 4 for n in named])
    generic = np.mean(["shape" not in n for n in named])
    empty = np.mean([len(n) == 0 for n in named])
    assert abs(full - 0.5) < 0.05 and abs(generic - 4 / 15) < 0.05 and abs(empty - 1 / 30) < 0.02
    partial_sizes = np.bincount([len(n) for n in named if len(n) < 4], minlength=4) / (len(captions) * 0.5)
    assert np.allclose(partial_sizes, np.array([1, 4, 6, 4]) / 15, atol=0.05)
    assert any(":" in text for text in captions) and any(", " in text for text in captions)
    assert any(" in " + c in text for text in captions for c in COLOUR_NAMES)


def test_reproducible_random_access_and_images_do_not_depend_on_captions():
    data = CaptionedShapes(seed=5)
    images, captions, labels = data[0:10]
    again, captions_again, _ = data.get([7, 2])
    assert np.array_equal(again, images[[7, 2]]) and captions_again == [captions[7], captions[2]]
    full_images, full_captions, _ = CaptionedShapes(seed=5, p_full=1.0)[0:10]
    assert np.array_equal(full_images, images)
    assert all(len(parse_caption(text)) == 4 for text in full_captions)
    assert all(len(parse_caption(text)) < 4 for text in CaptionedShapes(seed=5, p_full=0.0)[0:10][1])
    other, _, _ = CaptionedShapes(seed=6)[0:10]
    assert not np.array_equal(other, images)
    assert CaptionedShapes(size=16)[0:2][0].shape == (2, 3, 16, 16)


def test_random_full_caption():
    rng = np.random.default_rng(0)
    held = {(SHAPES.index(s), COLOUR_NAMES.index(c)) for c, s in HELD_OUT_PAIRS}
    for split in ("train", "heldout"):
        for _ in range(50):
            named = parse_caption(random_full_caption(rng, split))
            assert len(named) == 4
            assert ((named["shape"], named["colour"]) in held) == (split == "heldout")
    a = random_full_caption(np.random.default_rng(1))
    assert a == random_full_caption(np.random.default_rng(1))
    with pytest.raises(TypeError, match="rng"):
        random_full_caption(1)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="split"):
        CaptionedShapes(split="test")
    with pytest.raises(ValueError, match="p_full"):
        CaptionedShapes(p_full=1.5)
    with pytest.raises(ValueError, match="size"):
        CaptionedShapes(size=30)
    with pytest.raises(ValueError, match="named"):
        write_caption({"hue": 0})
    with pytest.raises(ValueError, match="template"):
        write_caption({}, NUM_TEMPLATES)
    with pytest.raises(ValueError, match="more than one colour"):
        parse_caption("a red blue circle")
    with pytest.raises(ValueError, match="more than one position"):
        parse_caption("a circle at the top bottom")
    with pytest.raises(ValueError, match="crimson"):
        parse_caption("a crimson circle")
    with pytest.raises(TypeError, match="text"):
        parse_caption(3)
    assert parse_caption("A sks SHAPE") == {}
    assert parse_caption("Top: a Circle") == {"shape": 0, "position": 1}
