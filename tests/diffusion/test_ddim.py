"""DDIMScheduler and DDIMInverseScheduler: determinism, eta = 1 equals DDPM, stepping to the
next timestep of the schedule, inversion round trip."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.diffusion import (
    DDIMInverseScheduler,
    DDIMScheduler,
    DDPMScheduler,
    example_mixture_2d,
)


def run_ddim(scheduler, model, x, eta=0.0, generator=None):
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, int(t)), int(t), x, eta=eta, generator=generator).prev_sample
    return x


def test_eta_zero_is_deterministic_and_needs_no_generator():
    g = example_mixture_2d()
    s = DDIMScheduler(clip_sample=False)
    s.set_timesteps(20)
    model = g.as_model(s.alphas_cumprod)
    x = np.random.default_rng(0).standard_normal((50, 2))
    a, b = run_ddim(s, model, x), run_ddim(s, model, x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, x)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 999), st.sampled_from(["linear", "scaled_linear", "squaredcos_cap_v2"]))
def test_eta_one_at_full_steps_is_the_ddpm_step(t, schedule):
    # DDIM eq. 16 with eta = 1 is the DDPM posterior: same mean, same variance (Ho eq. 7).
    rng = np.random.default_rng(t)
    eps, x, z = rng.standard_normal((3, 4, 3))
    ddim = DDIMScheduler(beta_schedule=schedule, clip_sample=False)
    ddim.set_timesteps(1000)
    ddpm = DDPMScheduler(beta_schedule=schedule, clip_sample=False, variance_type="fixed_small")
    a = ddim.step(eps, t, x, eta=1.0, noise=z).prev_sample
    b = ddpm.step(eps, t, x, noise=z).prev_sample
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    var = ddim._posterior_variance(t, t - 1)
    assert var == pytest.approx(ddpm._step_noise_variance(t), rel=1e-12)


@pytest.mark.parametrize("spacing, T, n", [("linspace", 1000, 10), ("trailing", 1000, 3), ("leading", 1000, 7)])
def test_steps_land_on_the_next_timestep_of_the_schedule(spacing, T, n):
    # With prediction_type="sample" and eta=0, x_prev = sqrt(ab_prev) x0 + sqrt(1-ab_prev) eps_hat:
    # feeding x_t = q_sample(x0, eps) gives back exactly q_sample at the level actually reached.
    s = DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing, prediction_type="sample",
                      clip_sample=False)
    s.set_timesteps(n)
    x0, eps = np.array([[0.4]]), np.array([[-0.7]])
    ab = s.alphas_cumprod
    for i, t in enumerate(s.timesteps[:-1]):
        xt = np.sqrt(ab[t]) * x0 + np.sqrt(1 - ab[t]) * eps
        out = s.step(x0, int(t), xt).prev_sample
        nxt = s.timesteps[i + 1]
        np.testing.assert_allclose(out, np.sqrt(ab[nxt]) * x0 + np.sqrt(1 - ab[nxt]) * eps, rtol=1e-12)


def test_set_alpha_to_one_sets_the_final_level():
    x0, eps = np.array([[0.4]]), np.array([[-0.7]])
    for flag, final in ((True, 1.0), (False, None)):
        s = DDIMScheduler(set_alpha_to_one=flag, prediction_type="sample", clip_sample=False)
        s.set_timesteps(10)
        final = s.alphas_cumprod[0] if final is None else final
        t = int(s.timesteps[-1])
        xt = np.sqrt(s.alphas_cumprod[t]) * x0 + np.sqrt(1 - s.alphas_cumprod[t]) * eps
        out = s.step(x0, t, xt).prev_sample
        np.testing.assert_allclose(out, np.sqrt(final) * x0 + np.sqrt(1 - final) * eps, rtol=1e-12)


def invert_then_sample(n, spacing, x0, g):
    inv = DDIMInverseScheduler(clip_sample=False, timestep_spacing=spacing)
    inv.set_timesteps(n)
    model = g.as_model(inv.alphas_cumprod)
    x = x0
    for t in inv.timesteps:
        x = inv.step(model(x, int(t)), int(t), x).prev_sample
    s = DDIMScheduler(clip_sample=False, timestep_spacing=spacing)
    s.set_timesteps(n)
    return x, run_ddim(s, model, x)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_inversion_then_sampling_returns_the_start_point(spacing):
    g = example_mixture_2d()
    x0 = g.sample(200, np.random.default_rng(3))
    noise, back = invert_then_sample(50, spacing, x0, g)
    assert np.std(noise) > 0.8  # it did reach (near-)Gaussian noise
    err50 = np.linalg.norm(back - x0, axis=1)
    # the modes have std 0.14-0.39; inversion reuses eps across a step, so the error is first order
    assert np.median(err50) < 0.05 and np.quantile(err50, 0.95) < 0.1, (np.median(err50), err50.max())
    _, back = invert_then_sample(200, spacing, x0, g)
    err200 = np.linalg.norm(back - x0, axis=1)
    assert np.median(err200) < 0.4 * np.median(err50)


def test_inverse_timesteps_are_ddim_timesteps_ascending():
    inv, s = DDIMInverseScheduler(timestep_spacing="trailing"), DDIMScheduler(timestep_spacing="trailing")
    inv.set_timesteps(25)
    s.set_timesteps(25)
    np.testing.assert_array_equal(inv.timesteps, s.timesteps[::-1])


@pytest.mark.parametrize("call, message", [
    (lambda s: s.step(np.zeros((1, 1)), 999, np.zeros((1, 1))), "set_timesteps"),
    (lambda s: (s.set_timesteps(10), s.step(np.zeros((1, 1)), 999, np.zeros((1, 1))))[1], "timesteps"),
    (lambda s: (s.set_timesteps(10), s.step(np.zeros((1, 1)), 900, np.zeros((1, 1)), eta=-1.0))[1], "eta"),
    (lambda s: (s.set_timesteps(10), s.step(np.zeros((1, 1)), 900, np.zeros((1, 1)), eta=1.0))[1], "generator"),
    (lambda s: s.set_timesteps(0), "num_inference_steps"),
])
def test_bad_ddim_arguments_are_named(call, message):
    with pytest.raises(ValueError) as err:
        call(DDIMScheduler())
    assert message in str(err.value)


def test_zero_terminal_snr_needs_a_prediction_type_that_can_see_x0():
    x = np.random.default_rng(0).standard_normal((2, 3))
    s = DDIMScheduler(rescale_betas_zero_snr=True, timestep_spacing="trailing", clip_sample=False)
    s.set_timesteps(10)
    assert s.alphas_cumprod[s.timesteps[0]] == 0.0
    with pytest.raises(ValueError, match="v_prediction"):
        s.step(x, int(s.timesteps[0]), x)
    v = DDIMScheduler(rescale_betas_zero_snr=True, timestep_spacing="trailing", clip_sample=False,
                      prediction_type="v_prediction")
    v.set_timesteps(10)
    out = v.step(x, int(v.timesteps[0]), x)  # at zero SNR: x_0 = -v, eps = x_t
    np.testing.assert_allclose(out.pred_original_sample, -x)
