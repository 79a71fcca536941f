"""A folder of the user's own images as one array, with labels from subfolder names.

Layout, as in torchvision's ImageFolder:
    root/cat/001.png, root/cat/002.jpg, root/dog/a.png   -> labels 0, 0, 1; classes [cat, dog]
    root/001.png, root/002.png                           -> no labels
Files are read in sorted name order (classes too), so the array is the same on every
machine. Each image is centre-cropped to a square, then resized with Pillow's antialiasing
Lanczos filter, the usual preparation of diffusion training images.
"""

import os
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from tinydiff.data.checks import check_int, to_signed_unit

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MODES = {"L": 1, "RGB": 3}  # Pillow mode -> channels


@dataclass
class ImageFolder:
    """What load_image_folder read.

    Attributes
    ----------
    images : ndarray, shape (N, C, H, W), float32 in [-1, 1]
    labels : ndarray, shape (N,), int64, or None when there are no class subfolders
    classes : list of str
        Subfolder name of each label value (empty without subfolders).
    paths : list of str
        The file each image came from, in order.
    """

    images: np.ndarray
    labels: np.ndarray | None
    classes: list
    paths: list


def _is_image(path):
    name = os.path.basename(path)
    return (not name.startswith(".") and os.path.isfile(path)
            and name.lower().endswith(IMAGE_EXTENSIONS))


def _images_in(folder):
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if _is_image(os.path.join(folder, name))]


def _load_one(path, size, mode):
    """One image as (size, size, C) uint8. Anything Pillow cannot read, and any image over
    Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, which Pillow itself only warns
    about up to twice the limit), is a ValueError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _read(path, mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(
            f"{path!r}: refused as a possible decompression bomb ({err}); shrink the image, or raise "
            f"PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS}) if you trust the file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as err:
        # Pillow's decoders raise any of these for a damaged file
        raise ValueError(f"{path!r}: not a readable image ({type(err).__name__}: {err})") from None
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels  # (H, W) -> (H, W, 1)


def _read(path, mode):
    """The decoded image in `mode`, transparent pixels made white."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            # Transparent pixels become white, as most viewers show them.
            rgba = img.convert("RGBA")
            img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img.alpha_composite(rgba)
        return img.convert(mode)


def load_image_folder(root, size, mode="RGB"):
    """Read every image under `root` into one array.

    Parameters
    ----------
    root : str or path
        A folder of images, or a folder of class subfolders of images (one level deep).
    size : int
        Output side: each image is centre-cropped to a square and resized to size x size.
    mode : {"RGB", "L"}
        Colour (C = 3) or grayscale (C = 1).

    Returns
    -------
    ImageFolder
        images (N, C, size, size) float32 in [-1, 1], labels (N,) int64 or None, classes,
        paths.
    """
    root = os.fspath(root)
    size = check_int(size, "size", minimum=1)
    if mode not in MODES:
        raise ValueError(f"mode: expected 'RGB' or 'L', got {mode!r}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root!r}")
    loose = _images_in(root)
    classes, paths, labels = [], [], []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(folder):
            continue
        files = _images_in(folder)
        if files:
            labels += [len(classes)] * len(files)
            classes.append(name)
            paths += files
    if classes and loose:
        raise ValueError(
            f"{root!r}: found both class subfolders {classes[:5]} and loose images "
            f"{[os.path.basename(p) for p in loose[:5]]}; expected one layout (move the loose "
            f"images into a subfolder, or load that subfolder on its own)"
        )
    if not classes:
        paths = loose
    if not paths:
        raise ValueError(f"{root!r}: no images found; expected files ending in "
                         f"{', '.join(IMAGE_EXTENSIONS)} in it or in its subfolders")
    pixels = np.stack([_load_one(p, size, mode) for p in paths])  # (N, H, W, C) uint8
    images = np.ascontiguousarray(to_signed_unit(pixels).transpose(0, 3, 1, 2))  # -> (N, C, H, W)
    return ImageFolder(images, np.array(labels, dtype=np.int64) if classes else None,
                       classes, paths)
