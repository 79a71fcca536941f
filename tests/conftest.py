"""Shared test settings: hypothesis without deadlines (the first call of a Numba kernel
compiles or loads it from cache) and a small, fixed example budget so the suite stays fast.
Set HYPOTHESIS_PROFILE=thorough for a longer search. The fixture each_backend runs a test on
both kernel backends."""

import os

import pytest
from hypothesis import HealthCheck, settings

from tinydiff import kernels

settings.register_profile(
    "default", deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="module", params=kernels.BACKENDS)
def each_backend(request):
    """Run the test once on each backend (tinydiff.kernels.use): the fast Numba kernels and their
    NumPy reference twins are held to the same checks. Module-scoped, so that hypothesis's
    examples share it."""
    with kernels.use(request.param):
        yield request.param


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A CLIP folder (text_encoder/ + tokenizer/, the layout `tinydiff train-clip` writes) with a
    tiny randomly initialised text encoder, hidden size 16, for the text-to-image tests."""
    import numpy as np

    from tinydiff.data.tokenizer import WordTokenizer
    from tinydiff.models.clip_text import CLIPTextModelWithProjection

    folder = tmp_path_factory.mktemp("clip")
    tokenizer = WordTokenizer()
    encoder = CLIPTextModelWithProjection(
        vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32, projection_dim=8,
        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
        pad_token_id=0, bos_token_id=1, eos_token_id=3, rng=np.random.default_rng(0))
    encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save(folder / "tokenizer")
    return folder


@pytest.fixture(scope="session")
def tiny_t2i_dir(tiny_clip_dir, tmp_path_factory):
    """A TextToImagePipeline folder with a tiny random UNet (block_out_channels (8, 16), cross-
    attention to tiny_clip_dir's 16-wide text encoder), the shipped Shapes VAE and DDIM with
    v-prediction: what the text-to-video tests inflate."""
    import numpy as np

    from tinydiff.diffusion import DDIMScheduler
    from tinydiff.models.unet_condition import UNet2DConditionModel
    from tinydiff.pipelines.latent import load_vae_folder
    from tinydiff.pipelines.text_encoding import load_text_encoder
    from tinydiff.pipelines.text_to_image import TextToImagePipeline
    from tinydiff.pretrained import HERE

    text_encoder, tokenizer = load_text_encoder(tiny_clip_dir)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8,
                                rng=np.random.default_rng(3))
    scheduler = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False)
    folder = tmp_path_factory.mktemp("t2i") / "pipe"
    TextToImagePipeline(unet, load_vae_folder(HERE / "shapes_latent" / "vae"), text_encoder, tokenizer, scheduler,
                        guidance_scale=2.0).save_pretrained(folder)
    return folder
