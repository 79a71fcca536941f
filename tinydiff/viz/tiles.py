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


def scale_to_width(width, ncols, min_width=256, pad=2):
    """The whole-number zoom that makes ncols tiles `width` pixels wide fill at least
    min_width pixels (small images, e.g. 8 px glyphs, are otherwise too small to see)."""
    return max(1, int(np.ceil((min_width - pad) / (ncols * width) - 1e-9)))


def add_labels(canvas, title, col_labels=None, tile_width=None, pad=2, background=255):
    """A white band above a tiled picture with `title` and, when given, one label centred over
    each column of tiles (col_labels[j] over column j; tile_width: a tile's width in pixels)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    band = 18 if col_labels is None else 34
    width = max(canvas.shape[1], int(font.getlength(title)) + 8)
    picture = Image.new("RGB", (width, canvas.shape[0] + band), (background,) * 3)
    picture.paste(Image.fromarray(canvas), (0, band))
    draw = ImageDraw.Draw(picture)
    draw.text((4, 2), title, fill=(0, 0, 0), font=font)
    for j, label in enumerate(col_labels or ()):
        centre = pad + j * (tile_width + pad) + tile_width / 2
        draw.text((centre, band - 2), str(label), fill=(0, 0, 0), font=font, anchor="mb")
    return np.asarray(picture)


def save_labelled_grid(path, images, title, col_labels=None, ncols=None, min_width=256, pad=2,
                       value_range=(-1.0, 1.0)):
    """tile_images zoomed to at least min_width pixels, under a title and column labels, saved
    as a PNG (the training runs' sample grids). Returns the path."""
    n, _, _, w = np.shape(images)
    ncols = int(np.ceil(np.sqrt(n))) if ncols is None else ncols
    scale = scale_to_width(w, ncols, min_width, pad)
    canvas = tile_images(images, ncols, pad, scale, value_range)
    Image.fromarray(add_labels(canvas, title, col_labels, w * scale, pad)).save(path)
    return path
