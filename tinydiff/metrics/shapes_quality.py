"""Is a sample a valid Shapes image, and is it as sharp as the real ones? Measured from the
pixels against what the Shapes renderer (tinydiff.data.shapes) can draw:

    one shape     the bright pixels (max channel > 1/2 on the [0, 1] scale) form one
                  8-connected blob holding >= 95% of them
    clean         outside the blob's bounding box grown by 2 px, under 1% of pixels are
                  brighter than 1/4 (no stray marks, no haze)
    named colour  the blob's interior (its brightest pixels) is within 0.25 (RGB distance on
                  the [0, 1] scale) of one of the 7 named colours, and uniform (std <= 0.12)
    a shape       the pixels covered more than half by that colour match a circle, square or
                  upright triangle drawn in their bounding box (intersection over union >= 0.75,
                  best of the three), and the box is about square (sides within 25%)

A sample is valid when all four hold. Sharpness is the mean squared discrete Laplacian (the
energy of the highest spatial frequencies) relative to real images: a blurry decoder gives a
ratio below 1, noise gives one above 1.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tinydiff.data.shapes import COLOURS, SHAPES
from tinydiff.metrics.checks import check_images

PALETTE = np.array(list(COLOURS.values()), dtype=np.float64) / 255.0  # (K, 3)
MIN_IOU, MAX_COLOUR_ERROR, MAX_COLOUR_STD = 0.75, 0.25, 0.12


@dataclass
class ShapeChecks:
    """Per-image results of shape_checks, arrays of shape (N,); shape and colour index SHAPES
    and COLOURS (-1 where nothing was found)."""

    valid: np.ndarray
    one_shape: np.ndarray
    clean: np.ndarray
    named_colour: np.ndarray
    is_shape: np.ndarray
    shape: np.ndarray
    colour: np.ndarray
    iou: np.ndarray


def templates(height, width):
    """Boolean masks (3, height, width) of a circle, square and upright triangle filling a
    height x width box, sampled at pixel centres."""
    v = (np.arange(height) + 0.5) / height * 2.0 - 1.0  # -1 (top) .. 1 (bottom)
    u = (np.arange(width) + 0.5) / width * 2.0 - 1.0
    dv, du = v[:, None], u[None, :]
    circle = du**2 + dv**2 <= 1.0
    square = np.ones((height, width), dtype=bool)
    triangle = 2.0 * np.abs(du) <= dv + 1.0
    return np.stack([circle, square, triangle])


def check_one(img):
    """(one_shape, clean, named_colour, is_shape, shape, colour, iou) for one image (3, H, W)."""
    rgb = np.clip((img.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
    bright = rgb.max(axis=0)
    mask = bright > 0.5
    if mask.sum() < 4:
        return False, False, False, False, -1, -1, 0.0
    blobs, count = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(blobs.ravel())[1:]
    main = blobs == (np.argmax(sizes) + 1)
    one_shape = sizes.max() >= 0.95 * mask.sum()

    rows, cols = np.flatnonzero(main.any(axis=1)), np.flatnonzero(main.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    outside = np.ones_like(mask)
    outside[max(0, r0 - 2):r1 + 2, max(0, c0 - 2):c1 + 2] = False
    clean = (bright[outside] > 0.25).mean() < 0.01 if outside.any() else True

    interior = main & (bright >= 0.9 * bright[main].max())
    pixels = rgb[:, interior]  # (3, M)
    mean = pixels.mean(axis=1)
    errors = np.sqrt(((PALETTE - mean) ** 2).sum(axis=1))
    colour = int(np.argmin(errors))
    named_colour = errors[colour] <= MAX_COLOUR_ERROR and pixels.std(axis=1).max() <= MAX_COLOUR_STD

    c = PALETTE[colour]
    covered = np.einsum("chw,c->hw", rgb, c) / (c @ c) > 0.5  # pixels more than half this colour
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = r1 - r0, c1 - c0
    box = covered[r0:r1, c0:c1]
    ious = [(box & t).sum() / (box | t).sum() for t in templates(h, w)]
    shape = int(np.argmax(ious))
    is_shape = ious[shape] >= MIN_IOU and max(h, w) <= 1.25 * min(h, w)
    return one_shape, clean, named_colour, is_shape, shape, colour, float(ious[shape])


def shape_checks(images):
    """Run the four checks on every image.

    Parameters
    ----------
    images : ndarray, shape (N, 3, H, W)
        In [-1, 1] with a black (-1) background, like ShapeDataset's.

    Returns
    -------
    ShapeChecks
    """
    images = check_images(images, "images", channels=3)
    rows = [check_one(img) for img in images]
    one, clean, named, is_shape, shape, colour, iou = (np.array(v) for v in zip(*rows))
    valid = one & clean & named & is_shape
    return ShapeChecks(valid, one, clean, named, is_shape, np.where(valid, shape, -1), np.where(valid, colour, -1), iou)


def high_frequency_energy(images):
    """Mean squared 5-point Laplacian per pixel and channel (edges replicated): the energy of
    the highest spatial frequencies. images (N, C, H, W) -> float."""
    x = np.asarray(images, dtype=np.float64)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    lap = p[:, :, :-2, 1:-1] + p[:, :, 2:, 1:-1] + p[:, :, 1:-1, :-2] + p[:, :, 1:-1, 2:] - 4.0 * x
    return float(np.mean(lap**2))


def shapes_quality(samples, real):
    """Summary of samples against real Shapes images: the share of valid samples (and of each
    check), the shape and colour histograms of the valid ones, and the sharpness ratio
    high_frequency_energy(samples) / high_frequency_energy(real).

    samples and real: (N, 3, H, W) in [-1, 1], at least one image each, all finite."""
    samples = check_images(samples, "samples", channels=3)
    real = check_images(real, "real", channels=3, bounded=True)
    real_energy = high_frequency_energy(real)
    if real_energy == 0:
        raise ValueError("real: every image is flat (no edges), so the sharpness ratio is undefined; "
                         "expected real Shapes images")
    checks = shape_checks(samples)
    return {
        "valid": float(checks.valid.mean()),
        "one_shape": float(checks.one_shape.mean()),
        "clean": float(checks.clean.mean()),
        "named_colour": float(checks.named_colour.mean()),
        "is_shape": float(checks.is_shape.mean()),
        "shape_histogram": {name: int((checks.shape == i).sum()) for i, name in enumerate(SHAPES)},
        "colour_histogram": {name: int((checks.colour == i).sum()) for i, name in enumerate(COLOURS)},
        "sharpness_ratio": high_frequency_energy(np.clip(samples, -1, 1)) / real_energy,
    }
