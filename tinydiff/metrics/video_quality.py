"""Does a generated clip show what its caption asked for, and does it hold together over time?
Read from the pixels of every frame (clips of tinydiff.data.moving_shapes' kind: one shape on
black, moving at constant velocity, no bouncing).

    frame valid     tinydiff.metrics.shape_checks on each frame: one clean blob of a named
                    colour shaped like a circle, square or triangle
    constant        every frame valid, with one shape and one colour over the whole clip
    as captioned    that shape and colour are the caption's (where the caption names them)
    centroid        c_f = the brightness-weighted centre of frame f's largest bright blob
    velocity        v = the least-squares slope of c_f against f (pixels per frame); the
                    direction error is the angle between v (y flipped: up is up) and the
                    caption's direction; direction right when it is <= MAX_ANGLE_ERROR
    speed right     |v| is nearer the caption's speed than any other speed of SPEED_PX
    jerk            sqrt(mean_f |c_{f+1} - 2 c_f + c_{f-1}|^2), the second differences of the
                    path (0 for constant velocity; a flickering clip whose shape jumps about
                    has a jerk of pixels); smooth when <= MAX_JERK
    passed          constant, as captioned, direction right, speed right and smooth

Lengths are in pixels of a 32 px frame (a 16 px frame's are doubled). A clip where fewer than
two frames show a shape has no velocity: its direction error is 180 degrees and it fails.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tinydiff.data.moving_shapes import ANGLE, DIRECTIONS, SPEED_PX, parse_motion_caption
from tinydiff.metrics.checks import check_images
from tinydiff.metrics.shapes_quality import shape_checks

MAX_ANGLE_ERROR = 30.0  # degrees (issue 16's target)
MAX_JERK = 1.0  # px at 32 px: real clips measure 0 (whole-pixel paths), a displaced frame d px
MIN_SPEED = 0.25  # px per frame at 32 px: below it a clip stands still and has no direction


@dataclass
class VideoChecks:
    """Per-clip results of video_checks (N clips of F frames).

    Attributes
    ----------
    frame_valid : (N, F) bool
    shape, colour : (N, F) int, -1 where the frame is not valid
    constant, as_captioned, direction_right, speed_right, smooth, passed : (N,) bool
    centroid : (N, F, 2) float, (x, y) in pixels of 32, NaN where no bright blob
    velocity : (N, 2) float, (vx, vy) pixels of 32 per frame (y down), NaN if < 2 centroids
    angle_error, speed, jerk : (N,) float (degrees; pixels of 32 per frame; pixels of 32)
    """

    frame_valid: np.ndarray
    shape: np.ndarray
    colour: np.ndarray
    constant: np.ndarray
    as_captioned: np.ndarray
    centroid: np.ndarray
    velocity: np.ndarray
    angle_error: np.ndarray
    speed: np.ndarray
    direction_right: np.ndarray
    speed_right: np.ndarray
    jerk: np.ndarray
    smooth: np.ndarray

    @property
    def passed(self):
        return self.constant & self.as_captioned & self.direction_right & self.speed_right & self.smooth

    def summary(self):
        """Rates over the clips (frames_valid over all frames), and the median jerk."""
        rate = {name: float(np.mean(getattr(self, name))) for name in
                ("constant", "as_captioned", "direction_right", "speed_right", "smooth", "passed")}
        return {"frames_valid": float(self.frame_valid.mean()), **rate,
                "median_angle_error": float(np.median(self.angle_error)),
                "median_jerk": float(np.nanmedian(self.jerk)) if np.isfinite(self.jerk).any() else float("nan"),
                "clips": int(len(self.jerk))}


def centroids(frames):
    """(x, y) of the brightness-weighted centre of each frame's largest 8-connected blob of
    pixels brighter than 1/2 (max channel on [0, 1]), in pixels; NaN for a frame without one.
    frames (M, 3, H, W) in [-1, 1] -> (M, 2)."""
    out = np.full((len(frames), 2), np.nan)
    for m, img in enumerate(frames):
        bright = np.clip((img.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0).max(axis=0)  # (H, W)
        blobs, count = ndimage.label(bright > 0.5, structure=np.ones((3, 3)))
        if count == 0:
            continue
        main = blobs == 1 + np.argmax(np.bincount(blobs.ravel())[1:])
        weight = bright * main
        ys, xs = np.indices(bright.shape) + 0.5  # pixel centres
        out[m] = (weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()
    return out


def fit_velocity(path):
    """Least-squares slope of a path (F, 2) against the frame index, over its finite rows;
    NaN (2,) with fewer than two."""
    f = np.flatnonzero(np.isfinite(path).all(axis=1))
    if f.size < 2:
        return np.full(2, np.nan)
    centred = f - f.mean()
    return centred @ (path[f] - path[f].mean(axis=0)) / (centred @ centred)


def angle_between(velocity, direction):
    """Degrees in [0, 180] between a velocity (vx, vy) in image coordinates (y down) and the
    direction DIRECTIONS[direction]; 180 for a clip that stands still (|v| < MIN_SPEED)."""
    if not np.isfinite(velocity).all() or np.hypot(*velocity) < MIN_SPEED:
        return 180.0
    seen = np.degrees(np.arctan2(-velocity[1], velocity[0]))  # y flipped: up is +90
    diff = (seen - ANGLE[DIRECTIONS[direction]] + 180.0) % 360.0 - 180.0
    return float(abs(diff))


def second_difference_rms(path):
    """sqrt(mean |c_{f+1} - 2 c_f + c_{f-1}|^2) over the triples of finite centroids; NaN if none."""
    d2 = path[2:] - 2 * path[1:-1] + path[:-2]  # (F-2, 2)
    d2 = d2[np.isfinite(d2).all(axis=1)]
    return float(np.sqrt((d2 ** 2).sum(axis=1).mean())) if len(d2) else float("nan")


def video_checks(clips, prompts):
    """Check N clips against their captions.

    Parameters
    ----------
    clips : ndarray, shape (N, F, 3, H, W)
        In [-1, 1] with a black background, F >= 3, H = W one of 16, 32, 64.
    prompts : list of str, length N
        Clip captions (tinydiff.data.moving_shapes.parse_motion_caption reads them); each must
        name a direction.

    Returns
    -------
    VideoChecks
    """
    x = np.asarray(clips)
    if x.ndim != 5 or x.shape[2] != 3 or x.shape[1] < 3:
        raise ValueError(f"clips: expected shape (N, F, 3, H, W) with F >= 3, got {x.shape}")
    n, F, _, H, W = x.shape
    frames = check_images(x.reshape(n * F, 3, H, W), "clips", channels=3, square=True)
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or len(prompts) != n:
        raise ValueError(f"prompts: expected a list of {n} captions, one per clip")
    asked = [parse_motion_caption(p) for p in prompts]
    missing = [p for p, a in zip(prompts, asked) if "direction" not in a]
    if missing:
        raise ValueError(f"prompts: {missing[0]!r} names no motion ('moving' and a direction)")
    checks = shape_checks(frames)
    valid = checks.valid.reshape(n, F)
    shape, colour = checks.shape.reshape(n, F), checks.colour.reshape(n, F)
    constant = valid.all(axis=1) & (shape == shape[:, :1]).all(axis=1) & (colour == colour[:, :1]).all(axis=1)
    as_captioned = constant & np.array([a["shape"] == s and a["colour"] == c if "shape" in a and "colour" in a else True
                                        for a, s, c in zip(asked, shape[:, 0], colour[:, 0])])
    to_32 = 32.0 / H
    path = centroids(frames).reshape(n, F, 2) * to_32
    velocity = np.stack([fit_velocity(p) for p in path])  # (N, 2)
    angle = np.array([angle_between(v, a["direction"]) for v, a in zip(velocity, asked)])
    speed = np.hypot(velocity[:, 0], velocity[:, 1])
    nearest = np.argmin(np.abs(np.nan_to_num(speed, nan=-9.0)[:, None] - np.array(SPEED_PX)[None, :]), axis=1)
    speed_right = np.isfinite(speed) & (nearest == np.array([a["speed"] for a in asked]))
    jerk = np.array([second_difference_rms(p) for p in path])
    smooth = np.nan_to_num(jerk, nan=np.inf) <= MAX_JERK
    return VideoChecks(valid, shape, colour, constant, as_captioned, path, velocity, angle, speed,
                       angle <= MAX_ANGLE_ERROR, speed_right, jerk, smooth)


def video_quality(clips, prompts, real=None):
    """video_checks(clips, prompts).summary(), plus, given real clips (M, F, 3, H, W) of the
    same data, their median jerk beside the samples' (real constant-velocity clips measure 0:
    what the samples show above it is wobble the real motion does not have)."""
    out = video_checks(clips, prompts).summary()
    if real is not None:
        r = np.asarray(real)
        if r.ndim != 5:
            raise ValueError(f"real: expected shape (M, F, 3, H, W), got {r.shape}")
        frames = check_images(r.reshape((-1,) + r.shape[2:]), "real", channels=3, square=True, bounded=True)
        path = centroids(frames).reshape(r.shape[:2] + (2,)) * (32.0 / r.shape[-1])
        real_jerk = float(np.nanmedian([second_difference_rms(p) for p in path]))
        out["real_median_jerk"] = real_jerk
    return out
