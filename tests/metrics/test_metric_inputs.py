"""The quality measures check what they are given before any work: NaN images, an empty batch,
a wrong shape or pixel scale, labels of the wrong length each give a ValueError/TypeError
naming the argument (GlyphJudge on NaN images used to run 13 s into a LinAlgError)."""

import time

import numpy as np
import pytest

from tinydiff.data import GlyphDataset, ShapeDataset
from tinydiff.metrics import GlyphJudge, shape_checks, shapes_quality
from tinydiff.models.classifier import ConvClassifier


@pytest.fixture(scope="module")
def judge():
    classifier = ConvClassifier(widths=(8, 8), groups=4, num_classes=11, rng=np.random.default_rng(0))
    reference, _ = GlyphDataset(seed=3, size=16).get(np.arange(20))
    return GlyphJudge(classifier, reference)


def glyphs(n=4):
    return GlyphDataset(seed=5, size=16).get(np.arange(n))[0]


def with_nan(x):
    x = x.copy()
    x[1, 0, 3, 3] = np.nan
    return x


GLYPH_CASES = [
    (lambda: with_nan(glyphs()), None, ValueError, ["samples", "NaN/inf", "index 1"]),
    (lambda: np.full((4, 1, 16, 16), np.inf, np.float32), None, ValueError, ["samples", "NaN/inf"]),
    (lambda: glyphs()[:, :, :, :8], None, ValueError, ["samples", "(N, 1, H, H)", "(4, 1, 16, 8)"]),
    (lambda: glyphs()[:, 0], None, ValueError, ["samples", "(4, 16, 16)"]),
    (lambda: np.repeat(glyphs(), 3, axis=1), None, ValueError, ["samples", "(4, 3, 16, 16)"]),
    (lambda: glyphs()[:0], None, ValueError, ["samples", "at least 2", "got 0"]),
    (lambda: glyphs()[:1], None, ValueError, ["samples", "at least 2", "got 1"]),
    (lambda: ((glyphs() + 1) * 127.5).astype(np.uint8), None, TypeError, ["samples", "uint8", "127.5"]),
    (lambda: [["not", "images"]], None, TypeError, ["samples", "float array", "list"]),
    (lambda: glyphs(), np.arange(3), ValueError, ["labels", "4", "(3,)"]),
    (lambda: glyphs(), np.zeros(4), TypeError, ["labels", "integers", "float64"]),
    (lambda: glyphs(), np.zeros((4, 1), int), ValueError, ["labels", "(4, 1)"]),
]


@pytest.mark.parametrize("make,labels,error,expected", GLYPH_CASES, ids=[str(i) for i in range(len(GLYPH_CASES))])
def test_glyph_judge_checks_first(judge, make, labels, error, expected):
    start = time.perf_counter()
    with pytest.raises(error) as err:
        judge.score(make(), labels)
    assert time.perf_counter() - start < 1.0  # refused before the classifier runs
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_glyph_judge_reference_is_checked(judge):
    with pytest.raises(ValueError, match="reference: .*NaN/inf"):
        GlyphJudge(judge.classifier, with_nan(glyphs()))
    with pytest.raises(ValueError, match="reference: expected at least 2"):
        GlyphJudge(judge.classifier, glyphs(1))


def test_glyph_judge_still_scores_good_input(judge):
    result = judge.score(glyphs(6), np.arange(6))
    assert result["n"] == 6 and 0 <= result["agreement"] <= 1 and np.isfinite(result["frechet"])


def test_poor_samples_out_of_range_are_scored_not_refused(judge):
    # an untrained model's unclipped samples reach well beyond [-1, 1]: a bad score, not bad input
    wild = glyphs(4) * 12.0
    assert np.isfinite(judge.score(wild)["frechet"])
    assert 0 <= shapes_quality(shapes() * 12.0, shapes())["valid"] <= 1
    with pytest.raises(ValueError, match=r"reference: expected real images in \[-1, 1\]"):
        GlyphJudge(judge.classifier, glyphs(4) * 12.0)


def shapes(n=3):
    return ShapeDataset(seed=1)[0:n][0]


SHAPES_CASES = [
    (lambda: shapes()[:0], shapes, ["samples", "at least 1", "got 0"]),
    (lambda: with_nan(shapes()), shapes, ["samples", "NaN/inf"]),
    (shapes, lambda: with_nan(shapes()), ["real", "NaN/inf"]),
    (shapes, lambda: shapes()[:0], ["real", "at least 1"]),
    (lambda: shapes()[:, :1], shapes, ["samples", "(N, 3, H, W)", "(3, 1, 32, 32)"]),
    (shapes, lambda: (shapes() + 1) * 127.5, ["real", "[-1, 1]", "255"]),
    (shapes, lambda: np.zeros((2, 3, 8, 8), np.float32), ["real", "flat"]),
]


@pytest.mark.parametrize("make_samples,make_real,expected", SHAPES_CASES, ids=[str(i) for i in range(len(SHAPES_CASES))])
def test_shapes_quality_checks_first(make_samples, make_real, expected):
    with pytest.raises(ValueError) as err:
        shapes_quality(make_samples(), make_real())
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_shape_checks_refuses_an_empty_batch_and_nan():
    with pytest.raises(ValueError, match="images: expected at least 1"):
        shape_checks(np.zeros((0, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="images: .*NaN/inf"):
        shape_checks(with_nan(shapes()))
