"""The concept metric recognises drawn concepts and only them, and reads their colour and
position; text control scores prompts against what it reads."""

import numpy as np
import pytest

from tinydiff.data import ShapeDataset
from tinydiff.data.concepts import concept_images, random_concept_images
from tinydiff.metrics.concept import concept_checks, concept_fidelity, text_control


@pytest.mark.parametrize("concept", ["ring", "star"])
def test_drawn_concepts_are_recognised_with_their_colour_and_position(concept):
    images, labels = random_concept_images(concept, 24, seed=0)
    big = labels.size > 0  # a small star's points are single pixels; medium and large are the concept
    checks = concept_checks(images[big], concept)
    assert checks.recognised.all() and checks.iou.min() > 0.9
    np.testing.assert_array_equal(checks.colour, labels.colour[big])
    np.testing.assert_array_equal(checks.position, labels.position[big])


def test_shapes_are_not_the_concept_and_the_two_concepts_are_told_apart():
    shapes, _ = ShapeDataset(seed=0).get(np.arange(40))
    assert concept_fidelity(shapes, "ring") == 0.0
    stars, labels = random_concept_images("star", 20, seed=2)
    assert concept_fidelity(stars[labels.size > 0], "ring") == 0.0


def test_blank_images_score_nothing():
    checks = concept_checks(np.full((2, 3, 32, 32), -1.0, dtype=np.float32), "ring")
    assert not checks.recognised.any() and (checks.iou == 0).all() and (checks.colour == -1).all()


def test_text_control_follows_the_prompts():
    images, _ = concept_images("ring", [("blue", "large", 2, 2), ("blue", "medium", 2, 2), ("red", "large", 0, 0)])
    prompts = ["a blue sks shape at the bottom right"] * 3
    score = text_control(images, prompts, "ring")
    assert score["colour"] == pytest.approx(2 / 3) and score["position"] == pytest.approx(2 / 3)
    assert score["colour_and_position"] == pytest.approx(2 / 3) and score["concept"] == 1.0
    assert text_control(images[:1], ["a sks shape"], "ring")["colour_and_position"] == 1.0  # nothing named
    with pytest.raises(ValueError, match="prompts"):
        text_control(images, prompts[:2], "ring")
    with pytest.raises(ValueError, match="min_iou"):
        concept_checks(images, "ring", min_iou=0)
