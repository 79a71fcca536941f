"""Training's sample grids are large enough to see and say what they show."""

import numpy as np
from PIL import Image

from tinydiff.viz.tiles import save_labelled_grid, scale_to_width


def test_small_images_are_zoomed_and_columns_labelled(tmp_path):
    images = np.full((16, 1, 8, 8), 1.0)  # white tiles: the only dark pixels are the text
    path = save_labelled_grid(tmp_path / "g.png", images, "step 300", [str(c) for c in range(10)], ncols=10)
    picture = np.asarray(Image.open(path).convert("L"))
    scale = scale_to_width(8, 10)
    assert picture.shape[1] >= 256 and scale == 4
    band = picture.shape[0] - (2 * (8 * scale + 2) + 2)  # above the two rows of tiles
    assert band > 0 and (picture[:band] < 128).any()
    for j in range(10):  # a label over every column
        left = 2 + j * (8 * scale + 2)
        assert (picture[band // 2:band, left:left + 8 * scale] < 128).any(), j


def test_large_images_are_not_zoomed():
    assert scale_to_width(32, 8) == 1 and scale_to_width(32, 4) == 2
