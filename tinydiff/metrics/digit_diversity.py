"""Diversity of generated glyphs, seen through the glyph classifier (tinydiff.metrics.glyph_quality):

    coverage     how many of the ten digits get at least `min_share` of all samples confidently
                 recognised as them (p >= 0.9): a collapsed generator covers few
    diversity    within each digit, the mean distance between the classifier features of two
                 samples recognised as that digit, averaged over the digits, divided by the same
                 for real glyphs: 1 is as varied as the data, near 0 is one glyph repeated

Both are definitions of this library (no paper numbers them); they read the classifier's features,
so they judge variety the classifier can see (style, slant, thickness), not pixels. Diversity is
bench_guidance's measure (class_diversity), with the classes the classifier reads off the samples.
"""

import numpy as np

from tinydiff.metrics.distances import class_diversity
from tinydiff.metrics.glyph_quality import CONFIDENT, NUM_DIGITS, softmax


def confident_digits(logits):
    """(N, classes) logits -> the predicted digit (N,) and whether it is a confident digit (N,) bool."""
    probs = softmax(np.asarray(logits, dtype=np.float64))
    predicted = probs.argmax(axis=1)
    return predicted, (probs.max(axis=1) >= CONFIDENT) & (predicted < NUM_DIGITS)


def digit_coverage(predicted, confident, min_share=0.02):
    """The number of digits (0..10) with at least min_share of all samples confidently recognised
    as them; predicted (N,) ints, confident (N,) bool."""
    predicted, confident = np.asarray(predicted), np.asarray(confident, dtype=bool)
    if predicted.shape != confident.shape or predicted.ndim != 1 or len(predicted) == 0:
        raise ValueError(f"predicted and confident: expected two (N,) arrays with N >= 1, got shapes "
                         f"{predicted.shape} and {confident.shape}")
    counts = np.bincount(predicted[confident], minlength=NUM_DIGITS)[:NUM_DIGITS]
    return int((counts >= min_share * len(predicted)).sum())


def within_digit_diversity(features, logits, reference_features, reference_labels):
    """class_diversity (tinydiff.metrics.distances) of the samples confidently recognised as a
    digit, grouped by that digit, against real glyphs (M, F) grouped by their labels (M,); NaN
    when no digit has two confident samples."""
    predicted, confident = confident_digits(logits)
    if np.bincount(predicted[confident], minlength=NUM_DIGITS + 1).max() < 2:
        return float("nan")
    return class_diversity(np.asarray(features)[confident], predicted[confident], np.asarray(reference_features),
                           np.asarray(reference_labels))
