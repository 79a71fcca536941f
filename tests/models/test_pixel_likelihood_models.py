"""The two likelihood models of lesson 11: the VAE's ELBO and the pixel transformer's exact NLL.
Gradients against float64 finite differences; the cached, token-by-token logits against the full
forward's; the NLL against the chain rule of the sampled distribution."""

import numpy as np
import pytest

from tinydiff.diffusion.likelihood import from_8bit
from tinydiff.models.pixel_transformer import PixelTransformer
from tinydiff.models.pixel_vae import PixelVAE
from tinydiff.nn import Module
from tinydiff.nn.gradcheck import gradcheck


class VAEOnFixedNoise(Module):
    """forward(pixels (B, 1, H, W) ints) -> -ELBO (B,) with fixed noise: gradcheck's view of the VAE."""

    def __init__(self, vae, noise):
        super().__init__()
        self.vae, self.noise = vae, noise

    def forward(self, pixels):
        dtype = self.vae.param_dtype()
        return self.vae(from_8bit(pixels, dtype), self.noise.astype(dtype))

    def backward(self, grad_out):
        return self.vae.backward(grad_out)


def test_vae_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    vae = PixelVAE(sample_size=4, latent_dim=3, hidden=8, rng=rng)
    pixels = rng.integers(0, 256, size=(3, 1, 4, 4))
    pixels[0, 0, 0] = [0, 255, 0, 255]  # the open-ended edge bins
    gradcheck(VAEOnFixedNoise(vae, rng.standard_normal((3, 3))), (pixels,), rng, max_elements=40)


def test_vae_elbo_is_the_kl_plus_the_reconstruction_nll_and_samples_are_images():
    rng = np.random.default_rng(1)
    vae = PixelVAE(sample_size=4, latent_dim=3, hidden=8, rng=rng).to(np.float64)
    x = from_8bit(rng.integers(0, 256, size=(5, 1, 4, 4)), np.float64)
    bpd = vae.negative_elbo_bits_per_dim(x, np.random.default_rng(2))
    q = vae.encode(x)
    z = q.sample(np.random.default_rng(2).standard_normal((5, 3))[:, :, None, None])[:, :, 0, 0]
    mean, log_scale = vae.decode(z)
    from scipy.stats import norm
    lo = np.where(x == -1, -np.inf, x - 1 / 255)
    hi = np.where(x == 1, np.inf, x + 1 / 255)
    nll = -np.log(norm.cdf(hi, mean, np.exp(log_scale)) - norm.cdf(lo, mean, np.exp(log_scale))).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bpd, (nll + q.kl()) / (16 * np.log(2)), rtol=1e-8)
    s = vae.sample(4, rng)
    assert s.shape == (4, 1, 4, 4) and s.min() >= -1 and s.max() <= 1
    with pytest.raises(ValueError, match="noise"):
        vae(x, np.zeros((5, 2)))


def small_transformer(rng, dtype=np.float64):
    return PixelTransformer(sample_size=3, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16,
                            rng=rng).to(dtype)


def test_transformer_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    model = small_transformer(rng)
    gradcheck(model, (rng.integers(0, 256, size=(2, 9)),), rng, max_elements=30)


def test_cached_token_by_token_logits_equal_the_full_forward():
    rng = np.random.default_rng(4)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        model = small_transformer(rng, dtype).eval()
        pixels = rng.integers(0, 256, size=(3, 9))
        full = model(pixels)
        cache = model.empty_cache(3)
        token = np.full(3, 256)
        for i in range(9):
            np.testing.assert_allclose(model.step_logits(cache, token, i), full[:, i], atol=tol, rtol=tol)
            token = pixels[:, i]


def test_nll_is_the_chain_rule_of_the_token_probabilities_and_the_causal_mask_holds():
    rng = np.random.default_rng(5)
    model = small_transformer(rng).eval()
    pixels = rng.integers(0, 256, size=(2, 9))
    cache, token, total = model.empty_cache(2), np.full(2, 256), np.zeros(2)
    for i in range(9):
        logits = model.step_logits(cache, token, i)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        total -= np.log(p[np.arange(2), pixels[:, i]] / p.sum(axis=1))
        token = pixels[:, i]
    np.testing.assert_allclose(model.nll_bits_per_dim(pixels), total / (9 * np.log(2)), rtol=1e-10)
    changed = pixels.copy()
    changed[:, 5] = (changed[:, 5] + 7) % 256
    a, b = model(pixels), model(changed)
    np.testing.assert_array_equal(a[:, :6], b[:, :6])  # positions <= 5 never see pixel 5
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-6


def test_sampling_is_keyed_and_draws_from_the_model():
    """Same generator, same images; and the first pixel's frequencies follow softmax(logits_0)."""
    rng = np.random.default_rng(6)
    model = small_transformer(rng).eval()
    model.lm_head.weight.data *= 0.0
    model.lm_head.bias.data[:] = np.log(np.r_[[8.0, 4.0, 2.0], np.full(253, 1e-9)])
    a = model.sample(2000, np.random.default_rng(7))
    assert np.array_equal(a, model.sample(2000, np.random.default_rng(7)))
    freq = np.bincount(a[:, 0], minlength=3)[:3] / 2000
    np.testing.assert_allclose(freq, [8 / 14, 4 / 14, 2 / 14], atol=0.04)
    images = model.to_images(a[:4])
    assert images.shape == (4, 1, 3, 3)
    with pytest.raises(ValueError, match="pixels"):
        model(np.zeros((2, 8), dtype=np.int64))
    with pytest.raises(TypeError, match="pixels"):
        model(np.zeros((2, 9)))
