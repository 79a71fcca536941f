"""Grids of images with row and column labels."""

import numpy as np


def to_uint8(image, value_range=(-1.0, 1.0)):
    """Map an image from `value_range` to uint8 [0, 255], clipping what falls outside.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3), or (3, H, W) channels-first
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)  # (C, H, W) -> (H, W, C)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    lo, hi = value_range
    img = (img - lo) / (hi - lo)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def plot_image_grid(axes, images, row_labels=None, col_labels=None, value_range=(-1.0, 1.0)):
    """Show images[r][c] in axes[r, c], label rows on the left and columns on top.

    Parameters
    ----------
    axes : ndarray of Axes, shape (R, C)
    images : nested sequence R x C of images (H, W), (H, W, 3) or (3, H, W)
    row_labels : R strings or None
    col_labels : C strings or None
    """
    axes = np.asarray(axes)
    if axes.ndim != 2 or len(images) != axes.shape[0] or any(len(r) != axes.shape[1] for r in images):
        raise ValueError(f"images must be a {axes.shape} grid matching axes")
    for r, row in enumerate(images):
        for c, image in enumerate(row):
            ax = axes[r, c]
            img = to_uint8(image, value_range)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col_labels is not None and r == 0:
                ax.set_title(col_labels[c], fontsize="medium")
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize="medium")
    return axes
