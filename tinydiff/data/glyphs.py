"""Glyphs: MNIST-like images of the digits 0-9, rendered on the fly from Pillow's built-in font.

Nothing is downloaded: Pillow (>= 10.1) ships a FreeType font (Aileron) behind
`ImageFont.load_default(size=...)`. Each digit is drawn once per stroke width as a large
"master" glyph; every image is then one affine warp of a master (random scale, rotation and
shift) followed by a box-filter reduction to the output size, so a batch costs no font work.

The data set is endless and random-access: image `i` is drawn from its own random stream,
seeded by (seed, i), so `GlyphDataset(seed=0).get([5])` is the same image whether it is asked
for alone, in a batch, today or after a resumed training run.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tinydiff.data.checks import check_int, check_seed
from tinydiff.data.checks import to_signed_unit
from tinydiff.data.endless import EndlessDataset

MASTER_FONT_SIZE = 64  # px; the digits are about 47 px tall at this size
RENDER_SIZE = 64  # px; images are warped at this size, then reduced to `size`


class GlyphDataset(EndlessDataset):
    """Endless, reproducible MNIST-like digits: white strokes on black, 0-9 equally likely.

    Parameters
    ----------
    seed : int
        Keys every image (EndlessDataset).
    size : int
        Output height and width in pixels (8..64); 32 by default.
    height_range : (float, float)
        Digit height as a fraction of the image side, drawn uniformly (MNIST: about 0.7).
    max_rotation : float
        Rotation in degrees, drawn uniformly from [-max_rotation, max_rotation].
    max_shift : float
        Shift of the digit's centre, as a fraction of the image side, per axis, uniform in
        [-max_shift, max_shift].
    stroke_widths : sequence of int
        Extra outline, in pixels of the 64 px master glyph, drawn uniformly from this list;
        0 is the font's regular weight (thin at 32 px), 3 is about bold.

    With the defaults every digit stays inside the frame with at least one background pixel
    on each border (the tests check this).

    Examples
    --------
    >>> images, labels = GlyphDataset(seed=0)[0:64]   # (64, 1, 32, 32) float32, (64,) int64
    """

    def __init__(self, seed=0, size=32, height_range=(0.5, 0.72), max_rotation=15.0,
                 max_shift=0.06, stroke_widths=(1, 2, 3)):
        self.seed = check_seed(seed)
        self.size = check_int(size, "size", minimum=8)
        if self.size > RENDER_SIZE:
            raise ValueError(f"size: expected at most {RENDER_SIZE}, got {size}")
        lo, hi = (float(v) for v in height_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"height_range: expected 0 < low <= high <= 1, got {height_range}")
        self.height_range = (lo, hi)
        if not 0.0 <= max_rotation <= 180.0:
            raise ValueError(f"max_rotation: expected degrees in [0, 180], got {max_rotation}")
        self.max_rotation = float(max_rotation)
        if not 0.0 <= max_shift <= 0.5:
            raise ValueError(f"max_shift: expected a fraction in [0, 0.5], got {max_shift}")
        self.max_shift = float(max_shift)
        self.stroke_widths = tuple(check_int(w, "stroke_widths", 0) for w in stroke_widths)
        if not self.stroke_widths:
            raise ValueError("stroke_widths: expected at least one width, got an empty list")
        # Caches owned by this object (no module globals): fonts by size, masters by
        # (digit, stroke width).
        self._fonts = {}
        self._masters = {}

    # ---- rendering ------------------------------------------------------------------------
    def _font(self, font_size):
        if font_size not in self._fonts:
            font = ImageFont.load_default(size=font_size)
            if not isinstance(font, ImageFont.FreeTypeFont):
                raise RuntimeError(
                    "GlyphDataset needs Pillow >= 10.1 built with FreeType, so that "
                    "ImageFont.load_default(size=...) returns a scalable font; got "
                    f"{type(font).__name__}"
                )
            self._fonts[font_size] = font
        return self._fonts[font_size]

    def _master(self, digit, stroke):
        """The digit drawn once, large, cropped to its ink: (image, centre x, centre y, height)."""
        key = (digit, stroke)
        if key not in self._masters:
            font = self._font(MASTER_FONT_SIZE)
            side = 2 * MASTER_FONT_SIZE
            canvas = Image.new("L", (side, side), 0)
            ImageDraw.Draw(canvas).text(
                (side // 4, side // 8), str(digit), font=font, fill=255,
                stroke_width=stroke, stroke_fill=255,
            )
            left, top, right, bottom = canvas.getbbox()
            self._masters[key] = (canvas, (left + right) / 2, (top + bottom) / 2, bottom - top)
        return self._masters[key]

    def _render_one(self, index):
        rng = np.random.default_rng((self.seed, int(index)))
        digit = int(rng.integers(10))
        stroke = self.stroke_widths[int(rng.integers(len(self.stroke_widths)))]
        height = rng.uniform(*self.height_range)
        angle = math.radians(rng.uniform(-self.max_rotation, self.max_rotation))
        shift_x, shift_y = rng.uniform(-self.max_shift, self.max_shift, size=2) * RENDER_SIZE

        master, cx, cy, ink_height = self._master(digit, stroke)
        scale = height * RENDER_SIZE / ink_height
        # Pillow's AFFINE transform maps each output pixel (x, y) back to the master:
        # master = centre + R(-angle) (out - out_centre) / scale, the inverse of
        # out = out_centre + scale R(angle) (master - centre).
        ox, oy = RENDER_SIZE / 2 + shift_x, RENDER_SIZE / 2 + shift_y
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        a, b, d, e = cos, sin, -sin, cos
        coeffs = (a, b, cx - a * ox - b * oy, d, e, cy - d * ox - e * oy)
        warped = master.transform((RENDER_SIZE, RENDER_SIZE), Image.Transform.AFFINE, coeffs,
                                  resample=Image.Resampling.BILINEAR)
        if RENDER_SIZE % self.size == 0:
            small = warped.reduce(RENDER_SIZE // self.size)  # box filter: area average
        else:
            small = warped.resize((self.size, self.size), Image.Resampling.BOX)
        return np.asarray(small), digit

    # ---- access ---------------------------------------------------------------------------
    def render(self, idx):
        """The glyphs with the indices idx (N,), checked by get(indices), which callers use:
        images (N, 1, H, W) float32, background -1 and ink +1 (anti-aliased edges in between),
        and labels (N,) int64, the digit 0-9 in each image."""
        pixels = np.empty((idx.size, self.size, self.size), dtype=np.uint8)
        labels = np.empty(idx.size, dtype=np.int64)
        for row, index in enumerate(idx):
            pixels[row], labels[row] = self._render_one(index)
        return to_signed_unit(pixels)[:, None], labels  # (N, H, W) -> (N, 1, H, W)

    def indices_with_labels(self, labels, start=0):
        """Indices of glyphs showing the digits `labels`, in that order: for each requested
        digit the next unused index from `start` on that has it. Real glyphs with exactly the
        classes a class-conditional model was asked for, so that the two sets compare without
        the noise of random class proportions. Costs no rendering (the digit is the first
        draw of each glyph's generator)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or \
                (labels.size and (labels.min() < 0 or labels.max() > 9)):
            raise ValueError(f"labels: expected a 1-D array of digits 0-9, got {labels!r}")
        waiting = {int(d): list(np.flatnonzero(labels == d)) for d in np.unique(labels)}
        out = np.empty(labels.size, dtype=np.int64)
        index = start
        while any(waiting.values()):
            digit = int(np.random.default_rng((self.seed, index)).integers(10))  # as in _render_one
            if waiting.get(digit):
                out[waiting[digit].pop(0)] = index
            index += 1
        return out

    def __repr__(self):
        return f"GlyphDataset(seed={self.seed}, size={self.size})"
