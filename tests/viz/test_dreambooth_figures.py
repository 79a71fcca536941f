"""Lesson 09's figures: rows of samples with their labels and notes, the rank chart, and the
errors for rows that do not line up."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tinydiff.viz.dreambooth import rank_figure, rows_figure


def test_rows_figure_puts_each_row_s_images_and_labels_in_place():
    rows = [np.full((3, 3, 8, 8), v, dtype=np.float32) for v in (-1.0, 1.0)]
    fig = rows_figure(rows, ["dark", "bright"], "title", col_labels=["a", "b", "c"], notes=[["x"] * 3, ["y"] * 3])
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel() == "dark" and axes[1, 0].get_ylabel() == "bright"
    assert axes[0, 2].get_title() == "c" and axes[1, 1].get_xlabel() == "y"
    assert axes[1, 0].images[0].get_array().min() == 255 and axes[0, 0].images[0].get_array().max() == 0
    plt.close(fig)
    with pytest.raises(ValueError, match="rows"):
        rows_figure([rows[0], rows[1][:2]], ["a", "b"], "t")


def test_rank_figure_draws_one_bar_per_rank_at_its_fidelity():
    fig = rank_figure([1, 4], [0.5, 0.9], [45.0, 130.0], 6800.0, "t")
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert bars == pytest.approx([50.0, 90.0])
    plt.close(fig)
    with pytest.raises(ValueError, match="one value per rank"):
        rank_figure([1, 4], [0.5], [45.0, 130.0], 6800.0, "t")
