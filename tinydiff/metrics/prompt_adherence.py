"""Does a generated image show what its prompt asked for? Read from the pixels.

Each prompt is parsed (tinydiff.data.captions.parse_caption) into the attributes it names;
each image is read with tinydiff.data.read_shapes (shape, colour, size, position: exact on
the renderer's own images) and checked with shape_checks (a valid single shape). Then:

    right[n, a]          image n shows attribute a as prompt n names it (False where the
                         prompt does not name a)
    accuracy of a        mean of right[:, a] over the prompts that name a (NaN if none does)
    all_named_right      every attribute prompt n names is right (true for "a shape")
    valid                a valid single shape (shape_checks: one clean blob of a named
                         colour shaped like a circle, square or triangle)
    adherent             valid and all_named_right
"""

from dataclasses import dataclass

import numpy as np

from tinydiff.data.captions import ATTRIBUTES, parse_caption
from tinydiff.data.shapes import ShapeLabels, read_shapes
from tinydiff.metrics.checks import check_images
from tinydiff.metrics.shapes_quality import shape_checks


@dataclass
class PromptAdherence:
    """Per-image results of prompt_adherence; columns of named and right follow ATTRIBUTES.

    Attributes
    ----------
    named, right : ndarray, shape (N, 4), bool
    valid : ndarray, shape (N,), bool
    read : ShapeLabels
        What read_shapes saw in each image.
    """

    named: np.ndarray
    right: np.ndarray
    valid: np.ndarray
    read: ShapeLabels

    @property
    def all_named_right(self):
        """(N,) bool: every attribute the prompt names is right."""
        return (self.right | ~self.named).all(axis=1)

    def summary(self):
        """Rates over the N images: per-attribute accuracy (over prompts naming it, NaN if
        none), all_named_right, valid, adherent, and how many prompts named each attribute."""
        counts = self.named.sum(axis=0)
        hits = self.right.sum(axis=0)
        out = {a: float(hits[k] / counts[k]) if counts[k] else float("nan") for k, a in enumerate(ATTRIBUTES)}
        out["all_named_right"] = float(self.all_named_right.mean())
        out["valid"] = float(self.valid.mean())
        out["adherent"] = float((self.valid & self.all_named_right).mean())
        out["named_count"] = {a: int(counts[k]) for k, a in enumerate(ATTRIBUTES)}
        return out


def prompt_adherence(images, prompts):
    """Score images against the prompts they were generated from.

    Parameters
    ----------
    images : ndarray, shape (N, 3, H, W)
        In [-1, 1] with a black background (Shapes' convention), H = W one of 16, 32, 64.
    prompts : list of str, length N
        Captions in the grammar of tinydiff.data.captions (parse_caption reads them).

    Returns
    -------
    PromptAdherence
        Per-image flags; .summary() gives the rates.
    """
    images = check_images(images, "images", channels=3, square=True)
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
        raise TypeError(f"prompts: expected a list of str, got {type(prompts).__name__}")
    if len(prompts) != len(images):
        raise ValueError(f"prompts: expected one per image ({len(images)}), got {len(prompts)}")
    asked = [parse_caption(p) for p in prompts]
    read = read_shapes(np.clip(images, -1.0, 1.0))
    seen = np.stack([read.shape, read.colour, read.size, read.position], axis=1)  # (N, 4)
    # reshape keeps (N, 4) for N = 0 too; -2 (never read) where the prompt names nothing
    named = np.array([[a in want for a in ATTRIBUTES] for want in asked], dtype=bool).reshape(-1, 4)
    wanted = np.array([[want.get(a, -2) for a in ATTRIBUTES] for want in asked], dtype=np.int64).reshape(-1, 4)
    right = named & (seen == wanted)
    return PromptAdherence(named, right, shape_checks(images).valid, read)
