"""Is a sample the new concept (a star, a ring), and does it follow its prompt's colour and
position? Read from the pixels, as tinydiff.metrics.shapes_quality reads the Shapes.

    mask          the pixels covered more than half by the blob's colour (shape_checks'
                  `covered`: the brightest pixels' nearest named colour)
    concept IoU   intersection over union of the mask with the concept's template drawn over
                  the blob's bounding box, pixelised as the instance images are, best of 36 small
                  shifts and resizes (tinydiff.data.concepts.concept_template)
    recognised    concept IoU >= MIN_CONCEPT_IOU and above the IoU of each Shapes template
                  (circle, square, triangle) in the same box: a sample is the concept when it
                  looks like it, and more like it than like what the model already knew
    text control  the blob's colour and position (blob_position) are the ones the prompt names (parse_caption), e.g. "a blue sks shape at the bottom right"

Concept fidelity = the share of recognised samples (Ruiz et al. 2022 measure subject fidelity
with DINO/CLIP-I feature similarity; on flat shapes, the template IoU is that measure, exact).
"""

from dataclasses import dataclass

import numpy as np

from tinydiff.data.captions import parse_caption
from tinydiff.data.concepts import concept_template
from tinydiff.data.shapes import BASE_SIZE, HALF_EXTENT, centres
from tinydiff.metrics.checks import check_images
from tinydiff.metrics.shapes_quality import PALETTE, templates

MIN_CONCEPT_IOU = 0.7  # the shipped VAE's reconstructions of stars score 0.8 and more (bench_dreambooth)


@dataclass
class ConceptChecks:
    """Per-image results of concept_checks, arrays of shape (N,).

    Attributes
    ----------
    iou : float, the concept template's IoU (0 where no shape was found)
    shapes_iou : float, the best IoU of a Shapes template (circle, square, triangle)
    recognised : bool
    colour, position : int, the blob's named colour (index into COLOUR_NAMES) and grid cell
        (row * 3 + col, blob_position); -1 where no blob was found
    """

    iou: np.ndarray
    shapes_iou: np.ndarray
    recognised: np.ndarray
    colour: np.ndarray
    position: np.ndarray


def blob_mask(img):
    """(mask (H, W) bool, colour index into COLOUR_NAMES): the pixels covered more than half by
    the named colour nearest to the brightest pixels' mean (as shape_checks reads a blob), or
    (None, -1) for an image with fewer than 4 pixels brighter than mid-grey."""
    rgb = np.clip((img.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)  # (3, H, W)
    bright = rgb.max(axis=0)
    if (bright > 0.5).sum() < 4:
        return None, -1
    interior = bright >= 0.9 * bright.max()
    k = int(np.argmin(((PALETTE - rgb[:, interior].mean(axis=1)) ** 2).sum(axis=1)))
    mask = np.einsum("chw,c->hw", rgb, PALETTE[k]) / (PALETTE[k] @ PALETTE[k]) > 0.5
    return (mask, k) if mask.any() else (None, -1)


def blob_position(mask):
    """The 3x3 grid cell (row * 3 + col) of a blob: its size class from its bounding box's width
    (the concepts are 2h wide), its box centre to the nearest of that size's Shapes centres.
    (read_shapes guesses a Shapes shape from the fill ratio first, which a ring's hole fools.)"""
    side = mask.shape[0]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    width = (cols[-1] + 1 - cols[0]) * BASE_SIZE / side
    size = int(np.argmin(np.abs(2 * np.array(HALF_EXTENT) - width)))
    grid = centres(side)[size]
    row = int(np.argmin(np.abs(grid - (rows[0] + rows[-1] + 1) / 2)))
    col = int(np.argmin(np.abs(grid - (cols[0] + cols[-1] + 1) / 2)))
    return row * 3 + col


# the fit's search: the blob's box centre moved by FIT_SHIFTS, its half-width by FIT_RESIZES (px);
# a star's thin points fall below half coverage, so its box can be a pixel narrower than the star
FIT_SHIFTS, FIT_RESIZES = (-0.5, 0.0, 0.5), (-0.5, 0.0, 0.5, 1.0)


def template_ious(mask, concept):
    """(concept IoU, best Shapes IoU) of a mask (H, W) bool.

    The concept's template is drawn where the blob is: centred on its bounding box, as wide
    (both concepts are exactly 2h wide), then moved and resized by FIT_SHIFTS and FIT_RESIZES
    (36 fits, the best kept), since a blob's box is known to a pixel only. The Shapes templates fill the box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0.0, 0.0
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = mask.shape[0]

    def iou(a, b):
        return float((a & b).sum() / (a | b).sum())

    cx, cy, h = (c0 + c1) / 2, (r0 + r1) / 2, (c1 - c0) / 2
    fits = [iou(mask, concept_template(concept, side, cx + dx, cy + dy, max(h + dh, 1.0)))
            for dx in FIT_SHIFTS for dy in FIT_SHIFTS for dh in FIT_RESIZES]
    box = mask[r0:r1, c0:c1]
    return max(fits), max(iou(box, t) for t in templates(r1 - r0, c1 - c0))


def concept_checks(images, concept="star", min_iou=MIN_CONCEPT_IOU):
    """Template IoU, recognition, colour and position of every image.

    Parameters
    ----------
    images : ndarray (N, 3, H, W) in [-1, 1], black background, H = W one of 16, 32, 64
    concept : str, one of tinydiff.data.concepts.CONCEPTS
    min_iou : float in (0, 1], the concept IoU a recognised sample reaches

    Returns
    -------
    ConceptChecks
    """
    images = check_images(images, "images", channels=3, square=True)
    if isinstance(min_iou, bool) or not isinstance(min_iou, (int, float)) or not 0 < min_iou <= 1:
        raise ValueError(f"min_iou: expected a number in (0, 1], got {min_iou!r}")
    ious = np.zeros((len(images), 2))
    read = np.full((len(images), 2), -1, dtype=np.int64)  # (N, (colour, position))
    for n, img in enumerate(images):
        mask, colour = blob_mask(img)
        if mask is not None:
            ious[n] = template_ious(mask, concept)
            read[n] = colour, blob_position(mask)
    recognised = (ious[:, 0] >= min_iou) & (ious[:, 0] > ious[:, 1])
    return ConceptChecks(ious[:, 0], ious[:, 1], recognised, read[:, 0], read[:, 1])


def concept_fidelity(images, concept="star", min_iou=MIN_CONCEPT_IOU):
    """The share of images recognised as the concept (concept_checks), a float in [0, 1]."""
    return float(concept_checks(images, concept, min_iou).recognised.mean())


def text_control(images, prompts, concept="star", min_iou=MIN_CONCEPT_IOU):
    """How often samples of prompts like "a blue sks shape at the bottom right" get right what
    the prompt names. Returns {"colour", "position": the share right among prompts naming it
    (NaN if none does); "colour_and_position": both right (each where named); "with_concept":
    that and recognised as the concept; "concept": recognised}."""
    checks = concept_checks(images, concept, min_iou)
    if isinstance(prompts, str) or len(prompts) != len(checks.iou):
        raise ValueError(f"prompts: expected a list of one str per image ({len(checks.iou)})")
    asked = [parse_caption(p) for p in prompts]
    out, both = {}, np.ones(len(asked), dtype=bool)
    for key, seen in (("colour", checks.colour), ("position", checks.position)):
        named = np.array([key in a for a in asked])
        right = np.array([a.get(key, -2) == s for a, s in zip(asked, seen)])
        out[key] = float(right[named].mean()) if named.any() else float("nan")
        both &= right | ~named
    out["colour_and_position"] = float(both.mean())
    out["with_concept"] = float((both & checks.recognised).mean())
    out["concept"] = float(checks.recognised.mean())
    return out
