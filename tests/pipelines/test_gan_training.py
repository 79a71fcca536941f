"""GAN training: the losses and their gradients, the generator's gradient through the
discriminator's input gradient against finite differences, keyed randomness, the budget, a
short ring run that learns, and saved models."""

import numpy as np
import pytest

from tinydiff.models.gan import MLPDiscriminator, MLPGenerator
from tinydiff.pipelines.gan_training import (
    GANTrainConfig, discriminator_loss, generator_gradients, generator_loss, load_gan_model, make_glyph_gan,
    make_ring_gan, ring_batches, ring_evaluator, sample_gan, save_gan, train_gan)


def numeric_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for i in range(a.size):
        old = a.flat[i]
        a.flat[i] = old + eps
        plus = f()
        a.flat[i] = old - eps
        minus = f()
        a.flat[i] = old
        g.flat[i] = (plus - minus) / (2 * eps)
    return g


def test_losses_and_their_gradients():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal(5) * 3, rng.standard_normal(4) * 3
    sig = lambda a: 1 / (1 + np.exp(-a))
    loss, d_real, d_fake = discriminator_loss(real, fake)
    # Goodfellow et al. 2014, eq. 1 (negated, per-batch means)
    assert np.isclose(loss, -np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake))), rtol=1e-12)
    np.testing.assert_allclose(d_real, numeric_grad(lambda: discriminator_loss(real, fake)[0], real), atol=1e-8)
    np.testing.assert_allclose(d_fake, numeric_grad(lambda: discriminator_loss(real, fake)[0], fake), atol=1e-8)
    g_loss, d_g = generator_loss(fake)
    assert np.isclose(g_loss, -np.mean(np.log(sig(fake))), rtol=1e-12)
    np.testing.assert_allclose(d_g, numeric_grad(lambda: generator_loss(fake)[0], fake), atol=1e-8)
    # non-saturating: where D rejects a fake confidently the gradient stays near -1/B, not 0
    assert np.isclose(generator_loss(np.array([-30.0]))[1][0], -1.0) and np.isfinite(generator_loss(np.array([-800.0]))[0])


def test_generator_gradient_flows_through_the_discriminator_input():
    """d L_G / d theta_G from D.backward's input gradient handed to G.backward equals finite
    differences of L_G(theta_G) = mean softplus(-D(G(z))) with D fixed."""
    rng = np.random.default_rng(1)
    g = MLPGenerator(latent_dim=3, hidden=6, num_layers=2, rng=rng).to(np.float64)
    d = MLPDiscriminator(hidden=6, num_layers=2, rng=rng).to(np.float64)
    z = rng.standard_normal((5, 3))
    generator_gradients(g, d, g(z))
    for name, p in g.named_parameters():
        numeric = numeric_grad(lambda: generator_loss(d(g(z)))[0], p.data)
        np.testing.assert_allclose(p.grad, numeric, rtol=1e-6, atol=1e-9, err_msg=name)


def test_same_seed_same_result_and_the_budget():
    def run(seed, steps):
        g, d = make_ring_gan(seed=seed, hidden=16, num_layers=2)
        history = train_gan(g, d, ring_batches(seed, 32), GANTrainConfig(batch_size=32, seed=seed, max_steps=steps,
                                                                         log_every=2, eval_every=3))
        return g.state_dict(), history

    (a, ha), (b, _), (c, _) = run(0, 5), run(0, 5), run(1, 5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert ha["steps"] == 5 and [entry["step"] for entry in ha["log"]] == [2, 4]
    g, d = make_ring_gan(hidden=16, num_layers=2)
    history = train_gan(g, d, ring_batches(0, 32), GANTrainConfig(batch_size=32, budget_seconds=0.05),
                        evaluate=lambda gen: {"n": float(len(sample_gan(gen, 3, np.random.default_rng(0))))})
    assert 0.05 <= history["train_seconds"] < 1.0 and history["steps"] >= 1
    assert [q["step"] for q in history["quality"]] == [0, history["steps"]]
    with pytest.raises(ValueError, match="max_steps, budget_seconds"):
        GANTrainConfig()


def test_a_short_ring_run_learns_the_ring():
    g, d = make_ring_gan(seed=0, hidden=64)
    config = GANTrainConfig(batch_size=128, lr_g=1e-3, lr_d=1e-3, max_steps=300, eval_every=300)
    history = train_gan(g, d, ring_batches(0, 128), config, evaluate=ring_evaluator(num_samples=1000))
    before, after = history["quality"][0], history["quality"][-1]
    assert before["high_quality_share"] < 0.05  # the untrained generator draws near the origin
    assert after["high_quality_share"] > 0.15 and after["modes_covered"] >= 1  # (0.24 and 1 measured)


def test_saved_glyph_gan_samples_the_same(tmp_path):
    g, d = make_glyph_gan(seed=0, base_channels=4, latent_dim=8)
    train_gan(g, d, lambda step: np.zeros((4, 1, 16, 16), np.float32) - 1,
              GANTrainConfig(batch_size=4, max_steps=2))  # BatchNorm's running statistics move
    save_gan(tmp_path / "gan", g, d, {"steps": 2})
    loaded = load_gan_model(tmp_path / "gan" / "generator")
    assert isinstance(load_gan_model(tmp_path / "gan" / "discriminator"), type(d))
    np.testing.assert_array_equal(sample_gan(loaded, 6, np.random.default_rng(3)),
                                  sample_gan(g, 6, np.random.default_rng(3)))
