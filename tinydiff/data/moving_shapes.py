"""Moving Shapes: clips of F frames (default 8) in which one Shapes shape moves at constant
velocity, with a caption naming its motion: "a red circle moving right", "a small blue square
moving up slowly". The data set of text-to-video diffusion (issue 16, lesson 10).

Every frame is drawn by the Shapes renderer (tinydiff.data.shapes) from exact attributes, so
each clip carries its ground truth: shape, colour and size (constant), and the centre of the
shape's bounding box in every frame (ClipLabels.x, .y, shape (N, F)).

Motion, in pixels of a 32 px frame (scaled with `size`):

    direction   right, up, left, down (DIRECTIONS: unit steps in image coordinates, y down)
    speed       "slowly" = 1 px per frame, normal (no word) = 2 px per frame (SPEED_PX)
    path        x_f = x_0 + v_x f, y_f = y_0 + v_y f for frames f = 0 .. F-1

Without bouncing (the default) the start is drawn, in whole pixels, so that the whole path
stays inside the frame with a margin of 1 px: a large shape (half-extent 8) moving at 2 px
per frame for 7 steps crosses 14 of the 14 px its centre can reach. With bounce=True the start
is anywhere and the shape is reflected off the border (the path folds back; the caption keeps
the first direction).

Captions (caption_for): "a [size] {colour} {shape} moving {direction}[ slowly]", the size named
with probability p_size (default 1/2). The static part is written by
tinydiff.data.captions.write_caption, so "a small red circle" reads as in the still captions;
parse_motion_caption reads a caption back. The motion words MOTION_WORDS ("moving", "up",
"down", "slowly") are new to the still captions' tokenizer ("left" and "right" are already
there, as positions): add them with WordTokenizer.add_tokens and the text encoder's
resize_token_embeddings.

Clip i comes from np.random.default_rng((seed, 5, i)), its caption from (seed, 5, i, 1):
random access, reproducible; the (colour, shape) pairs are those of the captions' "train" split
(tinydiff.data.captions.HELD_OUT_PAIRS never appear), as the text-to-image model's training.
"""

from dataclasses import dataclass

import numpy as np

from tinydiff.data.captions import pairs_of, parse_caption, split_words, write_caption
from tinydiff.data.checks import check_indices, check_int, check_seed, slice_to_indices, to_signed_unit
from tinydiff.data.shapes import BASE_SIZE, COLOUR_NAMES, HALF_EXTENT, SHAPES, SIZES, ShapeDataset

DIRECTIONS = ("right", "up", "left", "down")
# unit step per direction in image coordinates (x right, y DOWN), and its angle in degrees
# measured counter-clockwise with y UP, as a person reads the picture
STEP = {"right": (1, 0), "up": (0, -1), "left": (-1, 0), "down": (0, 1)}
ANGLE = {"right": 0.0, "up": 90.0, "left": 180.0, "down": 270.0}
SPEEDS = ("slowly", "normal")
SPEED_PX = (1.0, 2.0)  # pixels per frame at 32 px, per entry of SPEEDS
SPEED_WORDS = ("slowly", None)  # the caption's word per entry of SPEEDS (normal says nothing)
MOTION_WORDS = ("moving", "up", "down", "slowly")  # the words still captions never use
EDGE_MARGIN = 1  # px at 32 px kept between a moving shape and the frame's edge
DEFAULT_FRAMES = 8


def caption_for(shape, colour, size, direction, speed, name_size=True):
    """'a small red circle moving up slowly' from attribute indices (shape into SHAPES, colour
    into COLOUR_NAMES, size into SIZES, direction into DIRECTIONS, speed into SPEEDS)."""
    named = {"shape": int(shape), "colour": int(colour)}
    if name_size:
        named["size"] = int(size)
    word = SPEED_WORDS[int(speed)]
    return f"{write_caption(named, 0)} moving {DIRECTIONS[int(direction)]}" + (f" {word}" if word else "")


def parse_motion_caption(text):
    """The attributes a clip caption names: parse_caption's (shape, colour, size, ...) for the
    words before "moving", plus "direction" (index into DIRECTIONS) and "speed" (index into
    SPEEDS: "slowly" -> 0, no speed word -> 1). A caption without "moving" names no motion.

    Raises ValueError for an unknown word, two directions, or a motion word out of place."""
    words = split_words(text)
    if "moving" not in words:
        stray = [w for w in words if w in MOTION_WORDS]
        if stray:
            raise ValueError(f"text: {text!r} has motion word(s) {stray} but no 'moving'")
        return parse_caption(text)
    k = words.index("moving")
    named = parse_caption(" ".join(words[:k]))
    motion = words[k + 1:]
    directions = [w for w in motion if w in DIRECTIONS]
    strange = [w for w in motion if w not in DIRECTIONS and w not in SPEED_WORDS]
    if len(directions) != 1 or strange:
        raise ValueError(f"text: {text!r}: expected 'moving' then one of {DIRECTIONS} and optionally 'slowly', "
                         f"got {motion}")
    named["direction"] = DIRECTIONS.index(directions[0])
    named["speed"] = 0 if "slowly" in motion else 1
    return named


def still_caption(text):
    """The caption without its motion: 'a red circle moving right' -> 'a red circle' (what a
    text-to-image model trained on still captions can read)."""
    words = split_words(text)
    return " ".join(words[:words.index("moving")] if "moving" in words else words).replace(" ,", ",")


@dataclass
class ClipLabels:
    """Exact attributes of N clips of F frames.

    Attributes
    ----------
    shape, colour, size, direction, speed : ndarray, shape (N,), int64
        Indices into SHAPES, COLOUR_NAMES, SIZES, DIRECTIONS, SPEEDS.
    x, y : ndarray, shape (N, F), float64
        Centre of the shape's bounding box in each frame, pixels (0 = left/top edge).
    """

    shape: np.ndarray
    colour: np.ndarray
    size: np.ndarray
    direction: np.ndarray
    speed: np.ndarray
    x: np.ndarray
    y: np.ndarray

    FIELDS = ("shape", "colour", "size", "direction", "speed", "x", "y")

    def __len__(self):
        return len(self.shape)

    def __getitem__(self, index):
        """Select clips like an array: labels[idx] keeps the fields aligned."""
        picked = [np.asarray(getattr(self, f))[index] for f in self.FIELDS]
        return ClipLabels(*(np.atleast_1d(v) for v in picked[:5]), *(np.atleast_2d(v) for v in picked[5:]))

    def velocity(self):
        """Per-frame displacement (x_{f+1} - x_f, y_{f+1} - y_f), shape (N, F-1, 2), pixels."""
        return np.stack([np.diff(self.x, axis=1), np.diff(self.y, axis=1)], axis=2)


def fold(p, lo, hi):
    """Reflect positions p off the walls lo and hi (a bounce): a triangle wave of period 2 (hi - lo)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, lo, dtype=np.float64)
    u = np.mod(p - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


class MovingShapes:
    """Endless, reproducible clips of one moving shape, with captions and exact attributes.

    Parameters
    ----------
    seed : int
    size : int
        Frame side in pixels: 16, 32 or 64 (the geometry scales with it).
    num_frames : int
        F, frames per clip (>= 2).
    bounce : bool
        Reflect off the border (the start is then anywhere) instead of fitting the path inside.
    p_size : float in [0, 1]
        Share of captions naming the size.
    split : "train" or "heldout"
        Which (colour, shape) pairs are drawn (tinydiff.data.captions.pairs_of).
    """

    def __init__(self, seed=0, size=32, num_frames=DEFAULT_FRAMES, bounce=False, p_size=0.5, split="train"):
        self.seed = check_seed(seed)
        self._canvas = ShapeDataset(seed=self.seed, size=size)  # the Shapes renderer, at this size
        self.size = self._canvas.size
        self.num_frames = check_int(num_frames, "num_frames", minimum=2)
        if not isinstance(bounce, (bool, np.bool_)):
            raise TypeError(f"bounce: expected True or False, got {bounce!r}")
        if isinstance(p_size, bool) or not isinstance(p_size, (int, float)) or not 0.0 <= p_size <= 1.0:
            raise ValueError(f"p_size: expected a probability in [0, 1], got {p_size!r}")
        self.bounce, self.p_size, self.split = bool(bounce), float(p_size), split
        self.pairs = pairs_of(split)
        longest = (self.num_frames - 1) * max(SPEED_PX)
        reach = BASE_SIZE - 2 * (EDGE_MARGIN + max(HALF_EXTENT))
        if not self.bounce and longest > reach:
            raise ValueError(f"num_frames: {self.num_frames} frames at {max(SPEED_PX):g} px per frame cross "
                             f"{longest:g} px, more than the {reach} px a large shape can travel; use bounce=True "
                             f"or at most {int(reach // max(SPEED_PX)) + 1} frames")

    def _draw(self, index):
        """(shape, colour, size, direction, speed, x (F,), y (F,)) of clip `index`."""
        rng = np.random.default_rng((self.seed, 5, int(index)))
        shape, colour = self.pairs[rng.integers(len(self.pairs))]
        size, direction, speed = (int(v) for v in rng.integers(0, (len(SIZES), len(DIRECTIONS), len(SPEEDS))))
        k = self.size / BASE_SIZE
        h = HALF_EXTENT[size]
        lo, hi = EDGE_MARGIN + h, BASE_SIZE - EDGE_MARGIN - h  # where the centre may be, at 32 px
        dx, dy = STEP[DIRECTIONS[direction]]
        f = np.arange(self.num_frames)
        travel = SPEED_PX[speed] * (self.num_frames - 1)
        starts = []
        for d in (dx, dy):
            if d == 0 or self.bounce:
                starts.append(rng.integers(lo, hi + 1))
            else:  # whole path inside: a positive step starts at most hi - travel
                first, last = (lo, hi - travel) if d > 0 else (lo + travel, hi)
                starts.append(rng.integers(int(np.ceil(first)), int(np.floor(last)) + 1))
        x = fold(starts[0] + dx * SPEED_PX[speed] * f, lo, hi) * k  # (F,), at this frame size
        y = fold(starts[1] + dy * SPEED_PX[speed] * f, lo, hi) * k
        return shape, colour, size, direction, speed, x, y

    def get(self, indices):
        """Clips, captions and exact attributes of the given clip indices.

        Returns
        -------
        clips : ndarray, shape (N, F, 3, H, W), float32
            In [-1, 1], background -1 (as ShapeDataset's frames).
        captions : list of str, length N
            True of their clip; parse_motion_caption reads them.
        labels : ClipLabels
        """
        idx = check_indices(indices)
        n, F, s = idx.size, self.num_frames, self.size
        pixels = np.empty((n, F, s, s, 3), dtype=np.uint8)
        ints = np.empty((n, 5), dtype=np.int64)
        xs, ys = np.empty((n, F)), np.empty((n, F))
        captions = []
        for i, index in enumerate(idx):
            shape, colour, size, direction, speed, x, y = self._draw(index)
            ints[i], xs[i], ys[i] = (shape, colour, size, direction, speed), x, y
            for f in range(F):
                pixels[i, f] = self._canvas._render_one(shape, colour, size, x[f], y[f])  # (H, W, 3)
            name_size = np.random.default_rng((self.seed, 5, int(index), 1)).random() < self.p_size
            captions.append(caption_for(shape, colour, size, direction, speed, name_size))
        clips = np.ascontiguousarray(pixels.transpose(0, 1, 4, 2, 3))  # (N, F, H, W, 3) -> (N, F, 3, H, W)
        return to_signed_unit(clips), captions, ClipLabels(*ints.T, xs, ys)

    def __getitem__(self, key):
        """`data[a:b]` is `data.get(range(a, b))`."""
        return self.get(slice_to_indices(key, "MovingShapes"))

    def __repr__(self):
        return (f"MovingShapes(seed={self.seed}, size={self.size}, num_frames={self.num_frames}, "
                f"bounce={self.bounce}, p_size={self.p_size}, split={self.split!r})")


def random_motion_caption(rng, name_size=None, split="train"):
    """A caption of a (colour, shape) pair the split draws from, with a random size, direction
    and speed, for prompting a text-to-video model; name_size None names the size half the time."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    pairs = pairs_of(split)
    shape, colour = pairs[rng.integers(len(pairs))]
    size, direction, speed = (int(v) for v in rng.integers(0, (len(SIZES), len(DIRECTIONS), len(SPEEDS))))
    named = bool(rng.random() < 0.5) if name_size is None else bool(name_size)
    return caption_for(shape, colour, size, direction, speed, named)


__all__ = ["ANGLE", "COLOUR_NAMES", "DIRECTIONS", "MOTION_WORDS", "SHAPES", "SPEEDS", "SPEED_PX", "ClipLabels",
           "MovingShapes", "caption_for", "parse_motion_caption", "random_motion_caption",
           "still_caption"]
