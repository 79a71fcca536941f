"""Modes covered and high-quality share on gaussians8: the centres match the data's, the data
itself scores 8 modes and 1 - exp(-9/2) near modes, and a collapsed sampler is caught."""

import math

import numpy as np
import pytest

from tinydiff.data import gaussians8
from tinydiff.metrics.modes import gaussians8_coverage, gaussians8_modes, mode_coverage


@pytest.mark.parametrize("noise", [0.05, 0.1])  # modes far apart: nearest-centre assignment cuts no tail
def test_centres_and_sigma_are_the_data_s(noise):
    points = gaussians8(40000, np.random.default_rng(0), noise=noise).astype(np.float64)
    centres, sigma = gaussians8_modes(noise)
    nearest = np.linalg.norm(points[:, None] - centres[None], axis=2).argmin(axis=1)
    for k in range(8):
        mine = points[nearest == k]
        np.testing.assert_allclose(mine.mean(axis=0), centres[k], atol=4 * sigma / np.sqrt(len(mine)) + 1e-3)
        np.testing.assert_allclose(mine.std(axis=0), sigma, rtol=0.05)


def test_data_covers_every_mode_with_the_rayleigh_share():
    result = gaussians8_coverage(gaussians8(20000, np.random.default_rng(1)))
    assert result["modes_covered"] == 8
    expected = 1 - math.exp(-4.5)  # |x - mu| / sigma is Rayleigh in 2-D
    assert abs(result["high_quality_share"] - expected) < 3 * math.sqrt(expected * (1 - expected) / 20000)
    assert sum(result["counts"]) == round(result["high_quality_share"] * 20000)


def test_collapse_and_stray_samples_are_counted():
    rng = np.random.default_rng(2)
    centres, sigma = gaussians8_modes(0.1)
    collapsed = centres[[0, 3]][rng.integers(0, 2, 2500)] + sigma * rng.standard_normal((2500, 2))
    stray = np.zeros((500, 2))  # the ring's centre: far from every mode
    few = centres[5] + np.zeros((19, 2))  # 19 samples: under the 20 a mode needs
    result = mode_coverage(np.concatenate([collapsed, stray, few, [[np.nan, 0.0]]]), centres, sigma)
    assert result["modes_covered"] == 2
    assert result["counts"][5] == 19
    assert result["high_quality_share"] < 2519 / 3020 + 1e-9
    assert mode_coverage(few, centres, sigma, min_count=19)["modes_covered"] == 1


def test_bad_inputs_are_named():
    centres, sigma = gaussians8_modes()
    with pytest.raises(ValueError, match="samples and centres"):
        mode_coverage(np.zeros((3, 3)), centres, sigma)
    with pytest.raises(ValueError, match="sigma"):
        mode_coverage(np.zeros((3, 2)), centres, 0.0)
    with pytest.raises(ValueError, match="noise"):
        gaussians8_modes(-1)
