"""The discretised Gaussian (Ho et al. 2020, eq. 13) and the DDPM bound (eq. 5) against closed
forms: probabilities that sum to 1, gradients against finite differences, KLs against quadrature,
and the bound on data whose exact denoiser is known (point masses)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import norm

from tinydiff.diffusion import DDPMScheduler
from tinydiff.diffusion.likelihood import (bits_per_dim, ddpm_bound, decoder_term, discretized_gaussian_backward,
                                           discretized_gaussian_log_likelihood, from_8bit, normal_kl, prior_term,
                                           reverse_variances, strata, to_8bit)

LEVELS = from_8bit(np.arange(256), np.float64)


@settings(max_examples=30, deadline=None)
@given(mean=st.floats(-1.5, 1.5), log_scale=st.floats(-7.0, 1.0))
def test_the_256_bins_of_a_pixel_hold_all_the_probability(mean, log_scale):
    p = np.exp(discretized_gaussian_log_likelihood(LEVELS, mean, log_scale))
    assert abs(p.sum() - 1.0) < 1e-9


def test_log_likelihood_equals_the_cdf_difference_and_stays_finite_far_in_the_tails():
    x = LEVELS[[0, 3, 128, 200, 255]]
    mean, scale = 0.1, 0.3
    lo = np.where(x == -1, -np.inf, x - 1 / 255)
    hi = np.where(x == 1, np.inf, x + 1 / 255)
    direct = np.log(norm.cdf(hi, mean, scale) - norm.cdf(lo, mean, scale))
    np.testing.assert_allclose(discretized_gaussian_log_likelihood(x, mean, np.log(scale)), direct, rtol=1e-10)
    far = discretized_gaussian_log_likelihood(np.array([-1.0, 0.0, 1.0]), np.array([0.9, -0.9, -0.9]), -6.0)
    assert np.all(np.isfinite(far)) and np.all(far < -1e4)


def test_backward_matches_finite_differences_in_the_middle_and_at_both_edges():
    rng = np.random.default_rng(0)
    x = LEVELS[[0, 1, 77, 128, 254, 255, 255, 0]]
    mean = rng.uniform(-1.2, 1.2, size=x.shape)
    log_scale = rng.uniform(-5, 0, size=x.shape)
    g = rng.standard_normal(x.shape)
    dmean, dlog_scale = discretized_gaussian_backward(g, x, mean, log_scale)
    eps = 1e-6
    for arg, analytic in ((1, dmean), (2, dlog_scale)):
        for i in range(len(x)):
            args = [x.copy(), mean.copy(), log_scale.copy()]
            args[arg][i] += eps
            plus = discretized_gaussian_log_likelihood(*args)[i]
            args[arg][i] -= 2 * eps
            minus = discretized_gaussian_log_likelihood(*args)[i]
            numeric = g[i] * (plus - minus) / (2 * eps)
            assert abs(numeric - analytic[i]) < 1e-5 * max(1.0, abs(numeric)), (arg, i, numeric, analytic[i])


def test_normal_kl_against_quadrature():
    m1, v1, m2, v2 = 0.3, 0.5, -0.4, 1.7
    p, q = norm(m1, np.sqrt(v1)), norm(m2, np.sqrt(v2))
    numeric, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -20, 20)
    assert abs(normal_kl(m1, np.log(v1), m2, np.log(v2)) - numeric) < 1e-9


def test_8bit_round_trip_and_bad_values():
    v = np.arange(256)
    assert np.array_equal(to_8bit(from_8bit(v)), v)
    with pytest.raises(ValueError, match="values"):
        from_8bit(np.array([300]))
    with pytest.raises(ValueError, match="num_strata"):
        strata(10, 10)


def point_mass_denoiser(points, weights, alphas_cumprod):
    """E[x_0 | x_t] for data on a few points (K, D): Bayes' rule over the points."""
    def predict_x0(x_t, t):
        a = alphas_cumprod[t][:, None, None]
        d2 = ((x_t[:, None, :] - np.sqrt(a) * points[None]) ** 2).sum(axis=2)  # (B, K)
        logits = np.log(weights)[None] - d2 / (2 * (1 - a[:, :, 0]))
        r = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (r / r.sum(axis=1, keepdims=True)) @ points
    return predict_x0


ALPHAS = DDPMScheduler(num_train_timesteps=200, beta_schedule="squaredcos_cap_v2").alphas_cumprod


def test_bound_on_a_point_mass_is_the_prior_and_decoder_closed_forms():
    """With the exact denoiser on a single point, every middle KL is 0 and the decoder is centred on
    the point: the bound is L_T + the mass of one bin of width 2/255 under N(0, beta_tilde_1)."""
    point = from_8bit(np.array([[0, 100, 255, 40]]), np.float64)  # (1, D)
    x0 = np.repeat(point, 5, axis=0)
    out = ddpm_bound(point_mass_denoiser(point, np.ones(1), ALPHAS), x0, ALPHAS, np.random.default_rng(1))
    assert abs(out["transitions"]) < 1e-12
    sigma = np.sqrt(reverse_variances(ALPHAS)[0])
    inner = -np.log(norm.cdf(1 / 255 / sigma) - norm.cdf(-1 / 255 / sigma))
    edge = -np.log(norm.cdf(1 / 255 / sigma))
    ab_T = ALPHAS[-1]
    prior = 0.5 * (ab_T * (point ** 2).sum() + 4 * (1 - ab_T - 1 - np.log(1 - ab_T)))
    expected = bits_per_dim(prior + 2 * inner + 2 * edge, 4)
    np.testing.assert_allclose(out["bits_per_dim"], expected, rtol=1e-10)
    np.testing.assert_allclose(prior_term(point, ALPHAS)[0], prior, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(decoder_term(point, point, sigma ** 2), 2 * inner + 2 * edge, rtol=1e-10)


def test_bound_is_at_least_the_entropy_and_the_stratified_estimate_is_unbiased():
    """Data: two 8-bit images of 3 pixels, weights 0.3/0.7, whose exact NLL (the entropy, 0.881
    bits per image) is known. The bound of the exact denoiser must not fall below it; the
    stratified estimate must agree with the exact sum within its standard error."""
    points = from_8bit(np.array([[10, 200, 128], [250, 30, 128]]), np.float64)
    weights = np.array([0.3, 0.7])
    rng = np.random.default_rng(2)
    x0 = points[rng.choice(2, size=400, p=weights)]
    model = point_mass_denoiser(points, weights, ALPHAS)
    exact = ddpm_bound(model, x0, ALPHAS, np.random.default_rng(3))
    entropy = -(weights * np.log2(weights)).sum() / 3
    assert exact["mean"] - 3 * exact["stderr"] > entropy
    estimate = ddpm_bound(model, x0, ALPHAS, np.random.default_rng(4), num_strata=8)
    se = np.hypot(exact["stderr"], estimate["stderr"])
    assert abs(estimate["mean"] - exact["mean"]) < 4 * se
    assert estimate["stderr"] >= exact["stderr"] * 0.5  # the timestep draws add variance, never much less


def test_beta_variance_choice_and_bad_arguments():
    var_small, var_large = reverse_variances(ALPHAS), reverse_variances(ALPHAS, "beta")
    assert var_small[0] == var_large[0] == var_small[1]
    assert np.all(var_large[1:] >= var_small[1:])
    with pytest.raises(ValueError, match="kind"):
        reverse_variances(ALPHAS, "learned")
    with pytest.raises(TypeError, match="rng"):
        ddpm_bound(lambda x, t: x, np.zeros((2, 3)), ALPHAS, rng=0)
