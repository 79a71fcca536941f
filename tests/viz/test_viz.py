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
