"""The shape-validity checks accept every real Shapes image with its true shape and colour,
and reject what a generator gets wrong: two shapes, stray marks, off-palette or mottled
colour, blobs that are no circle/square/triangle; the sharpness ratio sees blur."""

import numpy as np
from scipy import ndimage

from tinydiff.data import ShapeDataset
from tinydiff.metrics.shapes_quality import high_frequency_energy, shape_checks, shapes_quality


def real(n=300, seed=4):
    return ShapeDataset(seed=seed)[0:n]


def test_real_images_are_all_valid_with_their_true_attributes():
    images, labels = real()
    checks = shape_checks(images)
    assert checks.valid.all()
    np.testing.assert_array_equal(checks.shape, labels.shape)
    np.testing.assert_array_equal(checks.colour, labels.colour)
    assert shapes_quality(images, images)["sharpness_ratio"] == 1.0


def test_each_defect_is_caught_by_its_check():
    images, labels = real(60)
    small = labels.size == 0
    two = images.copy()
    two[:, :, 0:3, 0:3] = images[:, :, 14:17, 14:17].max()  # a second bright mark in the corner
    subset = two[small & (labels.row > 0)]
    assert len(subset) >= 5 and not shape_checks(subset).one_shape.any()

    haze = images.copy()
    haze[:, 0] = np.maximum(haze[:, 0], -0.4)  # a dim red veil over the background
    assert not shape_checks(haze).clean.any()

    brown = images.copy()
    brown[:, 0] = np.where(images.max(axis=1) > 0, 0.2, -1.0)  # every shape recoloured (0.6, 0.5, 0.5)
    brown[:, 1:] = np.where(images.max(axis=1, keepdims=True) > 0, 0.0, -1.0)
    assert not shape_checks(brown).named_colour.any()

    blob = -np.ones((1, 3, 32, 32), np.float32)
    yy, xx = np.mgrid[0:32, 0:32]
    blob[0, 0][(np.abs(yy - 16) + np.abs(xx - 16)) <= 8] = 1.0  # a diamond: none of the three
    assert not shape_checks(blob).is_shape[0]


def test_noise_is_invalid_and_blur_lowers_sharpness():
    images, _ = real(100)
    noise = np.random.default_rng(0).uniform(-1, 1, images.shape)
    assert shapes_quality(noise, images)["valid"] == 0.0
    assert high_frequency_energy(noise) > 10 * high_frequency_energy(images)
    blurred = ndimage.gaussian_filter(images, sigma=(0, 0, 1.0, 1.0))
    score = shapes_quality(blurred, images)
    assert score["sharpness_ratio"] < 0.5
