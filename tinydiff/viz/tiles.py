"""Many images tiled into one RGB picture, without matplotlib: sample grids and GIF frames."""

import numpy as np
from PIL import Image

from tinydiff.viz.images import to_uint8


def tile_images(images, ncols=None, pad=2, scale=1, value_range=(-1.0, 1.0), background=255):
    """(N, C, H, W) images in `value_range`, C = 1 or 3 -> one (rows*(H+pad)+pad, ..., 3) uint8
    picture, ncols per row (default: about square), each pixel repeated `scale` times."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images: expected (N, C, H, W) with C = 1 or 3, got shape {images.shape}")
    n, c, h, w = images.shape
    ncols = int(np.ceil(np.sqrt(n))) if ncols is None else ncols
    nrows = int(np.ceil(n / ncols))
    pixels = to_uint8(images.transpose(0, 2, 3, 1), value_range)  # (N, C, H, W) -> (N, H, W, C)
    if c == 1:
        pixels = np.repeat(pixels, 3, axis=-1)  # (N, H, W, 1) grey -> (N, H, W, 3)
    pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), background, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top:top + h, left:left + w] = pixels[i]
    return canvas


def save_image_grid(path, images, ncols=None, pad=2, scale=2, value_range=(-1.0, 1.0)):
    """tile_images, saved as a PNG. Returns the path."""
    Image.fromarray(tile_images(images, ncols, pad, scale, value_range)).save(path)
    return path
