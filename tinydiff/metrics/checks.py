"""Checks of what the sample-quality measures are given, made before any work (a classifier
pass over NaN images used to run for 13 s and end in a LinAlgError): every message names the
argument, what was expected and what came."""

import numpy as np

# real images are in [-1, 1]; beyond this magnitude they were scaled otherwise ([0, 255]?).
# Samples are not bounded: a poor model's samples (an unclipped sampler's reach 10 and more)
# are what the measures exist to score.
MAX_MAGNITUDE = 1.5


def check_images(images, name, channels, min_count=1, square=False, bounded=False):
    """images as a float array (N, channels, H, W), N >= min_count, every value finite, and
    with bounded=True (real images) of magnitude <= MAX_MAGNITUDE; returned as float32.
    Integer pixels (uint8 0..255) are refused: the measures expect floats in [-1, 1]."""
    if isinstance(images, np.ndarray) and images.dtype.kind in "biu":
        raise TypeError(f"{name}: expected floats in [-1, 1], got dtype {images.dtype} "
                        f"(convert pixels p in 0..255 with p / 127.5 - 1)")
    try:
        x = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a float array (N, {channels}, H, W), got {type(images).__name__}") from None
    if x.ndim != 4 or x.shape[1] != channels or (square and x.shape[2] != x.shape[3]):
        expected = f"square images (N, {channels}, H, H)" if square else f"shape (N, {channels}, H, W)"
        raise ValueError(f"{name}: expected {expected}, got shape {x.shape}")
    if len(x) < min_count:
        raise ValueError(f"{name}: expected at least {min_count} image(s), got {len(x)}")
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))
        raise ValueError(f"{name}: {x.size - np.count_nonzero(finite)} value(s) are NaN/inf, in {len(bad)} of "
                         f"{len(x)} images (first: index {bad[0]})")
    if bounded and (x.min() < -MAX_MAGNITUDE or x.max() > MAX_MAGNITUDE):
        raise ValueError(f"{name}: expected real images in [-1, 1] (pixels p in 0..255 as p / 127.5 - 1), got "
                         f"values from {x.min():.4g} to {x.max():.4g}")
    return x


def check_labels(labels, name, count):
    """labels: integers, one per image, as an int64 array (count,)."""
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {y.dtype}")
    if y.shape != (count,):
        raise ValueError(f"{name}: expected one label per sample, {count}, got shape {y.shape}")
    return y.astype(np.int64)
