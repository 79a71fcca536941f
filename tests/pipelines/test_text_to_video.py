"""Text-to-video: an inflated pipeline starts as the image pipeline on every frame (zero proj_out)
and, once a motion module is not zero, ties the frames together; the folder's round trip and
layout; the trained length enforced; the frame-by-frame baseline's independent seeds; the clip
training source; and training that lowers the loss, trains only what it says, and resumes
bit-identically. Tiny random models (tiny_t2i_dir in conftest) on the shipped Shapes VAE."""

import numpy as np
import pytest

from tinydiff.data.moving_shapes import DIRECTIONS, SPEEDS, parse_motion_caption
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pipelines.text_to_video import TextToVideoPipeline, frame_by_frame, unet2d_of
from tinydiff.pipelines.video_training import (TextVideoDenoiser, VideoTrainer, add_motion_words, clip_latent_source,
                                               inflate)
from tinydiff.pretrained.train_video import build_run, video_train_config

STEPS = 3


def video_pipe(folder, seed=0):
    t2i = TextToImagePipeline.from_pretrained(folder)
    rng = np.random.default_rng(seed)
    add_motion_words(t2i.text_encoder, t2i.tokenizer, rng)
    return t2i, TextToVideoPipeline(inflate(t2i.unet, rng), t2i.vae, t2i.text_encoder, t2i.tokenizer, t2i.scheduler,
                                    guidance_scale=2.0, num_frames=4)


def kick(unet, seed=1):
    """Give every motion module's proj_out random weights, as training would."""
    rng = np.random.default_rng(seed)
    for name, p in unet.named_parameters():
        if ".motion_modules." in name and "proj_out" in name:
            p.data[...] = 0.2 * rng.standard_normal(p.shape)


@pytest.fixture(scope="module")
def pipes(tiny_t2i_dir):
    return video_pipe(tiny_t2i_dir)


def test_inflated_pipeline_is_the_image_pipeline_on_every_frame(pipes):
    t2i, pipe = pipes
    latents = np.random.default_rng(2).standard_normal((2, 4, 4, 8, 8))  # (B, C, F, h, w)
    clips = pipe(["a red circle", "a blue square"], num_inference_steps=STEPS, rng=np.random.default_rng(0),
                 latents=latents)
    frames = latents.transpose(0, 2, 1, 3, 4).reshape(8, 4, 8, 8)  # (B F, C, h, w)
    images = t2i(["a red circle"] * 4 + ["a blue square"] * 4, num_inference_steps=STEPS,
                 rng=np.random.default_rng(0), latents=frames)
    assert clips.shape == (2, 4, 3, 32, 32) and clips.dtype == np.float32
    np.testing.assert_allclose(clips.reshape(images.shape), images, atol=1e-4)


def test_motion_modules_tie_the_frames_together(tiny_t2i_dir):
    _, pipe = video_pipe(tiny_t2i_dir)
    latents = np.random.default_rng(2).standard_normal((1, 4, 4, 8, 8))
    moved = latents.copy()
    moved[:, :, 0] += 1.0  # change frame 0's noise only

    def run():
        return pipe("a red circle moving up", num_inference_steps=STEPS, rng=np.random.default_rng(0), latents=latents), \
            pipe("a red circle moving up", num_inference_steps=STEPS, rng=np.random.default_rng(0), latents=moved)

    a, b = run()
    assert np.abs(a[0, 1:] - b[0, 1:]).max() < 1e-5  # frame-wise: the other frames do not notice
    kick(pipe.unet)
    a, b = run()
    assert np.abs(a[0, 1:] - b[0, 1:]).max() > 1e-3  # through temporal attention they do


def test_folder_round_trip_and_layout(pipes, tmp_path):
    _, pipe = pipes
    kick(pipe.unet, seed=4)
    pipe.save_pretrained(tmp_path / "video")
    again = TextToVideoPipeline.from_pretrained(tmp_path / "video")
    assert again.num_frames == 4 and again.guidance_scale == 2.0 and len(again.tokenizer) == len(pipe.tokenizer)
    for part in ("unet", "motion_adapter", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / "video" / part).is_dir()
    image_unet = unet2d_of(pipe.unet)
    assert type(image_unet).__name__ == "UNet2DConditionModel" and not any("motion" in k for k in image_unet.state_dict())
    kw = dict(num_inference_steps=2, rng=None)
    ours = pipe("a green triangle moving left", **{**kw, "rng": np.random.default_rng(1)})
    theirs = again("a green triangle moving left", **{**kw, "rng": np.random.default_rng(1)})
    np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(FileNotFoundError, match="not a text-to-video"):
        TextToVideoPipeline.from_pretrained(tmp_path / "video" / "unet")


def test_clip_length_is_checked(pipes):
    _, pipe = pipes
    clips = pipe("a red circle moving up", num_frames=3, num_inference_steps=1, rng=np.random.default_rng(0))
    assert clips.shape[:2] == (1, 3)
    with pytest.raises(ValueError, match="trained on clips of 4"):
        pipe("a red circle moving up", num_frames=5, num_inference_steps=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_frames"):
        pipe("a red circle moving up", num_frames=1, num_inference_steps=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown word"):
        pipe("a red circle moving sideways", num_inference_steps=1, rng=np.random.default_rng(0))


def test_sample_takes_clips_of_the_video_unet(pipes):
    from tinydiff.pipelines import sample

    _, pipe = pipes
    states = pipe.encode(["a red circle"])
    for shape in ((1, 4, 8, 8), (1, 4, 33, 8, 8), (1, 3, 4, 8, 8)):
        with pytest.raises(ValueError, match=r"\(B, 4, F, H, W\)"):
            sample(pipe.unet, pipe.scheduler, shape, np.random.default_rng(0), 1, encoder_hidden_states=states)
    out = sample(pipe.unet, pipe.scheduler, (1, 4, 2, 8, 8), np.random.default_rng(0), 1, encoder_hidden_states=states)
    assert out.shape == (1, 4, 2, 8, 8)


def test_frame_by_frame_draws_each_frame_from_its_own_seed(pipes):
    t2i, _ = pipes
    clips = frame_by_frame(t2i, ["a red circle", "a blue square"], 3, seed=7, num_inference_steps=2)
    assert clips.shape == (2, 3, 3, 32, 32)
    one = t2i("a blue square", num_inference_steps=2, rng=np.random.default_rng(0),
              latents=np.random.default_rng((7, 1, 2)).standard_normal((1, 4, 8, 8)))
    np.testing.assert_allclose(clips[1, 2], one[0], atol=1e-5)
    assert np.abs(clips[0, 0] - clips[0, 1]).max() > 1e-3


def test_clip_source_captions_are_true_and_dropped_by_seed(pipes):
    t2i, _ = pipes
    data = clip_latent_source(t2i.vae, t2i.tokenizer, 12, 4, seed=3, cond_drop_prob=0.3, num_frames=4)
    z, ids = data(5)
    assert z.shape == (4, 4, 4, 8, 8) and ids.shape == (4, t2i.tokenizer.model_max_length)
    captions = data.captions(5)
    assert captions == data.captions(5) and [t2i.tokenizer.decode(r) for r in ids] == captions
    attributes = data.attributes[data.indices(5)]
    for text, row in zip(captions, attributes):
        if text:
            named = parse_motion_caption(text)
            assert (named["shape"], named["colour"], named["direction"], named["speed"]) == tuple(row[[0, 1, 3, 4]])
    dropped = sum(c == "" for s in range(40) for c in data.captions(s))
    assert 0.15 < dropped / 160 < 0.45
    assert {DIRECTIONS[d] for d in data.attributes[:, 3]} <= set(DIRECTIONS) and data.attributes[:, 4].max() < len(SPEEDS)


def tiny_trainer(folder, out, part, steps=4):
    t2i = TextToImagePipeline.from_pretrained(folder)
    rng = np.random.default_rng(0)
    add_motion_words(t2i.text_encoder, t2i.tokenizer, rng)
    data = clip_latent_source(t2i.vae, t2i.tokenizer, 8, 2, seed=1, cond_drop_prob=0.1, num_frames=4)
    from dataclasses import replace
    config = replace(video_train_config(steps, seed=1), batch_size=2, warmup_steps=1, checkpoint_every=2,
                     sample_every=0, sample_steps=2, lr=3e-3)
    from tinydiff.diffusion import DDPMScheduler
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False)
    model = TextVideoDenoiser(inflate(t2i.unet, rng), t2i.text_encoder, 4)
    return VideoTrainer(model, scheduler, t2i.vae, t2i.tokenizer, data, config, out, train_part=part, progress=False)


@pytest.mark.parametrize("part", ["motion", "unet"])
def test_training_trains_what_it_says_and_lowers_the_loss(tiny_t2i_dir, tmp_path, part):
    trainer = tiny_trainer(tiny_t2i_dir, tmp_path / part, part, steps=6)
    before = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    keys = list(range(1000, 1004))
    start = trainer.evaluate(keys)
    trainer.run()
    changed = {k for k, v in trainer.model.state_dict().items() if not np.array_equal(v, before[k])}
    image = {k for k in changed if k.startswith("unet.") and ".motion_modules." not in k}
    table = "text_encoder.text_model.embeddings.token_embedding.weight"
    assert any(".motion_modules." in k for k in changed) and {k for k in changed if k.startswith("text_encoder.")} \
        == {table}  # of the text encoder, only the motion words' rows learn
    rows = trainer.model.frozen_rows
    np.testing.assert_array_equal(trainer.model.state_dict()[table][:rows], before[table][:rows])
    assert rows == len(trainer.tokenizer) - 4 and bool(image) == (part == "unet")
    assert trainer.evaluate(keys) < start
    final = TextToVideoPipeline.from_pretrained(tmp_path / part / "final")
    assert final.num_frames == 4 and (tmp_path / part / "samples" / "step-0000006.gif").is_file()


def test_resumed_run_ends_with_the_same_weights(tiny_t2i_dir, tmp_path):
    whole = tiny_trainer(tiny_t2i_dir, tmp_path / "whole", "motion")
    whole.run()
    half = tiny_trainer(tiny_t2i_dir, tmp_path / "half", "motion")
    half.run(until=2)
    again = tiny_trainer(tiny_t2i_dir, tmp_path / "half", "motion")
    again.run(resume=True)
    for (name, a), b in zip(whole.model.state_dict().items(), again.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_build_run_refuses_bad_parts(tiny_t2i_dir, tmp_path):
    with pytest.raises(ValueError, match="train_part"):
        build_run(tiny_t2i_dir, tmp_path / "x", "everything", 2, num_clips=8)
