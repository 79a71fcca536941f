"""The forward process: closed form vs composed steps, the posterior vs Bayes' rule,
prediction-type conversions, add_noise / get_velocity."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.diffusion import BETA_SCHEDULES, DDPMScheduler, forward, make_betas

schedules = st.sampled_from(BETA_SCHEDULES)


@settings(max_examples=40, deadline=None)
@given(schedules, st.integers(2, 1000))
def test_closed_form_equals_composition_of_single_steps(schedule, T):
    # q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t): composing t steps from x_0 keeps
    # the mean linear in x_0 (coefficient m_t) and the variance v_t = (1 - beta_t) v_{t-1} + beta_t.
    betas = make_betas(schedule, T)
    m, v = 1.0, 0.0
    means, variances = [], []
    for beta in betas:
        m = np.sqrt(1 - beta) * m
        v = (1 - beta) * v + beta
        means.append(m)
        variances.append(v)
    ab = np.cumprod(1 - betas)
    np.testing.assert_allclose(means, np.sqrt(ab), rtol=1e-10)  # Ho et al. 2020, eq. 4
    np.testing.assert_allclose(variances, 1 - ab, rtol=1e-10, atol=1e-14)


alpha_pairs = st.tuples(st.floats(1e-4, 0.9999), st.floats(0.01, 0.999)).map(
    lambda p: (p[0] * p[1], p[0]))  # (alpha_bar_t, alpha_bar_prev) with alpha_bar_t < alpha_bar_prev


@settings(max_examples=100, deadline=None)
@given(alpha_pairs, st.floats(-3, 3), st.floats(-3, 3))
def test_posterior_matches_bayes_rule(pair, x0, xt):
    # prior    x_prev | x_0 ~ N(sqrt(ab_prev) x_0, 1 - ab_prev)
    # likelihood x_t | x_prev ~ N(sqrt(a) x_prev, 1 - a), a = ab_t / ab_prev
    # Gaussian posterior: precision adds, mean is the precision-weighted average.
    ab_t, ab_prev = pair
    a = ab_t / ab_prev
    precision = 1 / (1 - ab_prev) + a / (1 - a)
    var = 1 / precision
    mean = var * (np.sqrt(ab_prev) * x0 / (1 - ab_prev) + np.sqrt(a) * xt / (1 - a))
    c0, ct, variance = forward.posterior_coefficients(ab_t, ab_prev)
    assert variance == pytest.approx(var, rel=1e-8)
    assert c0 * x0 + ct * xt == pytest.approx(mean, rel=1e-8, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-4, 0.9999), st.integers(0, 2**31 - 1))
def test_conversions_round_trip(ab, seed):
    rng = np.random.default_rng(seed)
    x0, eps = rng.standard_normal((2, 3, 4))
    xt = forward.q_sample(x0, eps, ab)
    v = forward.velocity(x0, eps, ab)
    np.testing.assert_allclose(forward.epsilon_to_x0(eps, xt, ab), x0, atol=1e-7 / np.sqrt(ab))
    np.testing.assert_allclose(forward.x0_to_epsilon(x0, xt, ab), eps, atol=1e-7 / np.sqrt(1 - ab))
    np.testing.assert_allclose(forward.v_to_x0(v, xt, ab), x0, atol=1e-10)
    np.testing.assert_allclose(forward.v_to_epsilon(v, xt, ab), eps, atol=1e-10)
    for kind, out in (("epsilon", eps), ("sample", x0), ("v_prediction", v)):
        x0_hat, eps_hat = forward.predict_x0_and_epsilon(out, xt, ab, kind)
        np.testing.assert_allclose(x0_hat, x0, atol=1e-6)
        np.testing.assert_allclose(eps_hat, eps, atol=1e-6)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_add_noise_then_exact_prediction_recovers_x0(prediction_type):
    rng = np.random.default_rng(0)
    s = DDPMScheduler(prediction_type=prediction_type, clip_sample=False)
    x0 = rng.uniform(-1, 1, (5, 3, 4, 4))
    noise = rng.standard_normal(x0.shape)
    t = np.array([0, 10, 500, 900, 999])
    xt = s.add_noise(x0, noise, t)
    target = {"epsilon": noise, "sample": x0, "v_prediction": s.get_velocity(x0, noise, t)}[prediction_type]
    for i in range(5):  # per sample: the scheduler's x_0 estimate from the true target is x_0
        s.set_timesteps(timesteps=[int(t[i])])
        out = s.step(target[i:i + 1], int(t[i]), xt[i:i + 1], noise=np.zeros((1, 3, 4, 4)))
        np.testing.assert_allclose(out.pred_original_sample, x0[i:i + 1], atol=1e-8)


def test_add_noise_uses_each_samples_own_timestep():
    s = DDPMScheduler()
    x0 = np.ones((3, 2), dtype=np.float32)
    noise = np.full((3, 2), 2.0, dtype=np.float32)
    t = np.array([0, 499, 999])
    xt = s.add_noise(x0, noise, t)
    ab = s.alphas_cumprod[t][:, None]
    assert xt.dtype == np.float32
    np.testing.assert_allclose(xt, np.broadcast_to(np.sqrt(ab) + 2 * np.sqrt(1 - ab), (3, 2)), rtol=1e-6)
    v = s.get_velocity(x0, noise, t)
    np.testing.assert_allclose(v, np.broadcast_to(2 * np.sqrt(ab) - np.sqrt(1 - ab), (3, 2)), rtol=1e-6)
    np.testing.assert_allclose(s.add_noise(x0, noise, 499), np.repeat(xt[1:2], 3, 0))  # scalar broadcast


@pytest.mark.parametrize("timesteps, noise_shape, message", [
    ([0, 1000], (2, 3), "[0, 999]"),
    ([-1, 3], (2, 3), "[0, 999]"),
    ([1, 2, 3], (2, 3), "shape (2,)"),
    ([1, 2], (2, 4), "noise"),
])
def test_add_noise_rejects_bad_input(timesteps, noise_shape, message):
    s = DDPMScheduler()
    with pytest.raises(ValueError) as err:
        s.add_noise(np.zeros((2, 3)), np.zeros(noise_shape), np.array(timesteps))
    assert message in str(err.value)


@given(st.floats(0.01, 0.99), st.floats(0.5, 0.999999))
def test_mean_from_eps_eq_11_equals_posterior_mean_through_x0(alpha_bar_t, ratio):
    # Ho et al. 2020: eq. 11 is eq. 7 with x_0 replaced by its eq. 15 estimate from eps.
    from tinydiff.diffusion.forward import posterior_mean_from_epsilon

    alpha_bar_prev = min(alpha_bar_t / ratio, 1.0)
    rng = np.random.default_rng(0)
    x_t, eps = rng.standard_normal((2, 3, 4))
    c0, ct, _ = forward.posterior_coefficients(alpha_bar_t, alpha_bar_prev)
    through_x0 = c0 * forward.epsilon_to_x0(eps, x_t, alpha_bar_t) + ct * x_t
    np.testing.assert_allclose(posterior_mean_from_epsilon(eps, x_t, alpha_bar_t, alpha_bar_prev), through_x0,
                               rtol=1e-9, atol=1e-9)
