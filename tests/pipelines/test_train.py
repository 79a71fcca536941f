"""The training loop: the loss falls, an interrupted and resumed run ends with the same
weights as an uninterrupted one, a non-finite loss stops training and keeps the last good
checkpoint, and checkpoints are written atomically."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import MLPDenoiser, UNet2DModel
from tinydiff.pipelines import TrainConfig, Trainer, TrainingDiverged, load_pipeline
from tinydiff.pipelines.data_sources import make_source
from tinydiff.pipelines.guidance import drop_condition
from tinydiff.pipelines.train import loss_weights, training_target


def toy_trainer(out_dir, steps=60, prediction_type="epsilon", min_snr_gamma=0.0, lr=3e-3):
    model = MLPDenoiser(hidden=32, num_blocks=2, time_embed_dim=16, rng=np.random.default_rng(0))
    config = TrainConfig(steps=steps, batch_size=128, lr=lr, warmup_steps=5, checkpoint_every=20,
                         log_every=10, min_snr_gamma=min_snr_gamma)
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)
    return Trainer(model, scheduler, make_source("gaussians8", config.batch_size, seed=0), config, out_dir,
                   progress=False)


@pytest.mark.parametrize("prediction_type, gamma", [("epsilon", 0.0), ("sample", 5.0)])
def test_held_out_loss_falls(tmp_path, prediction_type, gamma):
    trainer = toy_trainer(tmp_path, steps=100, prediction_type=prediction_type, min_snr_gamma=gamma)
    held_out = range(10**6, 10**6 + 16)  # step keys training never reaches
    before = trainer.evaluate(held_out)
    trainer.run()
    after = trainer.evaluate(held_out)
    assert after < 0.6 * before, (before, after)


@given(seed=st.integers(0, 2**32 - 1), gamma=st.sampled_from([0.0, 1.0, 5.0]))
def test_min_snr_weights_give_one_loss_in_every_parameterisation(seed, gamma):
    """Hang et al. 2023: min(SNR, gamma) on x0 equals min(SNR, gamma)/SNR on eps and
    min(SNR, gamma)/(SNR + 1) on v, sample by sample, for any one prediction."""
    rng = np.random.default_rng(seed)
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    x0, noise, x0_hat = rng.standard_normal((3, 6, 4))
    t = rng.integers(0, 1000, 6)
    ab = scheduler.alphas_cumprod[t][:, None]
    x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise
    eps_hat = (x_t - np.sqrt(ab) * x0_hat) / np.sqrt(1 - ab)  # the same prediction, as eps
    v, v_hat = (np.sqrt(ab) * e - np.sqrt(1 - ab) * x for e, x in ((noise, x0), (eps_hat, x0_hat)))
    np.testing.assert_allclose(training_target(scheduler_for("v_prediction"), x0, noise, t), v, rtol=1e-6, atol=1e-6)
    snr = ab[:, 0] / (1 - ab[:, 0])
    per_sample = {}
    for kind, err in (("sample", x0 - x0_hat), ("epsilon", noise - eps_hat), ("v_prediction", v - v_hat)):
        w = loss_weights(snr, kind, gamma if gamma else 1e30)  # gamma -> inf: plain SNR weighting
        per_sample[kind] = w * (err**2).sum(axis=1)
    np.testing.assert_allclose(per_sample["epsilon"], per_sample["sample"], rtol=1e-6)
    np.testing.assert_allclose(per_sample["v_prediction"], per_sample["sample"], rtol=1e-6)
    assert loss_weights(snr, "epsilon", 0.0) is None


def scheduler_for(prediction_type):
    return DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    straight = toy_trainer(tmp_path / "straight")
    straight.run()
    interrupted = toy_trainer(tmp_path / "chunks")
    interrupted.run(until=40)  # as if stopped after the step-40 checkpoint
    resumed = toy_trainer(tmp_path / "chunks")  # a fresh process: new model, new optimizer
    resumed.run(resume=True)
    assert resumed.step == straight.step == 60
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    for a, b in zip(straight.ema.shadow, resumed.ema.shadow):
        np.testing.assert_array_equal(a, b)
    assert straight.log == resumed.log


def test_resume_refuses_changed_settings_and_missing_checkpoints(tmp_path):
    toy_trainer(tmp_path).run(until=20)
    with pytest.raises(ValueError, match=r"differ .*lr: the run used 0.003, now 0.01"):
        toy_trainer(tmp_path, lr=1e-2).run(resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        toy_trainer(tmp_path / "empty").run(resume=True)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = toy_trainer(tmp_path)
    trainer.run(until=20)
    good = trainer.latest_checkpoint()
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    trainer.model.linear_out.weight.data[0, 0] = np.nan  # something went badly wrong
    with pytest.raises(TrainingDiverged, match=r"step 20: .*not finite.*last good checkpoint is step 20 \(.*step-0000020\)"):
        trainer.run()
    assert trainer.latest_checkpoint() == good
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    resumed = toy_trainer(tmp_path)
    resumed.run(resume=True, until=25)  # and training can go on from it
    assert resumed.step == 25


def test_unet_training_writes_a_loadable_pipeline_and_samples(tmp_path):
    model = UNet2DModel(rng=np.random.default_rng(0), sample_size=8, in_channels=1, out_channels=1,
                        block_out_channels=(4, 8), norm_num_groups=2, attention_head_dim=4, num_class_embeds=10)
    config = TrainConfig(steps=3, batch_size=4, warmup_steps=1, checkpoint_every=2, sample_steps=2, num_samples=4)
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    trainer = Trainer(model, scheduler, make_source("glyphs", 4, 0, image_size=8, labelled=True), config, tmp_path,
                      progress=False)
    trainer.run()
    assert (tmp_path / "samples" / "step-0000003.png").is_file()
    index = json.loads((tmp_path / "final" / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DModel"]
    loaded, scheduler_config = load_pipeline(tmp_path / "final")
    with trainer.ema.swap_in():
        for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
            np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert scheduler_config["beta_schedule"] == "squaredcos_cap_v2"
    from_checkpoint, _ = load_pipeline(tmp_path / "checkpoints" / "step-0000003")  # EMA weights too
    np.testing.assert_array_equal(from_checkpoint.conv_out.weight.data, loaded.conv_out.weight.data)
    with pytest.raises(FileNotFoundError, match="not a tinydiff model"):
        load_pipeline(tmp_path)


# ---- condition dropout (Ho & Salimans 2022, Algorithm 1) ------------------------------------

def conditional_unet_trainer(out_dir, steps=4, cond_drop_prob=0.2, null=True):
    model = UNet2DModel(rng=np.random.default_rng(0), sample_size=8, in_channels=1, out_channels=1,
                        block_out_channels=(4, 8), norm_num_groups=2, attention_head_dim=4,
                        num_class_embeds=11 if null else 10, class_embed_null_index=10 if null else None)
    config = TrainConfig(steps=steps, batch_size=8, warmup_steps=1, checkpoint_every=2, sample_steps=2,
                         num_samples=4, cond_drop_prob=cond_drop_prob)
    return Trainer(model, DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
                   make_source("glyphs", 8, 0, image_size=8, labelled=True), config, out_dir, progress=False)


@pytest.mark.parametrize("prob", [0.1, 0.5])
def test_condition_dropout_replaces_a_share_p_of_labels_by_the_null_class(prob):
    labels = np.arange(1000) % 10
    dropped = sum((drop_condition(labels, prob, 10, (0, 19, step)) == 10).sum() for step in range(20))
    n = 20 * len(labels)
    assert abs(dropped - prob * n) < 5 * np.sqrt(n * prob * (1 - prob))  # binomial, 5 standard deviations
    kept = drop_condition(labels, prob, 10, (0, 19, 3))
    assert np.array_equal(kept[kept != 10], labels[kept != 10])  # only ever replaced by the null class


def test_condition_dropout_mask_is_a_function_of_seed_and_step():
    labels = np.arange(64) % 10
    a, b = drop_condition(labels, 0.3, 10, (0, 19, 5)), drop_condition(labels, 0.3, 10, (0, 19, 5))
    assert np.array_equal(a, b) and a.dtype == labels.dtype
    assert not np.array_equal(a, drop_condition(labels, 0.3, 10, (0, 19, 6)))
    assert drop_condition(labels, 0.0, 10, (0, 19, 5)) is labels
    assert drop_condition(None, 0.3, 10, (0, 19, 5)) is None


def test_trainer_drops_labels_only_when_asked(tmp_path):
    with_drop = conditional_unet_trainer(tmp_path / "a", cond_drop_prob=0.5)
    without = conditional_unet_trainer(tmp_path / "b", cond_drop_prob=0.0, null=False)
    labels = [with_drop.batch(step)[2] for step in range(6)]
    assert any((lab == 10).any() for lab in labels)
    for step in range(6):
        _, raw = without.data(step)
        np.testing.assert_array_equal(without.batch(step)[2], raw)
    with pytest.raises(ValueError, match="cond_drop_prob.*null class"):
        conditional_unet_trainer(tmp_path / "c", cond_drop_prob=0.1, null=False)
    with pytest.raises(ValueError, match="cond_drop_prob"):
        TrainConfig(cond_drop_prob=1.0).validate()


def test_resumed_run_with_condition_dropout_equals_an_uninterrupted_one(tmp_path):
    straight = conditional_unet_trainer(tmp_path / "straight")
    straight.run()
    conditional_unet_trainer(tmp_path / "chunks").run(until=2)
    resumed = conditional_unet_trainer(tmp_path / "chunks")
    resumed.run(resume=True)
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    for a, b in zip(straight.ema.shadow, resumed.ema.shadow):
        np.testing.assert_array_equal(a, b)
    loaded, _ = load_pipeline(tmp_path / "straight" / "final")
    assert loaded.config["class_embed_null_index"] == 10 and loaded.config["num_class_embeds"] == 11
