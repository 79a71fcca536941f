"""Lesson 08's text-to-image figures: real captioned Shapes images (which prompt_adherence reads
exactly) get "ok" and a green frame, an image with the wrong colour gets "colour wrong", a blank
one "no clean shape"; every figure is written as a PNG that is not blank, and bad input is
refused with its shape."""

import numpy as np
import pytest
from PIL import Image

from tinydiff.data.captions import CaptionedShapes
from tinydiff.metrics.prompt_adherence import prompt_adherence
from tinydiff.viz import save_figure
from tinydiff.viz.text2image import attention_maps_figure, guidance_figure, prompt_grid_figure, verdicts


@pytest.fixture(scope="module")
def samples():
    images, captions, _ = CaptionedShapes(seed=3, p_full=1.0).get(range(4))
    return images, captions


def not_blank(path):
    with Image.open(path) as png:
        return png.width > 200 and np.asarray(png.convert("L")).std() > 10


def test_verdicts_name_what_went_wrong(samples):
    images, captions = samples
    wrong = [captions[1].replace(c, "magenta") for c in ("red", "green", "blue", "yellow", "cyan", "white")
             if c in captions[1]][0]
    blank = -np.ones_like(images[:1])
    result = prompt_adherence(np.concatenate([images[:2], blank]), [captions[0], wrong, captions[2]])
    assert verdicts(result) == ["ok", "colour wrong", "no clean shape"]


def test_prompt_grid_and_guidance_figures(samples, tmp_path):
    images, captions = samples
    prompts = captions[:2]
    asked = [prompts[0], prompts[0], prompts[1], prompts[1]]
    adherence = prompt_adherence(images, asked)
    assert not_blank(save_figure(prompt_grid_figure(images, prompts, adherence, 2, "a title"), tmp_path / "g.png"))
    with pytest.raises(ValueError, match=r"expected 6 RGB images"):
        prompt_grid_figure(images, captions[:3], adherence, 2)
    summary = {**adherence.summary(), "adherence": adherence}
    fig = guidance_figure([images, images], [1.0, 4.0], [summary, summary], "scales")
    assert not_blank(save_figure(fig, tmp_path / "s.png"))
    with pytest.raises(ValueError, match="one of each per scale"):
        guidance_figure([images], [1.0, 4.0], [summary, summary])


def test_attention_maps_figure(samples, tmp_path):
    images, _ = samples
    maps = np.random.default_rng(0).dirichlet(np.ones(3), size=(2, 32, 32)).transpose(0, 3, 1, 2)  # (2, 3, 32, 32)
    path = save_figure(attention_maps_figure(images[:2], maps, ["red", "circle", "left"], "maps"), tmp_path / "a.png")
    assert not_blank(path)
    with pytest.raises(ValueError, match=r"maps: expected \(R=2, words=2"):
        attention_maps_figure(images[:2], maps, ["red", "circle"])
