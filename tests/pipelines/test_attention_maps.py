"""cross_attention_maps on a tiny random text-to-image pipeline: the images are the pipeline's
own, the maps sum to 1 over the tokens at every pixel, they are the mean of the recorded
probabilities, and recording is off again afterwards. Bilinear upsampling as torch's."""

import numpy as np
import pytest

from tinydiff.diffusion import DDIMScheduler
from tinydiff.models.unet_condition import UNet2DConditionModel
from tinydiff.pipelines.attention_maps import (bilinear_matrix, cross_attention_layers, cross_attention_maps,
                                               upsample_bilinear)
from tinydiff.pipelines.latent import load_vae_folder
from tinydiff.pipelines.text_encoding import load_text_encoder
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import HERE

STEPS = 2


@pytest.fixture(scope="module")
def pipe(tiny_clip_dir):
    text_encoder, tokenizer = load_text_encoder(tiny_clip_dir)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8,
                                rng=np.random.default_rng(1))
    vae = load_vae_folder(HERE / "shapes_latent" / "vae")
    return TextToImagePipeline(unet, vae, text_encoder, tokenizer, DDIMScheduler(clip_sample=False),
                               guidance_scale=3.0)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_maps_are_per_token_and_sum_to_one_and_leave_the_images_alone(pipe, scale):
    prompt = "a red circle at the top left"
    result = cross_attention_maps(pipe, prompt, np.random.default_rng(4), STEPS, num_images=2, guidance_scale=scale)
    images = pipe(prompt, num_images_per_prompt=2, guidance_scale=scale, num_inference_steps=STEPS,
                  rng=np.random.default_rng(4))
    np.testing.assert_array_equal(result.images, images)
    m = pipe.tokenizer.model_max_length
    assert result.maps.shape == (2, m, 32, 32) and len(result.tokens) == m
    assert result.tokens[:9] == ["<bos>", "a", "red", "circle", "at", "the", "top", "left", "<eos>"]
    np.testing.assert_allclose(result.maps.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(result.maps >= 0)
    assert result.word("red").shape == (2, 32, 32)
    with pytest.raises(ValueError, match="not a token"):
        result.word("blue")
    assert all(layer.recorded_probabilities is None for layer in cross_attention_layers(pipe.unet))


def test_maps_are_the_mean_of_what_the_layers_attend(pipe):
    """One step without guidance, every map averaged by hand from the recorded probabilities."""
    layers = cross_attention_layers(pipe.unet)
    # diffusers' default blocks: cross-attention in the first down block, the mid block and the last up block's two
    assert [n for n, m in pipe.unet.named_modules() if any(m is layer for layer in layers)] == [
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2", "mid_block.attentions.0.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn2", "up_blocks.1.attentions.1.transformer_blocks.0.attn2"]
    for layer in layers:
        layer.record_probabilities(True)
    pipe("a blue square", guidance_scale=1.0, num_inference_steps=1, rng=np.random.default_rng(2))
    by_hand = []
    for layer in layers:
        (p,) = layer.recorded_probabilities  # (1, heads, h*w, M)
        side = int(np.sqrt(p.shape[2]))
        grid = p.astype(np.float64).mean(axis=1)[0].T.reshape(-1, side, side)  # (M, h, w)
        by_hand.append(np.stack([upsample_bilinear(g, 32) for g in grid]))
        layer.record_probabilities(False)
    result = cross_attention_maps(pipe, "a blue square", np.random.default_rng(2), 1, guidance_scale=1.0)
    np.testing.assert_allclose(result.maps[0], np.mean(by_hand, axis=0), atol=1e-12)


def test_recording_is_switched_off_after_an_error(pipe):
    with pytest.raises(ValueError, match="unknown word"):
        cross_attention_maps(pipe, "a purple zebra", np.random.default_rng(0), 1)
    assert all(layer.recorded_probabilities is None for layer in cross_attention_layers(pipe.unet))
    with pytest.raises(TypeError, match="prompt"):
        cross_attention_maps(pipe, ["a red circle"], np.random.default_rng(0), 1)


def test_bilinear_upsampling_matches_torch_and_keeps_constants():
    weights = bilinear_matrix(4, 32)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    x = np.random.default_rng(0).standard_normal((2, 4, 4))
    np.testing.assert_allclose(upsample_bilinear(np.full((3, 4, 4), 0.25), 32), 0.25)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(32, 32), mode="bilinear",
                                           align_corners=False)[0].numpy()
    np.testing.assert_allclose(upsample_bilinear(x, 32), want, atol=1e-12)
