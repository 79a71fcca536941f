"""The exact denoiser: checked against numerical integration, Tweedie's formula and the
forward-process identity, so the sampler tests can trust it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.diffusion import GaussianMixture, example_mixture_2d, q_sample


def test_posterior_mean_matches_numerical_integration():
    # E[x0 | x_t] = int x0 p(x0) N(x_t; sqrt(a) x0, (1-a) I) dx0 / (same without x0), on a grid.
    g = example_mixture_2d()
    u = np.linspace(-4, 4, 401)
    X, Y = np.meshgrid(u, u, indexing="ij")
    grid = np.stack([X.ravel(), Y.ravel()], 1)  # (401*401, 2)
    prior = np.exp(g.log_prob(grid))
    for a in (0.2, 0.6, 0.9):
        for xt in ([0.3, -0.2], [-1.5, 1.0], [1.0, 0.5]):
            xt = np.array(xt)
            lik = np.exp(-0.5 * np.sum((xt - np.sqrt(a) * grid) ** 2, 1) / (1 - a))
            w = prior * lik
            x0_num = (w[:, None] * grid).sum(0) / w.sum()
            np.testing.assert_allclose(g.expected_x0(xt[None], a)[0], x0_num, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.001, 0.999), st.integers(0, 1000))
def test_tweedie_and_forward_identity(a, seed):
    g = example_mixture_2d()
    x = np.random.default_rng(seed).standard_normal((5, 2)) * 1.5
    eps, x0 = g.expected_epsilon(x, a), g.expected_x0(x, a)
    # x_t = sqrt(a) E[x0 | x_t] + sqrt(1-a) E[eps | x_t], since the identity holds inside the expectation
    np.testing.assert_allclose(q_sample(x0, eps, a), x, atol=1e-9)
    # Tweedie: grad log p_t(x_t) = -E[eps | x_t] / sqrt(1 - a)
    h = 1e-5
    grad = np.stack([(g.log_prob(x + h * e, a) - g.log_prob(x - h * e, a)) / (2 * h) for e in np.eye(2)], 1)
    np.testing.assert_allclose(grad, -eps / np.sqrt(1 - a), rtol=1e-5, atol=1e-5)


def test_single_gaussian_closed_form():
    mean, cov = np.array([0.5, -1.0, 2.0]), np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.2]])
    g = GaussianMixture.gaussian(mean, cov)
    a = 0.4
    x = np.random.default_rng(0).standard_normal((4, 3))
    S = a * cov + (1 - a) * np.eye(3)
    expected = np.sqrt(1 - a) * np.linalg.solve(S, (x - np.sqrt(a) * mean).T).T
    np.testing.assert_allclose(g.expected_epsilon(x, a), expected, atol=1e-12)


def test_as_model_evaluates_at_the_timesteps_own_alpha_bar():
    g = example_mixture_2d()
    ab = np.linspace(0.999, 0.01, 50)
    x = np.random.default_rng(1).standard_normal((3, 2))
    model = g.as_model(ab, "v_prediction")
    for t in (0, 17, 49):
        np.testing.assert_array_equal(model(x, t), g.predict(x, ab[t], "v_prediction"))
    with pytest.raises(ValueError, match="timestep"):
        model(x, 50)


def test_sampler_matches_the_mixture_moments():
    g = example_mixture_2d()
    x, labels = g.sample(40000, np.random.default_rng(2), return_labels=True)
    np.testing.assert_allclose(x.mean(0), g.mean, atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), g.covariance, atol=0.03)
    np.testing.assert_allclose(np.bincount(labels) / len(x), g.weights, atol=0.01)
    for k in range(3):
        np.testing.assert_allclose(np.cov(x[labels == k].T), g.covariances[k], atol=0.01)


@pytest.mark.parametrize("args, message", [
    (([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, -1.0]]]), "positive definite"),
    (([1.0, 1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]]), "weights"),
    (([1.0], [0.0, 0.0], [[[1.0, 0.0], [0.0, 1.0]]]), "means"),
    (([1.0], [[0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]), "covariances"),
])
def test_bad_mixtures_are_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(*args)


def test_bad_query_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        example_mixture_2d().expected_epsilon(np.zeros((3, 3)), 0.5)
