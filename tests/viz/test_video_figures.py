"""Clip pictures: the GIF grid's frame f is every clip's frame f, the PNG puts a clip's frames in
a row, lesson 10's figures are written and not blank, and the temporal attention maps of a tiny
inflated pipeline are row-stochastic, with the shape's-pixels maps equal to the all-pixels ones
when every pixel is marked."""

import numpy as np
import pytest
from PIL import Image

from tinydiff.data.moving_shapes import MovingShapes
from tinydiff.metrics.video_quality import video_checks
from tinydiff.viz.tiles import tile_images
from tinydiff.viz.video import clip_grid_frames, save_clip_rows, save_clips_gif
from tinydiff.viz.video_figures import checks_figure, curves_figure, paths_figure, strips_figure, temporal_maps_figure


@pytest.fixture(scope="module")
def clips():
    return MovingShapes(seed=4, num_frames=5)[0:4]


def not_blank(path):
    with Image.open(path) as png:
        return png.width > 200 and np.asarray(png.convert("L")).std() > 10


def test_gif_frame_f_tiles_frame_f_of_every_clip(clips, tmp_path):
    video, _, _ = clips
    frames = clip_grid_frames(video, ncols=2, scale=1)
    assert len(frames) == 5
    np.testing.assert_array_equal(frames[3], tile_images(video[:, 3], 2, 2, 1))
    save_clips_gif(tmp_path / "c.gif", video, ncols=2, title="clips")
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 5
    save_clip_rows(tmp_path / "c.png", video, "rows")
    assert not_blank(tmp_path / "c.png")
    with pytest.raises(ValueError, match="clips"):
        save_clip_rows(tmp_path / "x.png", video[0], "one clip without its batch axis")


def test_lesson_figures_are_written_and_not_blank(clips, tmp_path):
    video, captions, _ = clips
    checks = video_checks(video, captions)
    paths = [strips_figure(tmp_path / "s.png", [(c, v) for c, v in zip(captions[:2], video[:2])], "strips"),
             paths_figure(tmp_path / "p.png", [("real", checks.centroid, captions)], "paths"),
             checks_figure(tmp_path / "k.png", [("real", checks.summary()), ("again", checks.summary())], "checks"),
             temporal_maps_figure(tmp_path / "t.png", np.full((2, 5, 5), 0.2), np.eye(5)[None].repeat(2, 0),
                                  ["down_blocks.0.motion_modules.0", "up_blocks.1.motion_modules.2"], "maps"),
             curves_figure(tmp_path / "l.png", [("a", [0, 1, 2], [3.0, 2.0, 1.5])], "curves")]
    for path in paths:
        assert not_blank(path), path


def test_temporal_attention_maps_of_a_tiny_pipeline(tiny_t2i_dir):
    from tinydiff.pipelines.temporal_attention import temporal_attention_maps
    from tinydiff.pipelines.text_to_image import TextToImagePipeline
    from tinydiff.pipelines.text_to_video import TextToVideoPipeline
    from tinydiff.pipelines.video_training import add_motion_words, inflate

    t2i = TextToImagePipeline.from_pretrained(tiny_t2i_dir)
    add_motion_words(t2i.text_encoder, t2i.tokenizer)
    pipe = TextToVideoPipeline(inflate(t2i.unet, np.random.default_rng(0)), t2i.vae, t2i.text_encoder, t2i.tokenizer,
                               t2i.scheduler, guidance_scale=2.0, num_frames=4)
    run = dict(num_inference_steps=2, num_clips=2)
    att = temporal_attention_maps(pipe, "a red circle moving up", np.random.default_rng(1),
                                  where=lambda c: np.ones(c.shape[:2] + c.shape[3:], bool), **run)
    assert att.maps.shape == (6, 2, 4, 4) and len(att.names) == 6  # 1 per down resnet, 2 per up level
    np.testing.assert_allclose(att.maps.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(att.focused, att.maps, atol=1e-12)
    again = pipe("a red circle moving up", num_videos_per_prompt=2, num_inference_steps=2, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(att.clips, again)  # recording changes nothing sampled
    none = temporal_attention_maps(pipe, "a red circle moving up", np.random.default_rng(1),
                                   where=lambda c: np.zeros(c.shape[:2] + c.shape[3:], bool), **run)
    assert np.isnan(none.focused).all()
    assert all(layer.recorded_probabilities is None for layer in
               [m for m in pipe.unet.modules() if type(m).__name__ == "MultiHeadAttention"])
