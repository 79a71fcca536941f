"""DreamBooth's trainer on the tiny random pipeline of test_export_sd: eq. 2's weighting, class
images that are the model's own samples, only the adapter moves, the same seed gives the same
adapter, the loss falls, and the saved adapter is the trained one."""

import numpy as np
import pytest
from test_export_sd import tiny_parts, tiny_pipeline

from tinydiff.nn.lora_model import lora_parameters
from tinydiff.pipelines import TrainConfig
from tinydiff.pipelines.dreambooth import (LORA_FILE, DreamBoothConfig, DreamBoothData, DreamBoothTrainer,
                                           generate_class_images)
from tinydiff.pipelines.lora_files import load_lora_weights

INSTANCES = np.random.default_rng(5).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)


def trainer(out, steps=3, rank=4, prior=True, lr=1e-2, seed=0, targets=DreamBoothConfig.lora_target_modules):
    pipe = tiny_pipeline(tiny_parts())
    db = DreamBoothConfig(with_prior_preservation=prior, prior_loss_weight=0.5, num_class_images=3,
                          class_batch_size=2, lora_rank=rank, class_steps=2, lora_target_modules=targets)
    config = TrainConfig(steps=steps, batch_size=2, lr=lr, warmup_steps=1, ema_decay=0.0, seed=seed,
                         checkpoint_every=steps, sample_every=0, sample_steps=2)
    return DreamBoothTrainer(pipe, INSTANCES, db, config, out, progress=False)


def assert_saved_adapter_is_the_trained_one(t, out):
    """A fresh tiny pipeline with out/final's adapter loaded predicts what the trained model does."""
    loaded = tiny_pipeline(tiny_parts())
    load_lora_weights(loaded.unet, None, out / "final" / LORA_FILE)
    rng = np.random.default_rng(0)
    x, ts, c = rng.standard_normal((2, 2, 4, 4)).astype(np.float32), np.array([3, 50]), t.data(0)[1][:2]
    t.model.eval()
    np.testing.assert_allclose(loaded.unet(x, ts, c), t.model(x, ts, c), atol=1e-5)


def test_weights_make_the_batch_mean_eq_2_s_sum():
    rng = np.random.default_rng(0)
    data = DreamBoothData(rng.standard_normal((3, 2, 4, 4)), np.ones((3, 2, 4, 4)), 0.0, 1.0, np.zeros((1, 5, 8)), 0,
                          rng.standard_normal((7, 2, 4, 4)), np.ones((1, 5, 8)), class_batch_size=2,
                          prior_loss_weight=0.3)
    (z, states), weight = data(4), data.weight
    assert z.shape == (5, 2, 4, 4) and states.shape == (5, 5, 8)
    assert (states[:3] == 0).all() and (states[3:] == 1).all()
    per_sample = rng.uniform(size=5)
    assert np.mean(weight * per_sample) == pytest.approx(per_sample[:3].mean() + 0.3 * per_sample[3:].mean())
    z_again, _ = data(4)
    np.testing.assert_array_equal(z, z_again)  # keyed by (seed, step)


def test_class_images_are_the_frozen_model_s_own_samples(tmp_path):
    t = trainer(tmp_path / "run")
    fresh = tiny_pipeline(tiny_parts())
    z, _ = generate_class_images(fresh, "a shape", 3, 0, num_inference_steps=2)
    np.testing.assert_array_equal(t.class_latents, z)


def test_only_the_adapter_trains_the_loss_falls_and_the_file_is_the_adapter(tmp_path):
    t = trainer(tmp_path / "run", steps=12, lr=3e-2)
    base = {k: v.copy() for k, v in t.model.state_dict().items() if "lora" not in k}
    before = t.evaluate(range(100, 104))
    t.run()
    after = t.evaluate(range(100, 104))
    assert after < before
    state = t.model.state_dict()
    assert all(np.array_equal(state[k], v) for k, v in base.items())
    assert any(np.abs(p.data).max() > 0 for p in lora_parameters(t.model)[1::2])  # B moved from 0
    assert_saved_adapter_is_the_trained_one(t, tmp_path / "run")
    assert (tmp_path / "run" / "final" / "dreambooth.json").is_file()


def test_feed_forward_targets_are_adapted_and_saved(tmp_path):
    t = trainer(tmp_path / "run", steps=2, prior=False, targets=("to_v", "ff.net.0.proj", "ff.net.2"))
    assert t.adapted and all(name.endswith(("to_v", "ff.net.0.proj", "ff.net.2")) for name in t.adapted)
    assert any(name.endswith("ff.net.2") for name in t.adapted)
    t.run()
    assert any(np.abs(p.data).max() > 0 for p in lora_parameters(t.model)[1::2])  # some B moved from 0
    assert_saved_adapter_is_the_trained_one(t, tmp_path / "run")


def test_same_seed_same_adapter_another_seed_another(tmp_path):
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        t = trainer(tmp_path / name, seed=seed, prior=False)
        t.run()
        runs.append([p.data.copy() for p in lora_parameters(t.model)])
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(np.array_equal(a, c) for a, c in zip(runs[0], runs[2]))


def test_full_fine_tuning_saves_a_pipeline(tmp_path):
    t = trainer(tmp_path / "run", steps=2, rank=None, prior=False, lr=1e-3)
    t.run()
    assert (tmp_path / "run" / "final" / "model_index.json").is_file()


@pytest.mark.parametrize("change, name", [(dict(instance_prompt="a red shape"), "instance_prompt"),
                                          (dict(class_prompt="a dog"), "class_prompt"),
                                          (dict(lora_rank=0), "lora_rank"),
                                          (dict(prior_loss_weight=-1.0), "prior_loss_weight"),
                                          (dict(num_class_images=0), "num_class_images"),
                                          (dict(lora_target_modules="to_q"), "lora_target_modules"),
                                          (dict(lora_target_modules=()), "lora_target_modules")])
def test_bad_settings_are_named(change, name):
    with pytest.raises(ValueError, match=name):
        DreamBoothConfig(**change).validate(tiny_parts().tokenizer)
