"""Temporal attention maps: which frames each frame looks at, in the motion modules of a video UNet.

In a motion module (AnimateDiffTransformer3D) every pixel position of every clip is a sequence
of F tokens, one per frame, and attn1 forms P = softmax(Q K^T / sqrt(d)) over them (Vaswani et
al. 2017, eq. 1; Guo et al. 2023, sec. 4.2): row f of P says how frame f at that pixel splits
its attention over the F frames. Averaged over heads, pixels and sampling steps:

    maps[m][b, f, g] = mean over steps, heads and pixels of  P[b, pixel, head, f, g]

per motion module m (the first attention of its first block), for the conditional half of a
guided batch. Each row sums to 1. `where` (B, F, H, W) bool, optional, restricts the pixels to
those marked in any frame (e.g. where the shape is), downsampled to each module's resolution.
The kernels never keep P: the layers recompute it while recording is on
(MultiHeadAttention.record_probabilities), switched off again afterwards.
"""

from typing import NamedTuple

import numpy as np

from tinydiff.nn.checks import check_positive_int


class TemporalAttentionMaps(NamedTuple):
    """clips (B, F, 3, H, W) as the pipeline returns them; maps (modules, B, F, F) over all
    pixels, and (modules, B, F, F) over the marked pixels (NaN without any) in `focused`;
    names: each motion module's dotted name."""

    clips: np.ndarray
    maps: np.ndarray
    focused: np.ndarray
    names: list


def temporal_layers(unet):
    """(name, attn1) of the first block of every motion module of a UNetMotionModel, in order."""
    layers = [(name, module.transformer_blocks[0].attn1) for name, module in unet.named_modules()
              if type(module).__name__ == "AnimateDiffTransformer3D"]
    if not layers:
        raise ValueError(f"unet: expected a UNetMotionModel with motion modules, got a {type(unet).__name__}")
    return layers


def shape_pixels(clips, threshold=0.0):
    """(B, F, H, W) bool: pixels brighter than `threshold` in some channel ([-1, 1] scale)."""
    return np.asarray(clips).max(axis=2) > threshold


def temporal_attention_maps(pipeline, prompt, rng, num_inference_steps=25, num_clips=1, where=shape_pixels):
    """Sample num_clips clips of `prompt` with `pipeline` (a TextToVideoPipeline) and return the
    temporal attention maps of every motion module (see the module docstring).

    where : callable clips (B, F, 3, H, W) -> (B, F, H, W) bool, the pixels of `focused`
        (default: the shape's, anywhere in the clip).
    """
    num_clips = check_positive_int(num_clips, "num_clips")
    layers = temporal_layers(pipeline.unet)
    try:
        for _, layer in layers:
            layer.record_probabilities(True)
        clips = pipeline(prompt, num_videos_per_prompt=num_clips, num_inference_steps=num_inference_steps, rng=rng)
        batch = 1 if pipeline.guidance_scale == 1.0 else 2  # guidance runs the prompt's and the empty one's
        marked = np.asarray(where(clips)).any(axis=1)  # (B, H, W): marked in any frame
        B, F, H = num_clips, clips.shape[1], clips.shape[-1]
        maps, focused = [], []
        for _, layer in layers:
            total, inside = 0.0, 0.0
            for p in layer.recorded_probabilities:  # one per step, (n h w, heads, F, F), n = 2B guided
                hw = p.shape[0] // (batch * B)
                side = int(round(np.sqrt(hw)))
                per_pixel = p[:B * hw].astype(np.float64).mean(axis=1)  # the conditional clips; heads averaged
                cond = per_pixel.reshape(B, side, side, F, F)  # rows are (clip, pixel), clip-major
                total = total + cond.mean(axis=(1, 2))
                k = H // side
                mask = marked.reshape(B, side, k, side, k).any(axis=(2, 4))  # (B, side, side)
                counts = np.maximum(mask.sum(axis=(1, 2)), 1)[:, None, None]
                inside = inside + np.einsum("bij,bijfg->bfg", mask, cond) / counts
            steps = len(layer.recorded_probabilities)
            maps.append(total / steps)
            focused.append(np.where(marked.any(axis=(1, 2))[:, None, None], inside / steps, np.nan))
    finally:
        for _, layer in layers:
            layer.record_probabilities(False)
    return TemporalAttentionMaps(clips, np.stack(maps), np.stack(focused), [name for name, _ in layers])
