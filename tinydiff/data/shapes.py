"""Shapes: a circle, square or triangle of a named colour, size and position on black.

Every image carries its attributes as exact ground truth (the renderer draws from them, and
`read_shapes` recovers them from the pixels) and as a caption such as
"a small red circle at the top left" — the smallest data set on which conditioning on
classes or text can be checked attribute by attribute.

Geometry, in pixels of a 32 px image (scaled with `size`): a shape of half-extent h
(small 4, medium 6, large 8) has a 2h x 2h bounding box whose centre sits, per axis, at
2 + h (left/top), 16 (centre/middle) or 30 - h (right/bottom), moved by a jitter of
-1, 0 or +1 px per axis (kept to whole pixels: 1 px at size 16, 2 px at size 64). A circle
fills pi/4 of its box, a square all of it, an upright triangle half. Each pixel's value is
the share of its 4x4 sample points inside the shape, so edges are anti-aliased and areas
come out right (to about 1%).

Image i comes from np.random.default_rng((seed, i)): endless, random-access, reproducible.
"""

from dataclasses import dataclass

import numpy as np

from tinydiff.data.checks import check_int, check_seed
from tinydiff.data.checks import to_signed_unit
from tinydiff.data.endless import EndlessDataset

SHAPES = ("circle", "square", "triangle")
COLOURS = {  # name -> RGB 0..255, all far from the black background and from each other
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "medium", "large")
HALF_EXTENT = (4, 6, 8)  # px at 32 px, per entry of SIZES
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")
MARGIN = 2  # px at 32 px between the frame and a shape placed at an edge
JITTER = 1  # the centre moves by -JITTER, 0 or +JITTER px per axis (at 32 px)
SUPERSAMPLE = 4
BASE_SIZE = 32


def position_phrase(row, col):
    """Where a shape is, in words: (0, 0) -> 'at the top left', (1, 1) -> 'in the centre'."""
    if (row, col) == (1, 1):
        return "in the centre"
    if row == 1:
        return f"on the {COLUMNS[col]}"
    if col == 1:
        return f"at the {ROWS[row]}"
    return f"at the {ROWS[row]} {COLUMNS[col]}"


def caption(shape, colour, size, row, col):
    """'a small red circle at the top left' from the attribute indices."""
    return (f"a {SIZES[size]} {COLOUR_NAMES[colour]} {SHAPES[shape]} "
            f"{position_phrase(row, col)}")


@dataclass
class ShapeLabels:
    """Attributes of N shape images; index arrays point into SHAPES, COLOUR_NAMES, SIZES,
    ROWS and COLUMNS.

    Attributes
    ----------
    shape, colour, size, row, col : ndarray, shape (N,), int64
    x, y : ndarray, shape (N,), float64
        Centre of the shape's bounding box in pixels (0 = left/top edge of the image).
    """

    shape: np.ndarray
    colour: np.ndarray
    size: np.ndarray
    row: np.ndarray
    col: np.ndarray
    x: np.ndarray
    y: np.ndarray

    FIELDS = ("shape", "colour", "size", "row", "col", "x", "y")

    def __len__(self):
        return len(self.shape)

    def __getitem__(self, index):
        """Select images like an array: labels[idx] keeps the fields aligned."""
        return ShapeLabels(*(np.atleast_1d(getattr(self, f)[index]) for f in self.FIELDS))

    @property
    def position(self):
        """Row-major cell of the 3x3 grid, 0 (top left) .. 8 (bottom right), shape (N,)."""
        return self.row * 3 + self.col

    @property
    def captions(self):
        """One caption per image, e.g. 'a large blue square on the right'."""
        return [caption(*v) for v in zip(self.shape, self.colour, self.size, self.row, self.col)]

    def as_dict(self):
        """The fields as a plain dict of arrays (e.g. to save next to the images)."""
        return {f: getattr(self, f) for f in self.FIELDS}


SIDES = (16, 32, 64)  # image sides on which every edge of the geometry lands on a pixel border


def _check_size(size):
    size = check_int(size, "size", minimum=1)
    if size not in SIDES:
        raise ValueError(f"size: expected one of {SIDES}, got {size}")
    return size


def centres(size):
    """Centre coordinates per (size class, row or column), in pixels, shape (3, 3)."""
    k = size / BASE_SIZE
    h = np.array(HALF_EXTENT, dtype=np.float64)[:, None] * k
    edge_near = MARGIN * k + h
    edge_far = size - MARGIN * k - h
    return np.concatenate([edge_near, np.full_like(h, size / 2), edge_far], axis=1)


FILL_RATIO = (np.pi / 4, 1.0, 0.5)  # area / bounding-box area per entry of SHAPES


def read_shapes(images):
    """Recover the attributes of shape images from their pixels (the renderer's inverse).

    On images from ShapeDataset it returns their labels exactly (the tests check this); on a
    model's samples it reads what a person would see, so it can score conditional samples.

    Parameters
    ----------
    images : ndarray, shape (N, 3, H, W)
        In [-1, 1] with a black (-1) background, H = W one of 16, 32, 64.

    Returns
    -------
    ShapeLabels
        The nearest named attribute for each image. An image with no pixel brighter than
        mid-grey gets -1 in every index field and NaN coordinates.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images: expected shape (N, 3, H, H), got {images.shape}")
    side = _check_size(images.shape[2])
    grid = centres(side)
    palette = np.array(list(COLOURS.values()), dtype=np.float64) / 255.0  # (K, 3)
    out = np.full((len(images), 7), np.nan)
    for n, img in enumerate(images):
        rgb = np.clip((img.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)  # (3, H, W) in [0, 1]
        brightness = rgb.max(axis=0)
        if brightness.max() <= 0.5:
            continue
        # Interior pixels carry the pure colour; edges are that colour blended with black.
        interior = rgb[:, brightness >= 0.9 * brightness.max()].mean(axis=1)
        colour = int(np.argmin(((palette - interior) ** 2).sum(axis=1)))
        c = palette[colour]
        coverage = np.clip(np.einsum("chw,c->hw", rgb, c) / (c @ c), 0.0, 1.0)
        rows = np.flatnonzero((coverage > 0.5).any(axis=1))
        cols = np.flatnonzero((coverage > 0.5).any(axis=0))
        if rows.size == 0:
            continue
        # The longer side of the half-covered box is the shape's side (a triangle's apex
        # and a circle's rim may fall below half coverage, its widest line does not).
        extent = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]) * BASE_SIZE / side
        size = int(np.argmin(np.abs(2 * np.array(HALF_EXTENT) - extent)))
        half = HALF_EXTENT[size] * side / BASE_SIZE
        area = coverage.sum()
        shape = int(np.argmin(np.abs(np.array(FILL_RATIO) - area / (2 * half) ** 2)))
        # Box centre from the centre of mass: a triangle's lies h/3 below its box centre.
        y = (coverage.sum(axis=1) @ (np.arange(side) + 0.5)) / area
        x = (coverage.sum(axis=0) @ (np.arange(side) + 0.5)) / area
        if SHAPES[shape] == "triangle":
            y -= half / 3
        row = int(np.argmin(np.abs(grid[size] - y)))
        col = int(np.argmin(np.abs(grid[size] - x)))
        out[n] = (shape, colour, size, row, col, x, y)
    ints = np.where(np.isnan(out[:, :5]), -1, out[:, :5]).astype(np.int64)
    return ShapeLabels(*ints.T, out[:, 5].copy(), out[:, 6].copy())


class ShapeDataset(EndlessDataset):
    """Endless, reproducible 32x32 (or `size`) RGB images of one coloured shape each.

    Parameters
    ----------
    seed : int
        Keys every image (EndlessDataset).
    size : int
        Image side in pixels: 16, 32 or 64; the geometry scales with it.

    All attributes are drawn independently and uniformly: 3 shapes x 7 colours x 3 sizes x
    9 positions = 567 combinations, each also with 9 jitters.
    """

    def __init__(self, seed=0, size=32):
        self.seed = check_seed(seed)
        self.size = _check_size(size)
        self._centres = centres(self.size)
        # Centres of the sub-pixel sample points along one axis, in pixels.
        self._subpixels = (np.arange(self.size * SUPERSAMPLE) + 0.5) / SUPERSAMPLE

    def _draw_attributes(self, index):
        rng = np.random.default_rng((self.seed, int(index)))
        shape, colour, size, row, col = (int(v) for v in rng.integers(
            0, (len(SHAPES), len(COLOURS), len(SIZES), len(ROWS), len(COLUMNS))))
        # Whole output pixels, so that edges stay on the pixel grid at every size.
        step = max(1, self.size // BASE_SIZE)
        jx, jy = rng.integers(-JITTER, JITTER + 1, size=2) * step
        x = self._centres[size, col] + jx
        y = self._centres[size, row] + jy
        return shape, colour, size, row, col, x, y

    def _render_one(self, shape, colour, size, x, y):
        """The shape as the set of points it contains, sampled at SUPERSAMPLE^2 points per
        pixel; a pixel's coverage is the share of its points inside. Returns (H, W, 3) uint8."""
        n, k = self.size, SUPERSAMPLE
        h = HALF_EXTENT[size] * n / BASE_SIZE
        # Only the pixels of the bounding box can be covered: sample just those.
        x0, x1 = max(0, int(np.floor(x - h))), min(n, int(np.ceil(x + h)))
        y0, y1 = max(0, int(np.floor(y - h))), min(n, int(np.ceil(y + h)))
        du = (self._subpixels[x0 * k:x1 * k] - x)[None, :] / h  # (1, w*k), in half-extents
        dv = (self._subpixels[y0 * k:y1 * k] - y)[:, None] / h  # (h*k, 1)
        if SHAPES[shape] == "circle":
            inside = du**2 + dv**2 <= 1.0
        elif SHAPES[shape] == "square":
            inside = (np.abs(du) <= 1.0) & (np.abs(dv) <= 1.0)
        else:  # upright triangle: apex at the top middle, base along the bottom edge
            inside = (dv <= 1.0) & (2.0 * np.abs(du) <= dv + 1.0)
        coverage = np.zeros((n, n))
        counts = inside.reshape(y1 - y0, k, x1 - x0, k).sum(axis=(1, 3))  # (h*k, w*k) -> (h, w)
        coverage[y0:y1, x0:x1] = counts / k**2
        rgb = np.array(COLOURS[COLOUR_NAMES[colour]], dtype=np.float64)
        return np.rint(coverage[:, :, None] * rgb).astype(np.uint8)  # (H, W, 3)

    def render(self, idx):
        """The images with the indices idx (N,), checked by get(indices), which callers use:
        images (N, 3, H, W) float32 in [-1, 1], the background -1 in every channel, and their
        ShapeLabels, the attributes of each image (and `.captions`)."""
        pixels = np.empty((idx.size, self.size, self.size, 3), dtype=np.uint8)
        attrs = np.empty((idx.size, 7), dtype=np.float64)
        for n, index in enumerate(idx):
            attrs[n] = self._draw_attributes(index)
            shape, colour, size, _, _, x, y = attrs[n]
            pixels[n] = self._render_one(int(shape), int(colour), int(size), x, y)
        ints = attrs[:, :5].astype(np.int64)
        labels = ShapeLabels(*ints.T, attrs[:, 5].copy(), attrs[:, 6].copy())
        pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))  # (N, H, W, 3) -> (N, 3, H, W)
        return to_signed_unit(pixels), labels

    def __repr__(self):
        return f"ShapeDataset(seed={self.seed}, size={self.size})"
