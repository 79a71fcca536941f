"""Budgeted training of lesson 11's generators: the budget excludes probes, batches are keyed, and a
few steps of each model lower its loss."""

import time

import numpy as np
import pytest

from tinydiff.models.pixel_transformer import PixelTransformer
from tinydiff.models.pixel_vae import PixelVAE
from tinydiff.pipelines.generator_training import (glyph_batches, glyphs_8bit, train_for_seconds,
                                                   transformer_step_fn, vae_step_fn)


def test_budget_counts_training_only_and_probes_start_and_end():
    def step(i):
        time.sleep(0.01)
        return float(i)

    def probe(i):
        time.sleep(0.05)
        return {"step": i}

    started = time.perf_counter()
    log = train_for_seconds(step, 0.1, probe=probe, probe_every=0.05)
    wall = time.perf_counter() - started
    assert 0.1 <= log["seconds"] < 0.2 and wall > log["seconds"] + 0.1
    assert log["probes"][0][0] == 0 and log["probes"][-1][0] == log["steps"] and len(log["probes"]) >= 3
    assert [row[2] for row in log["losses"]] == list(map(float, range(log["steps"])))
    assert train_for_seconds(step, 10.0, max_steps=3)["steps"] == 3
    with pytest.raises(ValueError, match="seconds"):
        train_for_seconds(step, 0)


def test_batches_are_keyed_8bit_glyphs():
    pool, labels = glyphs_8bit(0, 0, 40, size=8)
    assert pool.shape == (40, 1, 8, 8) and labels.shape == (40,)
    v = (pool.astype(np.float64) + 1) * 127.5
    assert np.abs(v - np.round(v)).max() < 1e-3
    data = glyph_batches(pool, 1, 6)
    assert np.array_equal(data(3)[0], data(3)[0]) and not np.array_equal(data(3)[0], data(4)[0])


@pytest.mark.parametrize("make, step_fn", [
    (lambda rng: PixelVAE(sample_size=8, latent_dim=4, hidden=32, rng=rng), vae_step_fn),
    (lambda rng: PixelTransformer(sample_size=8, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                  rng=rng), transformer_step_fn),
])
def test_a_few_steps_lower_the_loss(make, step_fn):
    pool, _ = glyphs_8bit(0, 0, 64, size=8)
    step = step_fn(make(np.random.default_rng(0)), pool, 0, batch_size=16, lr=3e-3)
    losses = [step(i) for i in range(25)]
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
