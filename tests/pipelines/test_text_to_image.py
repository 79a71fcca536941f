"""Text-to-image (Stable Diffusion's recipe): prompts through a frozen text encoder, guidance
against the empty or a negative prompt checked against the formula computed by hand, the
pipeline folder's round trip, the captioned training source, and training that lowers the
loss and resumes bit-identically. Every model is tiny and random (tiny_clip_dir in conftest)."""

import numpy as np
import pytest

from tinydiff.data.captions import parse_caption
from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from tinydiff.models import UNet2DModel
from tinydiff.models.unet_condition import UNet2DConditionModel
from tinydiff.pipelines import TrainConfig, sample
from tinydiff.pipelines.latent import decode_latents, load_vae_folder
from tinydiff.pipelines.text_conditioning import (SAMPLE_PROMPTS, TextToImageTrainer, captioned_latent_source,
                                                  drop_captions)
from tinydiff.pipelines.text_encoding import encode_prompts, load_text_encoder
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import HERE

STEPS = 3


def tiny_unet(seed=1):
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8,
                                rng=np.random.default_rng(seed))


@pytest.fixture(scope="module")
def vae():
    return load_vae_folder(HERE / "shapes_latent" / "vae")


@pytest.fixture(scope="module")
def pipe(tiny_clip_dir, vae):
    text_encoder, tokenizer = load_text_encoder(tiny_clip_dir)
    return TextToImagePipeline(tiny_unet(), vae, text_encoder, tokenizer, DDIMScheduler(clip_sample=False),
                               guidance_scale=3.0)


def by_hand(pipe, cond, uncond, scale, latents):
    """DDIM with separate forwards of B for each branch, guided = uncond + s (cond - uncond)."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(STEPS)
    x = latents.astype(np.float32)
    for t in scheduler.timesteps:
        tt = np.full(len(x), int(t))
        eps = pipe.unet(x, tt, cond)
        if scale != 1.0:
            e_u = pipe.unet(x, tt, uncond)
            eps = e_u + scale * (eps - e_u)  # Ho & Salimans 2022, eq. 6, s = 1 + w
        x = scheduler.step(eps, t, x).prev_sample.astype(np.float32)
    return np.clip(decode_latents(pipe.vae, x), -1, 1)


def test_encode_prompts_gives_the_last_hidden_state_and_the_empty_prompt_is_bos_eos(tiny_clip_dir):
    text_encoder, tokenizer = load_text_encoder(tiny_clip_dir)
    states = encode_prompts(text_encoder, tokenizer, ["a red circle", ""])
    assert states.shape == (2, tokenizer.model_max_length, 16) and states.dtype == np.float32
    ids = tokenizer([""])
    assert ids[0, :2].tolist() == [tokenizer.bos_token_id, tokenizer.eos_token_id] and not ids[0, 2:].any()
    np.testing.assert_array_equal(states[1:], text_encoder(ids).last_hidden_state)
    assert not text_encoder.training  # frozen: eval mode keeps no caches
    with pytest.raises(FileNotFoundError, match="text_encoder/"):
        load_text_encoder(tiny_clip_dir / "tokenizer")


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_pipeline_equals_guidance_computed_by_hand(pipe, scale):
    latents = np.random.default_rng(5).standard_normal((4, 4, 8, 8))
    images, z = pipe(["a red circle", "a blue square at the top"], num_images_per_prompt=2, guidance_scale=scale,
                     num_inference_steps=STEPS, rng=np.random.default_rng(0), latents=latents, return_latents=True)
    cond = np.repeat(pipe.encode(["a red circle", "a blue square at the top"]), 2, axis=0)
    expected = by_hand(pipe, cond, np.repeat(pipe.encode([""]), 4, axis=0), scale, latents)
    assert images.shape == (4, 3, 32, 32) and z.shape == (4, 4, 8, 8)
    np.testing.assert_allclose(images, expected, atol=2e-4)


def test_negative_prompt_replaces_the_empty_one(pipe):
    latents = np.random.default_rng(6).standard_normal((1, 4, 8, 8))
    kwargs = dict(guidance_scale=4.0, num_inference_steps=STEPS, rng=np.random.default_rng(0), latents=latents)
    negative = pipe("a red circle", negative_prompt="a green triangle", **kwargs)
    expected = by_hand(pipe, pipe.encode(["a red circle"]), pipe.encode(["a green triangle"]), 4.0, latents)
    np.testing.assert_allclose(negative, expected, atol=2e-4)
    assert np.abs(negative - pipe("a red circle", **kwargs)).max() > 1e-3


def test_same_seed_same_images_and_folder_round_trip(pipe, tmp_path):
    a = pipe("a small red circle", num_images_per_prompt=2, num_inference_steps=STEPS, rng=np.random.default_rng(3))
    b = pipe("a small red circle", num_images_per_prompt=2, num_inference_steps=STEPS, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - pipe("a small red circle", num_images_per_prompt=2, num_inference_steps=STEPS,
                           rng=np.random.default_rng(4))).max() > 1e-3
    pipe.save_pretrained(tmp_path / "t2i")
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "t2i")
    assert loaded.guidance_scale == 3.0 and isinstance(loaded.scheduler, DDIMScheduler)
    np.testing.assert_array_equal(loaded("a small red circle", num_images_per_prompt=2, num_inference_steps=STEPS,
                                         rng=np.random.default_rng(3)), a)
    with pytest.raises(FileNotFoundError, match="not a text-to-image pipeline"):
        TextToImagePipeline.from_pretrained(tmp_path)


@pytest.mark.parametrize("scheduler", [DDPMScheduler(clip_sample=False), DPMSolverMultistepScheduler()])
def test_sample_guides_text_with_every_scheduler(pipe, scheduler):
    cond, uncond = pipe.encode(["a red circle"]), pipe.encode([""])
    run = [sample(pipe.unet, scheduler, (2, 4, 8, 8), np.random.default_rng(1), STEPS, guidance_scale=s,
                  encoder_hidden_states=cond, negative_encoder_hidden_states=uncond, guidance_interval=interval)
           for s, interval in ((1.0, None), (3.0, None), (3.0, (1, 1)))]
    assert all(np.isfinite(x).all() for x in run) and np.abs(run[0] - run[1]).max() > 1e-4
    np.testing.assert_array_equal(run[2], run[0])  # no step has t = 1: the interval guides none of them


def test_sample_refuses_a_text_condition_that_does_not_fit(pipe):
    rng, cond = np.random.default_rng(0), pipe.encode(["a red circle"])
    ddim = DDIMScheduler(clip_sample=False)
    with pytest.raises(ValueError, match="negative_encoder_hidden_states: guidance_scale=2.0"):
        sample(pipe.unet, ddim, (1, 4, 8, 8), rng, 2, guidance_scale=2.0, encoder_hidden_states=cond)
    with pytest.raises(ValueError, match=r"encoder_hidden_states: expected shape \(1, N, 16\)"):
        sample(pipe.unet, ddim, (1, 4, 8, 8), rng, 2, encoder_hidden_states=cond[..., :8])
    with pytest.raises(ValueError, match="the UNet2DConditionModel is text-conditional"):
        sample(pipe.unet, ddim, (1, 4, 8, 8), rng, 2)
    plain = UNet2DModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 8),
                        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=8)
    with pytest.raises(ValueError, match="not text-conditional"):
        sample(plain, ddim, (1, 4, 8, 8), rng, 2, encoder_hidden_states=cond)


# ---- training ------------------------------------------------------------------------------

def text_trainer(out_dir, tiny_clip_dir, vae, steps=6, drop=0.25, lr=3e-3):
    text_encoder, tokenizer = load_text_encoder(tiny_clip_dir)
    config = TrainConfig(steps=steps, batch_size=8, lr=lr, warmup_steps=1, checkpoint_every=3, cond_drop_prob=drop,
                         ema_decay=0.9, num_samples=4, sample_steps=2)
    data = captioned_latent_source(vae, text_encoder, tokenizer, 16, config.batch_size, config.seed, drop)
    return TextToImageTrainer(tiny_unet(), DDPMScheduler(clip_sample=False), vae, text_encoder, tokenizer, data,
                              config, out_dir, progress=False)


def test_captions_are_fresh_true_and_dropped_by_seed_and_step(tiny_clip_dir, vae, tmp_path):
    data = text_trainer(tmp_path, tiny_clip_dir, vae, drop=0.0).data
    z, states = data(0)
    assert z.shape == (8, 4, 8, 8) and states.shape == (8, 16, 16) and states.dtype == np.float32
    _, attributes = data.latents(0)
    for step in (0, 2, 4):  # a batch per epoch of 16 images: steps 0, 2, 4 show the same images in other orders
        _, rows = data.latents(step)
        for caption, row in zip(data.captions(step), rows.tolist()):
            named = parse_caption(caption)  # every caption is true of its image
            values = {"shape": row[0], "colour": row[1], "size": row[2], "position": row[3] * 3 + row[4]}
            assert all(values[k] == v for k, v in named.items()), (caption, row)
    assert data.captions(0) == data.captions(0) and data.captions(0) != data.captions(2)
    drop = drop_captions(["a red circle"] * 4000, 0.1, (0, 19, 7))
    assert drop == drop_captions(["a red circle"] * 4000, 0.1, (0, 19, 7))
    assert 0.08 < drop.count("") / 4000 < 0.12
    assert all(parse_caption(p) for p in SAMPLE_PROMPTS[:3])


def test_training_lowers_the_loss_and_resumes_bit_identically(tiny_clip_dir, vae, tmp_path):
    straight = text_trainer(tmp_path / "straight", tiny_clip_dir, vae, steps=12)
    held_out = range(10**6, 10**6 + 4)
    before = straight.evaluate(held_out)
    straight.run()
    assert straight.evaluate(held_out) < before
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "straight" / "final")
    assert loaded.guidance_scale == straight.guidance_scale
    assert (tmp_path / "straight" / "samples" / "step-0000012.png").is_file()

    chunks = text_trainer(tmp_path / "chunks", tiny_clip_dir, vae, steps=12)
    chunks.run(until=6)
    resumed = text_trainer(tmp_path / "chunks", tiny_clip_dir, vae, steps=12)  # a fresh model and optimizer
    resumed.run(resume=True)
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    for a, b in zip(straight.ema.shadow, resumed.ema.shadow):
        np.testing.assert_array_equal(a, b)


def test_trainer_refuses_a_source_that_drops_another_share(tiny_clip_dir, vae, tmp_path):
    trainer = text_trainer(tmp_path, tiny_clip_dir, vae)
    config = TrainConfig(steps=4, batch_size=8, warmup_steps=1, cond_drop_prob=0.5)
    with pytest.raises(ValueError, match="config.cond_drop_prob is 0.5"):
        TextToImageTrainer(trainer.model, trainer.scheduler, vae, trainer.text_encoder, trainer.tokenizer,
                           trainer.data, config, tmp_path / "other", progress=False)


def test_two_processes_train_a_text_unet_as_one(tiny_clip_dir):
    from tinydiff.runtime.parallel import DataParallel

    unet = tiny_unet()
    text_encoder, tokenizer = load_text_encoder(tiny_clip_dir)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 4, 8, 8)).astype(np.float32), rng.integers(0, 1000, 4)
    states = encode_prompts(text_encoder, tokenizer, ["a red circle", "", "a shape", "a blue square"])
    grad = rng.standard_normal((4, 4, 8, 8)).astype(np.float32)
    unet.train()
    out = unet(x, t, states)
    unet.zero_grad()
    unet.backward(grad)
    alone = [p.grad.copy() for p in unet.parameters()]
    with DataParallel(unet, 2) as parallel:
        np.testing.assert_allclose(parallel(x, t, states), out, atol=1e-5)
        unet.zero_grad()
        parallel.backward(grad)
        for a, p in zip(alone, unet.parameters()):
            np.testing.assert_allclose(p.grad, a, atol=1e-4, rtol=1e-4)
