"""Animated GIFs from a list of frames, with Pillow."""

import os

import numpy as np
from PIL import Image


def write_gif(path, frames, duration_ms=80, last_frame_ms=1200):
    """Write RGB frames (each (H, W, 3) uint8, all the same size) as a looping GIF.

    The last frame is held for `last_frame_ms` so the result can be seen before the loop
    restarts. Returns the path.
    """
    if len(frames) == 0:
        raise ValueError("frames must hold at least one image")
    shape = np.asarray(frames[0]).shape
    images = []
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.shape != shape or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"frame {i} must be (H, W, 3) uint8 like frame 0 {shape}, got {f.shape} {f.dtype}")
        images.append(Image.fromarray(f))
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    durations = [duration_ms] * (len(images) - 1) + [last_frame_ms]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False)
    return path
