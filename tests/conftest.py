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
