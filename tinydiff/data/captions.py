"""Captioned Shapes: Shapes images with captions written from their exact attributes, for
text conditioning (a CLIP-style text encoder, a text-to-image UNet).

A caption names some of the four attributes (shape, colour, size, position) and is true of
the image: "a small red circle at the top left" names all four, "a red shape" names only
the colour (the others then vary freely), "a shape" names none. The generic noun "shape"
stands wherever the shape is left out, so that "shape" is a class noun ("a sks shape" is a
fine-tuning prompt). Which attributes a caption names is read back with `parse_caption`.

Templates (every one takes any subset of the attributes; a left-out part drops out):

    0  a {size} {colour} {shape} {position}        a small red circle at the top left
    1  a {colour} {shape}, {size}, {position}      a red circle, small, at the top left
    2  {place}: a {size} {colour} {shape}          top left: a small red circle
    3  {position}, a {size} {colour} {shape}       at the top left, a small red circle
    4  a {size} {shape} in {colour} {position}     a small circle in red at the top left

{position} is data.shapes.position_phrase ("at the top left", "on the right", "in the
centre"); {place} the same without its preposition ("top left", "right", "centre").

Caption policy, per image, from its own generator: with probability p_full (default 1/2) the
caption names all four attributes; otherwise it names one of the 15 proper subsets of them
(the empty one included), uniformly. The template is uniform over the five. So with the
default, 1/2 + 1/2 * 7/15 = 73% of captions name the shape and 27% say "shape".

Held-out combinations: HELD_OUT_PAIRS, three (colour, shape) pairs of the 21, no two sharing a
colour or a shape, so every colour and every shape still appears in training. split="train"
never draws them (its images are drawn from the 18 other pairs, so its captions, true of the
image, never name them either); split="heldout" draws only them, to measure compositional
generalisation.

Keys: image i of a split comes from np.random.default_rng((seed, s, i)) and its caption from
np.random.default_rng((seed, s, i, 1)), s = 0 (train) or 1 (heldout): random access, and the
caption policy can change without changing the images.
"""

import itertools
import re

import numpy as np

from tinydiff.data.checks import check_indices, check_rng, slice_to_indices
from tinydiff.data.shapes import (COLOUR_NAMES, COLUMNS, JITTER, ROWS, SHAPES, SIZES, BASE_SIZE,
                                  ShapeDataset, position_phrase)

ATTRIBUTES = ("shape", "colour", "size", "position")  # position = row * 3 + col, as ShapeLabels
HELD_OUT_PAIRS = (("yellow", "circle"), ("magenta", "square"), ("blue", "triangle"))
SPLITS = ("train", "heldout")
NUM_TEMPLATES = 5
GENERIC_NOUN = "shape"
# Words that name no attribute but are reserved for new concepts (DreamBooth's "a sks dog",
# Ruiz et al. 2022): no caption ever uses them, so a text encoder trained on these captions
# gives them no meaning and fine-tuning can bind one to a new concept ("a sks shape").
RARE_WORDS = ("sks", "zwx", "vqk", "plj", "xqd", "bnv", "tqz", "jvw")
POSITION_WORDS = ("top", "bottom", "left", "right", "centre")
CAPTION_WORDS = (("a", "the", "at", "in", "on", ",", ":", GENERIC_NOUN) + SHAPES + COLOUR_NAMES
                 + SIZES + POSITION_WORDS)
# The 15 proper subsets of ATTRIBUTES, in a fixed order (a partial caption names one of them).
PARTIAL_SUBSETS = tuple(s for k in range(len(ATTRIBUTES))
                        for s in itertools.combinations(ATTRIBUTES, k))
_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(text):
    """Lower-case words with punctuation split off: 'Top left: a circle' ->
    ['top', 'left', ':', 'a', 'circle']. The tokenizer splits the same way."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def pairs_of(split):
    """The (shape, colour) index pairs a split draws from: 18 for train, 3 for heldout."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    held = {(SHAPES.index(s), COLOUR_NAMES.index(c)) for c, s in HELD_OUT_PAIRS}
    every = [(s, c) for s in range(len(SHAPES)) for c in range(len(COLOUR_NAMES))]
    return tuple(p for p in every if (p in held) == (split == "heldout"))


def write_caption(named, template=0):
    """A caption naming exactly the attributes in `named`.

    Parameters
    ----------
    named : dict
        Some of ATTRIBUTES, each an index: shape into SHAPES, colour into COLOUR_NAMES, size
        into SIZES, position = row * 3 + col (0 top left .. 8 bottom right).
    template : int
        0 .. NUM_TEMPLATES - 1 (see the module docstring).
    """
    unknown = set(named) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"named: expected keys among {ATTRIBUTES}, got {sorted(unknown)}")
    if template not in range(NUM_TEMPLATES):
        raise ValueError(f"template: expected 0 .. {NUM_TEMPLATES - 1}, got {template!r}")
    noun = SHAPES[named["shape"]] if "shape" in named else GENERIC_NOUN
    colour = COLOUR_NAMES[named["colour"]] if "colour" in named else None
    size = SIZES[named["size"]] if "size" in named else None
    where = place = None
    if "position" in named:
        row, col = divmod(int(named["position"]), 3)
        where = position_phrase(row, col)  # "at the top left"
        place = where.split(" ", 2)[2]  # "at the top left" -> "top left"

    def join(*parts):
        return " ".join(p for p in parts if p)

    if template == 0:
        return join("a", size, colour, noun, where)
    if template == 1:
        return join("a", colour, noun + (f", {size}," if size else ""), where).rstrip(",")
    if template == 2:
        return join(place and place + ":", "a", size, colour, noun)
    if template == 3:
        return join(where and where + ",", "a", size, colour, noun)
    return join("a", size, noun, colour and "in " + colour, where)


def parse_caption(text):
    """The attributes a caption names, read from its words (any word order).

    Returns a dict with some of ATTRIBUTES as keys, values as in write_caption; {} for "a
    shape" or "". parse_caption(write_caption(named, t)) == named for every named and t.

    Raises ValueError for a word outside CAPTION_WORDS and RARE_WORDS, or a caption naming
    two values of one attribute ("a red blue circle").
    """
    words = split_words(text)
    known = set(CAPTION_WORDS) | set(RARE_WORDS)
    strange = [w for w in words if w not in known]
    if strange:
        raise ValueError(f"text: {text!r} has word(s) outside the caption grammar: {strange}")
    named = {}
    for key, names in (("shape", SHAPES), ("colour", COLOUR_NAMES), ("size", SIZES)):
        found = sorted({w for w in words if w in names})
        if len(found) > 1:
            raise ValueError(f"text: {text!r} names more than one {key}: {found}")
        if found:
            named[key] = names.index(found[0])
    rows = sorted({w for w in words if w in ("top", "bottom")})
    cols = sorted({w for w in words if w in ("left", "right")})
    if len(rows) > 1 or len(cols) > 1:
        raise ValueError(f"text: {text!r} names more than one position: {rows + cols}")
    if rows or cols or "centre" in words:
        row = ROWS.index(rows[0]) if rows else 1
        col = COLUMNS.index(cols[0]) if cols else 1
        named["position"] = row * 3 + col
    return named


def _caption_for(labels_row, rng, p_full):
    """Draw which attributes to name and a template, then write the caption."""
    shape, colour, size, row, col = labels_row
    if rng.random() < p_full:
        subset = ATTRIBUTES
    else:
        subset = PARTIAL_SUBSETS[rng.integers(len(PARTIAL_SUBSETS))]
    values = {"shape": shape, "colour": colour, "size": size, "position": row * 3 + col}
    return write_caption({k: int(values[k]) for k in subset}, int(rng.integers(NUM_TEMPLATES)))


def random_full_caption(rng, split="train"):
    """A caption naming all four attributes, of a combination the split draws from (train: the
    18 pairs outside HELD_OUT_PAIRS; heldout: those 3), in a random template. For prompting a
    text-to-image model; parse_caption gives back what it asks for."""
    rng = check_rng(rng)
    pairs = pairs_of(split)
    shape, colour = pairs[rng.integers(len(pairs))]
    size, position = (int(v) for v in rng.integers(0, (len(SIZES), 9)))
    named = {"shape": shape, "colour": colour, "size": size, "position": position}
    return write_caption(named, int(rng.integers(NUM_TEMPLATES)))


class _PairShapes(ShapeDataset):
    """ShapeDataset whose (shape, colour) pair is drawn uniformly from a given list."""

    def __init__(self, seed, size, pairs, key):
        super().__init__(seed=seed, size=size)
        self._pairs, self._key = pairs, key

    def _draw_attributes(self, index):
        rng = np.random.default_rng((self.seed, self._key, int(index)))
        shape, colour = self._pairs[rng.integers(len(self._pairs))]
        size, row, col = (int(v) for v in rng.integers(0, (len(SIZES), len(ROWS), len(COLUMNS))))
        step = max(1, self.size // BASE_SIZE)  # whole output pixels, as ShapeDataset
        jx, jy = rng.integers(-JITTER, JITTER + 1, size=2) * step
        return shape, colour, size, row, col, self._centres[size, col] + jx, self._centres[size, row] + jy


class CaptionedShapes:
    """Endless, reproducible Shapes images with captions, split by held-out combinations.

    Parameters
    ----------
    size : int
        Image side in pixels: 16, 32 or 64.
    seed : int
        Keys every image and caption (see the module docstring).
    split : str
        "train" (never a pair of HELD_OUT_PAIRS) or "heldout" (only those pairs).
    p_full : float
        Share of captions naming all four attributes; the rest are partial. Evaluation on
        held-out pairs wants 1.0 (a partial caption need not name the pair).
    """

    def __init__(self, size=32, seed=0, split="train", p_full=0.5):
        if isinstance(p_full, bool) or not isinstance(p_full, (int, float)) or not 0.0 <= p_full <= 1.0:
            raise ValueError(f"p_full: expected a probability in [0, 1], got {p_full!r}")
        self.split = split
        self.p_full = float(p_full)
        self.pairs = pairs_of(split)
        self._images = _PairShapes(seed, size, self.pairs, SPLITS.index(split))
        self.seed, self.size = self._images.seed, self._images.size

    def get(self, indices):
        """Images, captions and exact attributes of the given image indices.

        Returns
        -------
        images : ndarray, shape (B, 3, H, W), float32
            In [-1, 1], background -1 (as ShapeDataset).
        captions : list of str, length B
            True of their image; parse_caption tells which attributes each names.
        labels : ShapeLabels
            Every attribute of each image, named in its caption or not.
        """
        idx = check_indices(indices)
        images, labels = self._images.get(idx)
        key = SPLITS.index(self.split)
        rows = zip(labels.shape, labels.colour, labels.size, labels.row, labels.col)
        captions = [_caption_for(row, np.random.default_rng((self.seed, key, int(i), 1)), self.p_full)
                    for i, row in zip(idx, rows)]
        return images, captions, labels

    def __getitem__(self, key):
        """`data[a:b]` is `data.get(range(a, b))`."""
        return self.get(slice_to_indices(key, "CaptionedShapes"))

    def __repr__(self):
        return (f"CaptionedShapes(size={self.size}, seed={self.seed}, split={self.split!r}, "
                f"p_full={self.p_full})")
