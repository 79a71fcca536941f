"""Pictures of the reverse process: frames for a GIF, and a strip of snapshots.

Each frame shows the current noisy sample x_t (left) beside the model's estimate of the
clean sample x_0 at that step (right): the estimate sharpens long before x_t does. For a
latent diffusion model both halves are decoded latents, and the captions say so
(`labels=("decode(z_t)", "decode(predicted z_0)")`).
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tinydiff.viz.tiles import tile_images


def caption_bar(width, text, height=18):
    """A white (height, width, 3) uint8 bar with black text."""
    bar = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(bar).text((4, 2), text, fill="black", font=ImageFont.load_default(size=12))
    return np.asarray(bar)


def _step_numbers(trajectory, timesteps):
    """(1-based step of each trajectory entry, number of steps in the run), from the run's
    `timesteps`; None without them (a trajectory may hold only some steps: then its length
    is not the run's, and a count made from it would be wrong)."""
    if timesteps is None:
        return None, None
    timesteps = [int(t) for t in np.asarray(timesteps).ravel()]
    missing = [int(t) for t, _, _ in trajectory if int(t) not in timesteps]
    if missing:
        raise ValueError(f"timesteps: the trajectory visits t = {missing[:3]}, which are not in the run's timesteps")
    return [timesteps.index(int(t)) + 1 for t, _, _ in trajectory], len(timesteps)


def denoising_frames(trajectory, ncols=None, scale=2, max_frames=40, timesteps=None,
                     labels=("x_t", "predicted x_0")):
    """Frames (H, W, 3) uint8 from a sampling trajectory [(t, x_t, x0_pred), ...].

    Parameters
    ----------
    trajectory : list of (t, x_t (B, C, H, W), x0_pred (B, C, H, W))
        Every step of a run, or some of them (then pass `timesteps`).
    ncols : int or None, images per row in each half
    scale : int, each pixel drawn as scale x scale
    max_frames : int, at most this many frames, evenly spaced, always including the last step
    timesteps : the run's timesteps (all steps, e.g. scheduler.timesteps); with them the
        captions say "step k/n" as well as t
    labels : (left, right) captions of the two halves

    Returns
    -------
    list of (H', W', 3) uint8 frames, all the same size
    """
    steps, total = _step_numbers(trajectory, timesteps)
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(max_frames, len(trajectory))).round().astype(int))
    frames = []
    for i in picks:
        t, x_t, x0 = trajectory[i]
        left = tile_images(x_t, ncols, scale=scale)
        right = tile_images(np.clip(x0, -1, 1), ncols, scale=scale)
        gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
        body = np.concatenate([left, gap, right], axis=1)
        step = "" if steps is None else f"step {steps[i]}/{total}   "
        title = f"{step}t = {int(t):4d}      left: {labels[0]}      right: {labels[1]}"
        frames.append(np.concatenate([caption_bar(body.shape[1], title), body], axis=0))
    return frames


def denoising_strip(trajectory, final, count=8, scale=2, pad=2, which=1, final_label="sample"):
    """One row per sample: `count - 1` snapshots from pure noise on, then the final samples
    (B, C, H, W), under a header naming each column's timestep; uint8 picture.

    which : 1 shows x_t, 2 the model's predicted x_0 at that step
    final_label : the last column's header
    """
    picks = np.unique(np.linspace(0, len(trajectory) - 1, count - 1).round().astype(int))
    columns = [trajectory[i][which] for i in picks] + [final]
    stacked = np.stack(columns, axis=1)  # (B, count, C, H, W)
    B, K = stacked.shape[:2]
    body = tile_images(stacked.reshape((B * K,) + stacked.shape[2:]), ncols=K, pad=pad, scale=scale)
    header = Image.new("RGB", (body.shape[1], 16), "white")
    draw = ImageDraw.Draw(header)
    font = ImageFont.load_default(size=11)
    cell = stacked.shape[-1] * scale + pad
    for k, text in enumerate([f"t={int(trajectory[i][0])}" for i in picks] + [final_label]):
        width = draw.textlength(text, font=font)
        draw.text((pad + k * cell + (cell - pad - width) / 2, 2), text, fill="black", font=font)
    return np.concatenate([np.asarray(header), body], axis=0)
