"""DDPMScheduler: respaced alpha_bar pairs, variance types, prediction types, clipping,
explicit noise, and argument checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.diffusion import DDPMScheduler, posterior_coefficients, spaced_timesteps


def test_default_timesteps_walk_every_training_step():
    s = DDPMScheduler(num_train_timesteps=20)
    np.testing.assert_array_equal(s.timesteps, np.arange(19, -1, -1))
    assert s.previous_timestep(5) == 4 and s.previous_timestep(0) == -1
    assert len(s) == 20 and s.init_noise_sigma == 1.0


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60))
def test_respaced_step_uses_the_alpha_bar_pair_of_its_own_schedule(spacing, n):
    # With prediction_type="sample" and zero noise, step() returns exactly the posterior mean
    # c0 * x0 + ct * x_t, so the alpha_bar pair it used can be read off the result.
    T = 200
    s = DDPMScheduler(num_train_timesteps=T, prediction_type="sample", clip_sample=False,
                      timestep_spacing=spacing)
    s.set_timesteps(n)
    ts = s.timesteps
    np.testing.assert_array_equal(ts, spaced_timesteps(T, n, spacing))
    x0, xt = np.array([[0.3]]), np.array([[-1.1]])
    for i, t in enumerate(ts):
        prev = ts[i + 1] if i + 1 < len(ts) else -1
        ab_prev = s.alphas_cumprod[prev] if prev >= 0 else 1.0
        c0, ct, _ = posterior_coefficients(s.alphas_cumprod[t], ab_prev)
        out = s.step(x0, int(t), xt, noise=np.zeros((1, 1))).prev_sample
        assert out[0, 0] == pytest.approx(c0 * 0.3 + ct * -1.1, rel=1e-12)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_variance_types(variance_type):
    s = DDPMScheduler(variance_type=variance_type, clip_sample=False)
    s.set_timesteps(10)  # respaced: effective beta = 1 - ab_t / ab_prev
    z = np.ones((1, 1))
    for i, t in enumerate(s.timesteps[:-1]):
        ab_t, ab_prev = s.alphas_cumprod[t], s.alphas_cumprod[s.timesteps[i + 1]]
        beta = 1 - ab_t / ab_prev
        expected = beta if variance_type == "fixed_large" else (1 - ab_prev) / (1 - ab_t) * beta
        mean = s.step(np.zeros((1, 1)), int(t), np.ones((1, 1)), noise=0 * z).prev_sample
        noisy = s.step(np.zeros((1, 1)), int(t), np.ones((1, 1)), noise=z).prev_sample
        assert (noisy - mean)[0, 0] ** 2 == pytest.approx(expected, rel=1e-10)
    # the step to x_0 adds no noise
    last = int(s.timesteps[-1])
    a = s.step(np.zeros((1, 1)), last, np.ones((1, 1)), noise=z).prev_sample
    b = s.step(np.zeros((1, 1)), last, np.ones((1, 1)), noise=-z).prev_sample
    np.testing.assert_array_equal(a, b)


def test_sample_prediction_passes_x0_through():
    s = DDPMScheduler(prediction_type="sample", clip_sample=False)
    x0 = np.linspace(-3, 3, 8).reshape(2, 4)
    out = s.step(x0, 500, np.zeros((2, 4)), noise=np.zeros((2, 4)))
    np.testing.assert_array_equal(out.pred_original_sample, x0)


def test_clip_sample_clips_only_the_x0_estimate():
    s = DDPMScheduler(clip_sample=True, clip_sample_range=0.5)
    xt = np.array([[4.0, -4.0, 0.1]])
    eps = np.zeros_like(xt)  # x0 estimate = x_t / sqrt(ab): far outside the range
    out = s.step(eps, 10, xt, noise=np.zeros_like(xt))
    np.testing.assert_allclose(out.pred_original_sample, [[0.5, -0.5, 0.1 / np.sqrt(s.alphas_cumprod[10])]])
    c0, ct, _ = posterior_coefficients(s.alphas_cumprod[10], s.alphas_cumprod[9])
    np.testing.assert_allclose(out.prev_sample, c0 * out.pred_original_sample + ct * xt)
    assert abs(out.prev_sample[0, 0]) > 1.0  # x_t itself was not clipped


def test_explicit_noise_overrides_generator_and_replays():
    s = DDPMScheduler(clip_sample=False)
    rng = np.random.default_rng(0)
    x, eps = rng.standard_normal((2, 3, 2))
    z = rng.standard_normal((3, 2))
    a = s.step(eps, 700, x, generator=np.random.default_rng(1), noise=z).prev_sample
    b = s.step(eps, 700, x, generator=np.random.default_rng(2), noise=z).prev_sample
    c = s.step(eps, 700, x, noise=z).prev_sample
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    d = s.step(eps, 700, x, generator=np.random.default_rng(1)).prev_sample
    e = s.step(eps, 700, x, generator=np.random.default_rng(1)).prev_sample
    np.testing.assert_array_equal(d, e)
    assert not np.allclose(a, d)


def test_float32_in_float32_out():
    s = DDPMScheduler()
    x = np.zeros((2, 3), dtype=np.float32)
    out = s.step(x, 5, x, generator=np.random.default_rng(0))
    assert out.prev_sample.dtype == np.float32 and out.pred_original_sample.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda s: s.set_timesteps(0), "num_inference_steps"),
    (lambda s: s.set_timesteps(1001), "num_inference_steps"),
    (lambda s: s.set_timesteps(timesteps=[3, 5]), "decreasing"),
    (lambda s: s.set_timesteps(timesteps=[1000, 5]), "[0, 999]"),
    (lambda s: s.step(np.zeros((2, 3)), 1000, np.zeros((2, 3)), noise=np.zeros((2, 3))), "timestep"),
    (lambda s: s.step(np.zeros((2, 3)), 5, np.zeros((2, 4)), noise=np.zeros((2, 4))), "model_output"),
    (lambda s: s.step(np.zeros((2, 3)), 5, np.zeros((2, 3)), noise=np.zeros((3, 3))), "noise"),
    (lambda s: s.step(np.zeros((2, 3)), 5, np.zeros((2, 3))), "generator"),
])
def test_bad_step_arguments_are_named(call, message):
    s = DDPMScheduler()
    with pytest.raises(ValueError) as err:
        call(s)
    assert message in str(err.value)


def test_timestep_outside_the_schedule_is_rejected():
    s = DDPMScheduler()
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="not one of this scheduler's timesteps"):
        s.step(np.zeros((1, 1)), 999, np.zeros((1, 1)), noise=np.zeros((1, 1)))
