"""Pictures of the reverse process: frames for a GIF, and a strip of snapshots.

Each frame shows the current noisy sample x_t (left) beside the model's estimate of the
clean sample x_0 at that step (right): the estimate sharpens long before x_t does.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tinydiff.viz.tiles import tile_images


def caption_bar(width, text, height=18):
    """A white (height, width, 3) uint8 bar with black text."""
    bar = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(bar).text((4, 2), text, fill="black", font=ImageFont.load_default(size=12))
    return np.asarray(bar)


def denoising_frames(trajectory, ncols=None, scale=2, max_frames=60):
    """Frames (H, W, 3) uint8 from a sampling trajectory [(t, x_t, x0_pred), ...].

    At most max_frames, evenly spaced and always including the last step."""
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(max_frames, len(trajectory))).round().astype(int))
    frames = []
    for i in picks:
        t, x_t, x0 = trajectory[i]
        left = tile_images(x_t, ncols, scale=scale)
        right = tile_images(np.clip(x0, -1, 1), ncols, scale=scale)
        gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
        body = np.concatenate([left, gap, right], axis=1)
        title = f"step {i + 1}/{len(trajectory)}   t = {t:4d}      left: x_t      right: predicted x_0"
        frames.append(np.concatenate([caption_bar(body.shape[1], title), body], axis=0))
    return frames


def denoising_strip(trajectory, final, count=8, scale=2):
    """One row per sample: `count - 1` snapshots of x_t from pure noise on, then the final
    samples (B, C, H, W); uint8 picture."""
    picks = np.unique(np.linspace(0, len(trajectory) - 1, count - 1).round().astype(int))
    columns = [trajectory[i][1] for i in picks] + [final]
    stacked = np.stack(columns, axis=1)  # (B, count, C, H, W)
    B, K = stacked.shape[:2]
    return tile_images(stacked.reshape((B * K,) + stacked.shape[2:]), ncols=K, scale=scale)
