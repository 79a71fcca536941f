"""GlyphJudge on a classifier whose predictions we decide in advance.

The head of a ConvClassifier is linear in the body's features. For 40 images the features
(40, 48) have full row rank, so the head's weights can be solved for (least squares, exact
here) to give any logits we choose; the judge's recognised share, histogram and agreement are
then known numbers.
"""

import numpy as np
import pytest

from tinydiff.data import GlyphDataset
from tinydiff.metrics import GlyphJudge, feature_statistics, frechet_distance
from tinydiff.models.classifier import ConvClassifier

NUM = 40
# P(top class) = e^m / (e^m + 9) with the other nine logits at 0: m = 8 gives 0.997
# (recognised, >= 0.9), m = 1 gives 0.23 (not recognised).
CONFIDENT_LOGIT, UNSURE_LOGIT = 8.0, 1.0


@pytest.fixture(scope="module")
def glyphs():
    images, labels = GlyphDataset(seed=3).get(np.arange(120))
    return images, labels


@pytest.fixture(scope="module")
def rigged():
    """(classifier, images (NUM, 1, 32, 32), chosen classes (NUM,), chosen confidence (NUM,) bool)."""
    rng = np.random.default_rng(0)
    classifier = ConvClassifier(widths=(8, 16, 48), rng=rng).eval()
    images, _ = GlyphDataset(seed=11).get(np.arange(NUM))
    classes = np.array([0] * 12 + [3] * 10 + [7] * 8 + list(range(10)))  # 40 choices, uneven
    confident = np.arange(NUM) % 4 != 0                                  # 30 of 40 confident
    wanted = np.zeros((NUM, 10))
    wanted[np.arange(NUM), classes] = np.where(confident, CONFIDENT_LOGIT, UNSURE_LOGIT)
    features = classifier.features(images).astype(np.float64)  # (NUM, 48)
    weight, *_ = np.linalg.lstsq(features, wanted, rcond=None)  # (48, 10)
    classifier.head.weight.data[...] = weight.T
    classifier.head.bias.data[...] = 0.0
    # the rig must really produce the logits we asked for, or the test below proves nothing
    np.testing.assert_allclose(classifier(images), wanted, atol=1e-3)
    return classifier, images, classes, confident


def test_scores_are_the_rigged_predictions(rigged, glyphs):
    classifier, images, classes, confident = rigged
    judge = GlyphJudge(classifier, glyphs[0][:48], batch_size=16)  # batches of 16 must join up
    result = judge.score(images)
    assert result["n"] == NUM
    assert result["recognised"] == pytest.approx(confident.mean())
    np.testing.assert_allclose(result["histogram"], np.bincount(classes, minlength=10) / NUM)
    assert result["histogram"].sum() == pytest.approx(1.0)
    assert "agreement" not in result


def test_agreement_counts_requested_labels_matching_the_prediction(rigged, glyphs):
    classifier, images, classes, _ = rigged
    judge = GlyphJudge(classifier, glyphs[0][:48])
    asked = classes.copy()
    asked[:10] = (asked[:10] + 1) % 10  # ten requests the "model" got wrong
    assert judge.score(images, labels=asked)["agreement"] == pytest.approx(30 / NUM)
    assert judge.score(images, labels=classes)["agreement"] == 1.0


def test_recognised_as_needs_the_digit_asked_and_confidence(rigged, glyphs):
    classifier, images, classes, confident = rigged
    judge = GlyphJudge(classifier, glyphs[0][:48])
    asked = classes.copy()
    asked[:10] = (asked[:10] + 1) % 10  # ten requests the "model" got wrong
    ok, features = judge.recognised_as(images, asked)
    np.testing.assert_array_equal(ok, confident & (asked == classes))
    np.testing.assert_array_equal(features, classifier.features(images))


def test_frechet_is_zero_for_the_reference_and_grows_with_a_shift(glyphs):
    images, _ = glyphs
    classifier = ConvClassifier(widths=(4, 8, 16), groups=4, rng=np.random.default_rng(1))
    judge = GlyphJudge(classifier, images, batch_size=64)
    assert not classifier.training  # the judge measures in eval mode
    same = judge.score(images)["frechet"]
    ref_trace = np.trace(judge.reference_stats[1])
    assert abs(same) < 1e-6 * ref_trace
    # brighter strokes and background, then more so: the feature distribution drifts away
    slightly = judge.score(np.clip(images + 0.3, -1, 1))["frechet"]
    strongly = judge.score(np.clip(images + 0.9, -1, 1))["frechet"]
    assert 1e-3 * ref_trace < slightly < strongly
    # the judge's number is the Frechet distance of the classifier's features, nothing else
    shifted = np.clip(images + 0.3, -1, 1)
    direct = frechet_distance(*feature_statistics(classifier.features(shifted)),
                              *feature_statistics(classifier.features(images)))
    assert slightly == pytest.approx(direct, rel=1e-6)


def test_other_real_glyphs_are_closer_than_noise(glyphs):
    images, _ = glyphs
    judge = GlyphJudge(ConvClassifier(widths=(4, 8, 16), groups=4, rng=np.random.default_rng(2)), images)
    fresh, _ = GlyphDataset(seed=99).get(np.arange(120))
    noise = np.random.default_rng(5).uniform(-1, 1, images.shape).astype(np.float32)
    assert judge.score(fresh)["frechet"] < 0.2 * judge.score(noise)["frechet"]


def test_an_eleventh_class_means_not_a_digit(glyphs):
    """With a "not a digit" output, confident junk is neither recognised nor in the histogram."""
    rng = np.random.default_rng(2)
    classifier = ConvClassifier(num_classes=11, widths=(8, 16, 48), rng=rng).eval()
    images = glyphs[0][:NUM]
    classes = np.arange(NUM) % 11  # every fourth-ish sample is junk (class 10)
    wanted = np.zeros((NUM, 11))
    wanted[np.arange(NUM), classes] = CONFIDENT_LOGIT
    weight, *_ = np.linalg.lstsq(classifier.features(images).astype(np.float64), wanted, rcond=None)
    classifier.head.weight.data[...] = weight.T
    classifier.head.bias.data[...] = 0.0
    result = GlyphJudge(classifier, glyphs[0][:48]).score(images)
    junk = classes == 10
    assert result["junk"] == pytest.approx(junk.mean())
    assert result["recognised"] == pytest.approx((~junk).mean())
    np.testing.assert_allclose(result["histogram"], np.bincount(classes[~junk], minlength=10) / NUM)


def test_junk_images_are_varied_and_in_range():
    from tinydiff.pipelines.classifier import junk_images

    x = junk_images(np.random.default_rng(0), 40, GlyphDataset(seed=5))
    assert x.shape == (40, 1, 32, 32) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    assert len({round(float(v), 3) for v in x.std(axis=(1, 2, 3))}) > 30  # not one picture forty times
    again = junk_images(np.random.default_rng(0), 40, GlyphDataset(seed=5))
    np.testing.assert_array_equal(x, again)


def test_larger_samples_are_judged_as_the_data_set_renders_them_at_the_classifier_size():
    classifier = ConvClassifier(widths=(4, 8, 16), groups=4, rng=np.random.default_rng(2))
    small, _ = GlyphDataset(seed=4, size=16).get(np.arange(30))
    large, _ = GlyphDataset(seed=4, size=32).get(np.arange(30))
    judge = GlyphJudge(classifier, small)
    # a 2x2 block average of the 32x32 rendering is the 16x16 rendering, up to uint8 rounding
    np.testing.assert_allclose(judge.at_classifier_size(large), small, atol=2.5 / 255)
    np.testing.assert_allclose(judge.features_and_logits(large)[1], judge.features_and_logits(small)[1],
                               rtol=0.05, atol=0.05)


def test_samples_of_a_size_the_classifier_cannot_take_are_refused(glyphs):
    judge = GlyphJudge(ConvClassifier(widths=(4, 8, 16), groups=4, rng=np.random.default_rng(2)), glyphs[0][:8])
    with pytest.raises(ValueError, match="samples: side 48"):
        judge.score(np.zeros((2, 1, 48, 48), np.float32))
    with pytest.raises(ValueError, match="samples: expected square"):
        judge.score(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="reference: expected"):
        GlyphJudge(judge.classifier, np.zeros((2, 32, 32), np.float32))
