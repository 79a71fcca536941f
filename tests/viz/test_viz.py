"""viz helpers: figures render to non-blank images, GIFs hold every frame, bad input is named."""

import numpy as np
import pytest
from PIL import Image

from tinydiff.viz import (
    figure_to_array,
    new_figure,
    plot_curves,
    plot_histogram,
    plot_image_grid,
    plot_points,
    plot_trajectories,
    save_figure,
    standard_normal_pdf,
    to_uint8,
    write_gif,
)
from tinydiff.viz.denoise import denoising_frames, denoising_strip


def test_figure_renders_what_was_drawn(tmp_path):
    fig, ax = new_figure(1, 1, squeeze=True)
    blank = figure_to_array(fig).copy()
    plot_curves(ax, np.arange(10), {"a": np.arange(10) ** 2, "b": np.ones(10)}, "x", "y", title="t", logy=True)
    drawn = figure_to_array(fig)
    assert drawn.shape == blank.shape and drawn.dtype == np.uint8
    assert (drawn != blank).mean() > 0.01  # lines, labels and legend changed pixels
    path = save_figure(fig, tmp_path / "sub" / "f.png")
    assert Image.open(path).size[0] > 100


def test_plots_accept_their_documented_shapes():
    fig, axes = new_figure(2, 3)
    imgs = [[np.zeros((8, 8)), np.ones((3, 8, 8)), np.full((8, 8, 3), -1.0)]] * 2
    plot_image_grid(axes, imgs, row_labels=["r0", "r1"], col_labels=["a", "b", "c"])
    assert axes[0, 1].get_title() == "b" and axes[1, 0].get_ylabel() == "r1"
    plot_histogram(axes[0, 0], np.random.default_rng(0).standard_normal(500), "x", reference=standard_normal_pdf)
    plot_points(axes[0, 1], np.zeros((5, 2)))
    plot_trajectories(axes[0, 2], np.zeros((4, 5, 2)))
    with pytest.raises(ValueError, match="points"):
        plot_points(axes[0, 1], np.zeros((5, 3)))
    with pytest.raises(ValueError, match="paths"):
        plot_trajectories(axes[0, 1], np.zeros((5, 3)))
    with pytest.raises(ValueError, match="curve"):
        plot_curves(axes[0, 0], np.arange(3), {"bad": np.arange(4)}, "x", "y")


def test_to_uint8_maps_the_range_and_clips():
    out = to_uint8(np.array([[-2.0, -1.0, 0.0, 1.0, 3.0]]))
    np.testing.assert_array_equal(out, [[0, 0, 128, 255, 255]])


def test_gif_holds_every_frame(tmp_path):
    frames = [np.full((16, 16, 3), 20 * i, dtype=np.uint8) for i in range(6)]
    path = write_gif(tmp_path / "a.gif", frames)
    im = Image.open(path)
    assert im.n_frames == 6
    im.seek(5)
    assert np.asarray(im.convert("RGB"))[0, 0, 0] == 100
    with pytest.raises(ValueError, match="frame 1"):
        write_gif(tmp_path / "b.gif", [frames[0], np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="at least one"):
        write_gif(tmp_path / "c.gif", [])


def _noisy_run_frames(num=64, steps=50, scale=4, seed=0):
    """Frames like `tinydiff sample --gif` writes for 64 16x16 samples: x_t from pure noise to
    smooth images, beside a smooth x_0 guess (the worst case for GIF compression is the noise)."""
    rng = np.random.default_rng(seed)
    clean = np.clip(np.kron(rng.standard_normal((num, 1, 4, 4)), np.ones((4, 4))), -1, 1)  # (num, 1, 16, 16) blocks
    noise = rng.standard_normal(clean.shape)
    trajectory = []
    for k, t in enumerate(np.linspace(999, 0, steps).round().astype(int)):
        a = (k + 1) / steps
        trajectory.append((t, a * clean + (1 - a) * noise, clean))
    return denoising_frames(trajectory, scale=scale, max_frames=steps), clean


def test_gif_of_a_64_sample_run_stays_under_2_mb_and_readable(tmp_path):
    frames, clean = _noisy_run_frames()
    raw = sum(f.size for f in frames)
    path = write_gif(tmp_path / "run.gif", frames)
    size = path.stat().st_size
    assert size <= 2_000_000, size  # was 9.5 MB for such a run before palettes and the budget
    assert raw > 20 * 2_000_000  # the frames themselves are large: the budget did the work
    im = Image.open(path)
    assert im.n_frames >= 10  # still an animation
    im.seek(im.n_frames - 1)
    last = np.asarray(im.convert("RGB")).astype(int)
    assert last.shape == frames[-1].shape
    assert np.abs(last - frames[-1].astype(int)).mean() < 6  # the final frame survives the palette


def test_gif_merges_repeated_frames_and_keeps_the_total_time(tmp_path):
    frames = [np.full((16, 16, 3), v, np.uint8) for v in (0, 0, 0, 100, 200)]
    im = Image.open(write_gif(tmp_path / "r.gif", frames, duration_ms=50, last_frame_ms=500))
    assert im.n_frames == 3
    durations = []
    for i in range(im.n_frames):
        im.seek(i)
        durations.append(im.info["duration"])
    assert durations == [150, 50, 500]


def test_denoising_frames_count_the_runs_steps_and_name_the_halves():
    x = np.zeros((2, 1, 4, 4))
    timesteps = np.array([999, 749, 499, 249])
    trajectory = [(int(t), x, x) for t in timesteps[[0, 2, 3]]]  # a subsampled (e.g. decoded) trajectory
    frames = denoising_frames(trajectory, timesteps=timesteps, labels=("decode(z_t)", "decode(z_0)"))
    assert len(frames) == 3 and frames[0].shape == frames[2].shape
    frames_plain = denoising_frames(trajectory)  # without the run's timesteps: no step count, t only
    assert not np.array_equal(frames[1][:18], frames_plain[1][:18])  # "step 3/4   t = 499" vs "t = 499"
    with pytest.raises(ValueError, match="timesteps"):
        denoising_frames(trajectory, timesteps=[999, 500])


def test_denoising_strip_has_a_header_of_timesteps():
    x = np.zeros((3, 1, 8, 8))
    trajectory = [(t, x, x) for t in (999, 500, 0)]
    strip = denoising_strip(trajectory, x, count=4, scale=2, pad=2)
    body = 3 * (16 + 2) + 2
    assert strip.shape == (16 + body, 4 * (16 + 2) + 2, 3)
    assert (strip[:16] < 128).any()  # the header holds text


def test_gif_palette_keeps_small_coloured_shapes_their_hue(tmp_path):
    """Mostly black frames with small shapes of seven colours plus colourful noise (a latent
    model's decoded trajectory): the palette must not spend itself on the background (red came
    out magenta when it was fitted to the pixels rather than to their distinct colours)."""
    rng = np.random.default_rng(0)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
                        [255, 255, 255]], np.uint8)
    frames = []
    for k in range(12):
        f = np.zeros((96, 7 * 40, 3), np.uint8)
        f[:40] = (rng.random((40, 7 * 40, 3)) * 255 * (k / 11)).astype(np.uint8)  # a strip of noise
        for i, c in enumerate(colours):
            f[60:80, i * 40 + 10:i * 40 + 30] = (c * (0.6 + 0.4 * k / 11)).astype(np.uint8)
        frames.append(f)
    im = Image.open(write_gif(tmp_path / "colours.gif", frames))
    im.seek(im.n_frames - 1)
    last = np.asarray(im.convert("RGB")).astype(int)
    for i, c in enumerate(colours):
        got = last[60:80, i * 40 + 10:i * 40 + 30].reshape(-1, 3).mean(axis=0)
        assert np.abs(got - c).max() < 40, (c, got)
