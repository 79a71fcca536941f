"""video_checks: real Moving Shapes clips pass every check; each way of breaking a clip (time
reversed, frames from other clips, one frame moved, a frozen clip, blank frames, the wrong
colour named) fails exactly the check that should catch it, by the amount computed by hand."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.data.moving_shapes import MovingShapes
from tinydiff.metrics.video_quality import MAX_JERK, video_checks, video_quality


@pytest.fixture(scope="module")
def real():
    return MovingShapes(seed=7)[0:24]


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31), size=st.sampled_from([32, 64]))
def test_real_clips_pass_every_check(seed, size):
    clips, captions, labels = MovingShapes(seed=seed, size=size)[0:12]
    checks = video_checks(clips, captions)
    assert checks.passed.all() and checks.frame_valid.all()
    np.testing.assert_allclose(checks.velocity, labels.velocity().mean(axis=1) * 32 / size, atol=1e-9)
    assert checks.angle_error.max() < 1e-9 and checks.jerk.max() < 1e-9


def test_reversed_clip_points_the_other_way(real):
    clips, captions, _ = real
    checks = video_checks(clips[:, ::-1], captions)
    assert checks.constant.all() and checks.speed_right.all() and checks.smooth.all()
    np.testing.assert_allclose(checks.angle_error, 180.0)
    assert not checks.direction_right.any() and not checks.passed.any()


def test_one_frame_moved_d_pixels_has_jerk_d(real):
    clips, captions, labels = real
    half = np.array([4, 6, 8])[labels.size]
    i = int(np.flatnonzero(labels.x[:, 4] + half + 3 <= 32)[0])  # room to move frame 4 right
    moved = clips[i:i + 1].copy()
    moved[0, 4] = np.roll(moved[0, 4], 3, axis=-1)  # frame 4 three pixels to the right
    checks = video_checks(moved, captions[i:i + 1])
    # second differences +d, -2d, +d at frames 3, 4, 5 of the 6 triples: rms = sqrt(6 d^2 / 6) = d
    np.testing.assert_allclose(checks.jerk, 3.0, atol=1e-6)
    assert checks.frame_valid.all() and 3.0 > MAX_JERK and not checks.smooth.any()


def test_frames_of_other_clips_flicker(real):
    clips, captions, _ = real
    order = np.random.default_rng(0).permutation(clips.shape[0] * clips.shape[1])
    shuffled = clips.reshape((-1,) + clips.shape[2:])[order].reshape(clips.shape)
    checks = video_checks(shuffled, captions)
    assert checks.frame_valid.all() and checks.constant.mean() < 0.2 and checks.smooth.mean() < 0.2
    assert checks.passed.mean() < 0.1


def test_frozen_blank_and_miscoloured_clips(real):
    clips, captions, _ = real
    frozen = np.repeat(clips[:4, :1], 8, axis=1)
    checks = video_checks(frozen, captions[:4])
    assert checks.constant.all() and (checks.speed < 1e-9).all() and (checks.angle_error == 180).all()
    blank = -np.ones_like(clips[:2])
    checks = video_checks(blank, captions[:2])
    assert not checks.frame_valid.any() and np.isnan(checks.centroid).all() and not checks.passed.any()
    colours = [w for w in ("red", "green", "blue", "yellow", "cyan", "magenta", "white") if w in captions[0].split()]
    other = "cyan" if colours[0] != "cyan" else "red"
    checks = video_checks(clips[:1], [captions[0].replace(colours[0], other)])
    assert checks.constant.all() and not checks.as_captioned.any() and checks.direction_right.all()


def test_summary_and_bad_inputs(real):
    clips, captions, _ = real
    out = video_quality(clips[:12], captions[:12], real=clips[12:])
    assert out["passed"] == 1.0 and out["frames_valid"] == 1.0 and out["clips"] == 12
    assert out["real_median_jerk"] == 0.0
    with pytest.raises(ValueError, match="clips"):
        video_checks(clips[:, :, 0], captions)
    with pytest.raises(ValueError, match="prompts"):
        video_checks(clips, captions[:3])
    with pytest.raises(ValueError, match="names no motion"):
        video_checks(clips[:1], ["a red circle"])
    with pytest.raises(ValueError, match="NaN"):
        video_checks(np.full_like(clips[:1], np.nan), captions[:1])
