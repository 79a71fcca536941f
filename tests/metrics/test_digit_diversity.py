"""Coverage and within-digit diversity on hand-made classifier outputs whose answers are known."""

import numpy as np
import pytest

from tinydiff.metrics.digit_diversity import confident_digits, digit_coverage, within_digit_diversity


def logits_for(digits, confident=True):
    """(N, 11) logits whose argmax is each digit, with probability ~1 or ~0.5."""
    logits = np.zeros((len(digits), 11))
    logits[np.arange(len(digits)), digits] = 20.0 if confident else 0.1
    return logits


def test_coverage_counts_digits_with_enough_confident_samples():
    digits = np.r_[np.zeros(50, int), np.ones(49, int), [2]]  # digit 2 has 1% of the samples
    predicted, confident = confident_digits(logits_for(digits))
    assert digit_coverage(predicted, confident, min_share=0.02) == 2
    predicted, confident = confident_digits(logits_for(digits, confident=False))
    assert digit_coverage(predicted, confident) == 0
    with pytest.raises(ValueError, match="predicted"):
        digit_coverage(np.zeros(3, int), np.ones(2, bool))


def test_diversity_ratio_is_one_for_real_data_and_near_zero_for_a_collapsed_generator():
    rng = np.random.default_rng(0)
    digits = np.repeat(np.arange(10), 20)
    real = rng.standard_normal((200, 8))
    collapsed = np.repeat(real[::20], 20, axis=0) + 1e-3 * rng.standard_normal((200, 8))  # one glyph per digit
    assert within_digit_diversity(real, logits_for(digits), real, digits) == pytest.approx(1.0)
    assert within_digit_diversity(collapsed, logits_for(digits), real, digits) < 0.01
    assert np.isnan(within_digit_diversity(real, logits_for(digits, confident=False), real, digits))
