"""Animated GIFs from a list of frames, with Pillow, kept small enough to share.

A GIF stores each frame with a palette of at most 256 colours, compressed with LZW, which
does well on flat areas and badly on noise: fifty 1000x500 frames of noisy samples take about
10 MB as they come. `write_gif` brings that under `max_bytes` (2 MB by default) in the order
that costs the picture least:

1. frames identical to the one before are merged into one longer frame;
2. every frame is mapped, without dithering, onto one shared palette of `colors` colours
   (64 by default; fewer colours are fewer distinct values for LZW to code), fitted to the
   distinct colours of all frames so that small coloured shapes on a black background keep
   their hue;
3. if the file is still too big, fewer colours (32, then 16), then every second frame
   (the kept frames shown twice as long, so the animation lasts as long), until it fits.
The last frame is always kept.
"""

import io
import os

import numpy as np
from PIL import Image

MAX_BYTES = 2_000_000


def _merge_repeats(frames, durations):
    """Drop frames equal to their predecessor, adding their time to it."""
    kept, times = [frames[0]], [durations[0]]
    for f, d in zip(frames[1:], durations[1:]):
        if np.array_equal(f, kept[-1]):
            times[-1] += d
        else:
            kept.append(f)
            times.append(d)
    return kept, times


def _every(frames, durations, stride):
    """Every `stride`-th frame (the last always kept), each shown for the time of those it replaces."""
    if stride == 1:
        return frames, durations
    picks = list(range(0, len(frames), stride))
    if picks[-1] != len(frames) - 1:
        picks.append(len(frames) - 1)
    ends = picks[1:] + [len(frames)]
    return [frames[i] for i in picks], [int(sum(durations[i:j])) for i, j in zip(picks, ends)]


def _encode(frames, durations, colors):
    """GIF bytes of `frames` mapped onto one palette of `colors` colours."""
    # The palette is fitted to the distinct colours of a sample of every frame's pixels: fitted
    # to the pixels themselves, the black background (most of them) took most of the palette
    # and red shapes came out magenta. The eight corners of the RGB cube (black and white for
    # background and captions, and the pure colours) are always in it.
    step = max(1, sum(f.size // 3 for f in frames) // 500_000)
    distinct = np.unique(np.concatenate([f.reshape(-1, 3)[::step] for f in frames]), axis=0)  # (P, 3)
    corners = [255 * ((k >> b) & 1) for k in range(8) for b in (2, 1, 0)]  # (0,0,0), (0,0,255), ... (255,255,255)
    fitted = Image.fromarray(distinct[:, None, :]).quantize(colors=max(colors - 8, 1), method=Image.Quantize.MEDIANCUT)
    entries = len(fitted.getcolors()) if fitted.getcolors() else max(colors - 8, 1)
    palette = Image.new("P", (1, 1))
    palette.putpalette(fitted.getpalette()[:3 * entries] + corners)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=True)
    return buffer.getvalue()


def write_gif(path, frames, duration_ms=80, last_frame_ms=1200, max_bytes=MAX_BYTES, colors=64):
    """Write RGB frames (each (H, W, 3) uint8, all the same size) as a looping GIF of at most
    `max_bytes` bytes (see the module docstring for how it gets there).

    The last frame is held for `last_frame_ms` so the result can be seen before the loop
    restarts. Returns the path.
    """
    if len(frames) == 0:
        raise ValueError("frames must hold at least one image")
    shape = np.asarray(frames[0]).shape
    checked = []
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.shape != shape or f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"frame {i} must be (H, W, 3) uint8 like frame 0 {shape}, got {f.shape} {f.dtype}")
        checked.append(f)
    if not 16 <= int(colors) <= 256:
        raise ValueError(f"colors must be in [16, 256], got {colors}")
    durations = [duration_ms] * (len(checked) - 1) + [last_frame_ms]
    frames, durations = _merge_repeats(checked, durations)
    plans = [(c, 1) for c in sorted({int(colors), min(int(colors), 32), min(int(colors), 16)}, reverse=True)]
    stride = 2
    while stride < 2 * len(frames):
        plans.append((plans[-1][0], stride))
        stride *= 2
    for c, stride in plans:
        data = _encode(*_every(frames, durations, stride), c)
        if len(data) <= max_bytes:
            break
    else:
        raise ValueError(f"even two frames of {shape[1]}x{shape[0]} pixels take {len(data)} bytes, more than "
                         f"max_bytes={max_bytes}; make the frames smaller")
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path
