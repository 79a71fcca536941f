"""New concepts for fine-tuning: shapes the Shapes data never shows, drawn in its style.

DreamBooth (Ruiz et al. 2022) teaches a trained text-to-image model one new subject from a
handful of pictures, bound to a rare word ("a sks shape"). Here the subject is a five-pointed
star (or a ring), drawn exactly as tinydiff.data.shapes draws its circles: a flat named colour
on black, in a 2h x 2h box (h = HALF_EXTENT of its size) at one of the 3x3 grid positions with
a jitter of -1, 0 or +1 px, anti-aliased by area (Pillow fills the polygon at SUPERSAMPLE times
the resolution, and each pixel keeps the share of its sub-pixels inside).

Geometry of the star, in units of the box's half-extent h, y pointing down:

    outer points  R (sin(72 k deg), -cos(72 k deg)),  k = 0..4   (one point straight up)
    inner points  r (sin(72 k + 36 deg), -cos(72 k + 36 deg)),  r = STAR_INNER_RATIO * R
    R = 1 / sin(72 deg)   so that the star's width is exactly 2h, like the other shapes;
    its height R (1 + cos 36 deg) = 1.902 h; it is centred in the box.

A star's points are thin: at 32 px a small star (h = 4) is 8 px wide, so its points are one
or two pixels. The shipped VAE must reconstruct the concept before a model can learn it from
latents; benchmarks/bench_dreambooth.py measures that (template IoU of reconstructions).

Instance images: INSTANCE_SPECS, four (colour, size, row, col) tuples that never show blue and
never the bottom right, so that "a blue sks shape at the bottom right" asks for a combination
the instance images do not hold (text control, measured by tinydiff.metrics.concept).
"""

import numpy as np
from PIL import Image, ImageDraw

from tinydiff.data.checks import check_int, to_signed_unit
from tinydiff.data.shapes import (BASE_SIZE, COLOUR_NAMES, COLOURS, HALF_EXTENT, JITTER, SIDES, SIZES,
                                  ShapeLabels, centres)

CONCEPTS = ("star", "ring")
STAR_INNER_RATIO = 0.5  # r / R; a regular pentagram has 0.382, too thin for 4x-downsampled latents
RING_INNER_RATIO = 0.5  # inner / outer radius of the ring
SUPERSAMPLE = 16  # Pillow fills the pixels its edges touch: at 16x that adds under 2% of the area
# (colour, size, row, col) of the four instance images: no blue, no bottom right
INSTANCE_SPECS = (("red", "large", 1, 1), ("green", "medium", 0, 0), ("yellow", "large", 2, 0),
                  ("magenta", "medium", 0, 2))


def _check_concept(concept):
    if concept not in CONCEPTS:
        raise ValueError(f"concept: expected one of {CONCEPTS}, got {concept!r}")
    return concept


def star_polygon(cx, cy, h):
    """The 10 vertices [(x, y), ...] of an upright five-pointed star whose bounding box is
    2h wide and centred at (cx, cy) (see the module docstring)."""
    big = h / np.sin(np.radians(72.0))
    small = STAR_INNER_RATIO * big
    height = big * (1.0 + np.cos(np.radians(36.0)))
    centre_y = cy - height / 2 + big  # the star's centre sits R below the top of its box
    points = []
    for k in range(10):
        radius = big if k % 2 == 0 else small
        angle = np.radians(36.0 * k)
        points.append((cx + radius * np.sin(angle), centre_y - radius * np.cos(angle)))
    return points


def concept_coverage(concept, side, cx, cy, h):
    """The share (side, side) float64 in [0, 1] of each pixel inside the concept drawn in a
    2h-wide box centred at (cx, cy) (pixels; 0 = the image's left/top edge)."""
    _check_concept(concept)
    k = SUPERSAMPLE
    # only the pixels of the 2h x 2h box can be covered: draw just those (as ShapeDataset samples them)
    x0, x1 = max(0, int(np.floor(cx - h))), min(side, int(np.ceil(cx + h)))
    y0, y1 = max(0, int(np.floor(cy - h))), min(side, int(np.ceil(cy + h)))
    cover = np.zeros((side, side))
    if x1 <= x0 or y1 <= y0:
        return cover
    canvas = Image.new("L", ((x1 - x0) * k, (y1 - y0) * k), 0)
    draw = ImageDraw.Draw(canvas)

    def at(x, y):  # image pixels -> canvas sub-pixels; Pillow's sub-pixel i is centred at i, ours at i + 1/2
        return (x - x0) * k - 0.5, (y - y0) * k - 0.5

    if concept == "star":
        draw.polygon([at(x, y) for x, y in star_polygon(cx, cy, h)], fill=255)
    else:
        for radius, value in ((h, 255), (RING_INNER_RATIO * h, 0)):
            draw.ellipse([*at(cx - radius, cy - radius), *at(cx + radius, cy + radius)], fill=value)
    fine = np.asarray(canvas, dtype=np.float64) / 255.0  # ((y1 - y0) k, (x1 - x0) k)
    cover[y0:y1, x0:x1] = fine.reshape(y1 - y0, k, x1 - x0, k).mean(axis=(1, 3))  # -> (y1 - y0, x1 - x0)
    return cover


def concept_template(concept, side, cx, cy, h):
    """Boolean mask (side, side) of the pixels covered more than half by the concept drawn in a
    2h-wide box centred at (cx, cy): what tinydiff.metrics.concept fits to a sample's blob
    (pixelised exactly as the instance images are, so a drawn concept matches it with IoU 1)."""
    return concept_coverage(concept, side, cx, cy, h) > 0.5


def render_concept(concept, colour, size, row, col, jitter=(0, 0), image_size=32):
    """One image (3, S, S) float32 in [-1, 1] (background -1) of the concept.

    Parameters
    ----------
    concept : str, one of CONCEPTS
    colour : str, a name of COLOURS;  size : str, one of SIZES
    row, col : int in 0..2, the 3x3 grid cell (Shapes' positions)
    jitter : (dx, dy), ints in -JITTER..JITTER, in px at 32 px
    image_size : int, one of 16, 32, 64
    """
    _check_concept(concept)
    if colour not in COLOURS:
        raise ValueError(f"colour: expected one of {COLOUR_NAMES}, got {colour!r}")
    if size not in SIZES:
        raise ValueError(f"size: expected one of {SIZES}, got {size!r}")
    for name, value in (("row", row), ("col", col)):
        check_int(value, name, minimum=0)
        if value > 2:
            raise ValueError(f"{name}: expected 0, 1 or 2, got {value}")
    if image_size not in SIDES:
        raise ValueError(f"image_size: expected one of {SIDES}, got {image_size!r}")
    if any(abs(int(j)) > JITTER for j in jitter):
        raise ValueError(f"jitter: expected two ints in -{JITTER}..{JITTER}, got {jitter!r}")
    s = SIZES.index(size)
    grid, step = centres(image_size), max(1, image_size // BASE_SIZE)
    h = HALF_EXTENT[s] * image_size / BASE_SIZE
    cx, cy = grid[s, col] + jitter[0] * step, grid[s, row] + jitter[1] * step
    cover = concept_coverage(concept, image_size, cx, cy, h)
    rgb = np.rint(cover[:, :, None] * np.array(COLOURS[colour], dtype=np.float64)).astype(np.uint8)  # (S, S, 3)
    return to_signed_unit(rgb.transpose(2, 0, 1)[None])[0]  # (S, S, 3) -> (3, S, S)


def concept_images(concept, specs, rng=None, image_size=32):
    """Images (N, 3, S, S) float32 and their ShapeLabels (shape = -1: not a Shapes shape) for
    the (colour, size, row, col) specs, each jittered from `rng` (no jitter without one)."""
    images, attrs = [], []
    for colour, size, row, col in specs:
        jitter = (0, 0) if rng is None else tuple(int(j) for j in rng.integers(-JITTER, JITTER + 1, size=2))
        images.append(render_concept(concept, colour, size, row, col, jitter, image_size))
        step = max(1, image_size // BASE_SIZE)
        grid = centres(image_size)
        s = SIZES.index(size)
        attrs.append((-1, COLOUR_NAMES.index(colour), s, row, col,
                      grid[s, col] + jitter[0] * step, grid[s, row] + jitter[1] * step))
    a = np.array(attrs, dtype=np.float64).reshape(-1, 7)
    ints = a[:, :5].astype(np.int64)
    return np.stack(images).astype(np.float32), ShapeLabels(*ints.T, a[:, 5].copy(), a[:, 6].copy())


def instance_images(concept="star", seed=0, image_size=32):
    """The four instance images of DreamBooth (INSTANCE_SPECS, jitter keyed by seed) and their labels."""
    return concept_images(concept, INSTANCE_SPECS, np.random.default_rng((seed, 41)), image_size)


def random_concept_images(concept, count, seed, image_size=32):
    """`count` images of the concept with uniform colour, size, position and jitter, keyed by
    (seed, 43): what the VAE reconstruction check encodes and decodes."""
    rng = np.random.default_rng((seed, 43))
    specs = [(COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], SIZES[rng.integers(len(SIZES))],
              int(rng.integers(3)), int(rng.integers(3))) for _ in range(count)]
    return concept_images(concept, specs, rng, image_size)
