"""CLIP's figures (lesson 08): the similarity matrix and the training curves are written as
PNGs that open, of a size that shows them, and bad input is refused with its shape."""

import numpy as np
import pytest
from PIL import Image

from tinydiff.data.captions import CaptionedShapes
from tinydiff.viz.clip import save_similarity_matrix, save_training_curves


def test_the_similarity_matrix_shows_captions_against_thumbnails(tmp_path):
    images, captions, _ = CaptionedShapes(p_full=1.0).get(range(4))
    similarity = np.random.default_rng(0).normal(size=(4, 4)) + 5 * np.eye(4)
    path = save_similarity_matrix(tmp_path / "sim.png", similarity, captions, images, title="held-out pairs")
    with Image.open(path) as png:
        assert png.width > 300 and png.height > 300
        assert np.asarray(png.convert("L")).std() > 10  # not blank
    with pytest.raises(ValueError, match=r"one row per caption .* got shape \(4, 3\)"):
        save_similarity_matrix(tmp_path / "bad.png", similarity[:, :3], captions, images)


def test_the_training_curves_have_three_panels(tmp_path):
    curves = {"loss": [[10, 4.9], [20, 3.0], [30, 2.1]], "temperature": [[10, 14.3], [20, 15.0], [30, 16.2]],
              "retrieval": [[15, 0.4, 0.35], [30, 0.9, 0.85]]}
    path = save_training_curves(tmp_path / "curves.png", curves, title="CLIP")
    with Image.open(path) as png:
        assert png.width > 2 * png.height and np.asarray(png.convert("L")).std() > 10
    with pytest.raises(ValueError, match="loss, temperature and retrieval"):
        save_training_curves(tmp_path / "bad.png", {"loss": curves["loss"]})
