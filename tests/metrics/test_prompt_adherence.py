"""Prompt adherence from pixels: real captioned images score 100%, a deliberately wrong
attribute scores 0 on that attribute only, and blank images are invalid and wrong."""

import numpy as np
import pytest

from tinydiff.data import CaptionedShapes, parse_caption, write_caption
from tinydiff.data.captions import ATTRIBUTES
from tinydiff.metrics import PromptAdherence, prompt_adherence

CHOICES = {"shape": 3, "colour": 7, "size": 3, "position": 9}


@pytest.fixture(scope="module")
def batch():
    return CaptionedShapes(seed=2)[0:120]


def test_real_images_against_their_own_captions_score_100_percent(batch):
    images, captions, _ = batch
    result = prompt_adherence(images, captions)
    assert isinstance(result, PromptAdherence)
    summary = result.summary()
    for attribute in ATTRIBUTES:
        assert summary[attribute] == 1.0 and summary["named_count"][attribute] > 30
    assert summary["all_named_right"] == summary["valid"] == summary["adherent"] == 1.0
    assert np.array_equal(result.named, [[a in parse_caption(c) for a in ATTRIBUTES] for c in captions])


@pytest.mark.parametrize("attribute", ATTRIBUTES)
def test_a_wrong_attribute_scores_zero_on_it_alone(batch, attribute):
    images, _, labels = batch
    truth = np.stack([labels.shape, labels.colour, labels.size, labels.position], axis=1)
    k = ATTRIBUTES.index(attribute)
    prompts = []
    for n, row in enumerate(truth):
        named = {a: int(v) for a, v in zip(ATTRIBUTES, row)}
        named[attribute] = (named[attribute] + 1) % CHOICES[attribute]
        prompts.append(write_caption(named, n % 5))
    result = prompt_adherence(images, prompts)
    summary = result.summary()
    assert summary[attribute] == 0.0 and summary["all_named_right"] == 0.0 and summary["adherent"] == 0.0
    assert all(summary[a] == 1.0 for a in ATTRIBUTES if a != attribute)
    assert not result.right[:, k].any() and result.right[:, np.arange(4) != k].all()
    assert summary["valid"] == 1.0  # the images are still good shapes


def test_unnamed_attributes_do_not_count_and_blank_images_are_invalid(batch):
    images, _, labels = batch
    prompts = ["a shape"] * 3 + [write_caption({"colour": int(labels.colour[3])})]
    blank = np.full((1, 3, 32, 32), -1.0, dtype=np.float32)
    result = prompt_adherence(np.concatenate([images[:3], blank]), prompts)
    summary = result.summary()
    assert np.isnan(summary["shape"]) and summary["named_count"]["shape"] == 0
    assert summary["colour"] == 0.0 and summary["named_count"]["colour"] == 1
    assert result.all_named_right.tolist() == [True, True, True, False]
    assert result.valid.tolist() == [True, True, True, False] and summary["adherent"] == 0.75


def test_bad_input_is_named(batch):
    images, captions, _ = batch
    with pytest.raises(ValueError, match="prompts: expected one per image"):
        prompt_adherence(images[:2], captions[:3])
    with pytest.raises(TypeError, match="prompts"):
        prompt_adherence(images[:1], "a shape")
    with pytest.raises(ValueError, match="images"):
        prompt_adherence(images[:, :1], captions)
    with pytest.raises(ValueError, match="grammar"):
        prompt_adherence(images[:1], ["a crimson shape"])
