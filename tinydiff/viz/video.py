"""Clips as pictures: a PNG with each clip's frames as a row, and an animated GIF of a grid of
clips (frame f of the GIF shows frame f of every clip). Clips are (B, F, 3, H, W) in [-1, 1]."""

import numpy as np
from PIL import Image

from tinydiff.viz.gif import write_gif
from tinydiff.viz.tiles import add_labels, scale_to_width, tile_images


def check_clips(clips):
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[2] not in (1, 3) or clips.shape[0] < 1 or clips.shape[1] < 1:
        raise ValueError(f"clips: expected (B, F, C, H, W) with C = 1 or 3, got shape {clips.shape}")
    return clips


def save_clip_rows(path, clips, title, min_width=256, pad=2):
    """A PNG: clip b's frames left to right in row b, under a title and the frame numbers.
    Returns the path."""
    clips = check_clips(clips)
    B, F, _, _, w = clips.shape
    scale = scale_to_width(w, F, min_width, pad)
    canvas = tile_images(clips.reshape((B * F,) + clips.shape[2:]), F, pad, scale)  # (B F, C, H, W): row b = clip b
    Image.fromarray(add_labels(canvas, title, [f"f{f}" for f in range(F)], w * scale, pad)).save(path)
    return path


def clip_grid_frames(clips, ncols=None, scale=2, pad=2, title=None):
    """The frames of an animation of a grid of clips: frame f tiles frame f of every clip
    (ncols per row), each an (H', W', 3) uint8 picture, with `title` above when given."""
    clips = check_clips(clips)
    B, F = clips.shape[:2]
    ncols = int(np.ceil(np.sqrt(B))) if ncols is None else ncols
    frames = [tile_images(clips[:, f], ncols, pad, scale) for f in range(F)]
    if title is not None:
        frames = [add_labels(frame, f"{title} (frame {f + 1}/{F})") for f, frame in enumerate(frames)]
        width = max(frame.shape[1] for frame in frames)  # every frame as wide as the widest title
        frames = [np.pad(fr, ((0, 0), (0, width - fr.shape[1]), (0, 0)), constant_values=255) for fr in frames]
    return frames


def save_clips_gif(path, clips, ncols=None, scale=None, duration_ms=250, title=None):
    """An animated GIF of a grid of clips (clip_grid_frames), looping; frames last duration_ms,
    the last one too (a clip is a loop, not a result to hold). scale: the zoom (default: at
    least 256 px wide). Returns the path."""
    clips = check_clips(clips)
    ncols = int(np.ceil(np.sqrt(clips.shape[0]))) if ncols is None else ncols
    scale = scale_to_width(clips.shape[-1], ncols) if scale is None else scale
    frames = clip_grid_frames(clips, ncols, scale, title=title)
    return write_gif(path, frames, duration_ms=duration_ms, last_frame_ms=duration_ms)
