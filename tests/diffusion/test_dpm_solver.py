"""DPMSolverMultistepScheduler: first order equals DDIM, the second-order update, ordering."""

import numpy as np
import pytest

from tinydiff.diffusion import DPMSolverMultistepScheduler, example_mixture_2d, q_sample
from tinydiff.diffusion.dpm_solver import dpm_spaced_timesteps


def test_timesteps_drop_zero_and_the_last_step_returns_x0():
    s = DPMSolverMultistepScheduler(prediction_type="sample")
    s.set_timesteps(10)
    np.testing.assert_array_equal(s.timesteps, [999, 899, 799, 699, 599, 500, 400, 300, 200, 100])
    x0, x = np.array([[0.25]]), np.array([[3.0]])
    for t in s.timesteps:
        out = s.step(x0, int(t), x)
        x = out.prev_sample
    np.testing.assert_allclose(x, x0, rtol=1e-12)  # final sigma = 0: the last update is D itself


def test_first_step_is_ddim():
    # First order DPM-Solver++ (Lu et al. 2022, eq. 9) is DDIM: with x_t = q_sample(x0, eps) and an
    # exact x_0 prediction it lands on q_sample(x0, eps) at the next level.
    s = DPMSolverMultistepScheduler(prediction_type="sample")
    s.set_timesteps(20)
    ab = s.alphas_cumprod
    t0, t1 = s.timesteps[:2]
    x0, eps = np.array([[0.4, -1.0]]), np.array([[-0.7, 0.2]])
    out = s.step(x0, int(t0), q_sample(x0, eps, ab[t0])).prev_sample
    np.testing.assert_allclose(out, q_sample(x0, eps, ab[t1]), rtol=1e-10)


def test_second_order_step_is_exact_for_x0_linear_in_lambda():
    # The multistep correction extrapolates D linearly in lambda (Lu et al. 2022, eq. 13); check
    # the update against direct quadrature of the exact solution
    #   x_t = (sigma_t / sigma_s) x_s + sigma_t * int_{lambda_s}^{lambda_t} e^lambda D(lambda) dlambda
    # for D(lambda) = a + b * lambda, whose midpoint form differs from the exact integral only at O(h^3).
    s = DPMSolverMultistepScheduler(solver_order=2, prediction_type="sample")
    s.set_timesteps(50)
    lam = lambda t: s.lambda_t[t]
    a, b = 0.3, 0.05
    D = lambda t: np.array([[a + b * lam(t)]])
    t_prev, t_s, t_next = (int(v) for v in s.timesteps[:3])
    x = np.array([[0.9]])
    x = s.step(D(t_prev), t_prev, x).prev_sample
    out = s.step(D(t_s), t_s, x).prev_sample
    grid = np.linspace(lam(t_s), lam(t_next), 20001)
    integral = np.trapezoid(np.exp(grid) * (a + b * grid), grid)
    exact = s.sigma_t[t_next] / s.sigma_t[t_s] * x + s.sigma_t[t_next] * integral
    h = lam(t_next) - lam(t_s)
    assert abs(out - exact)[0, 0] < 0.5 * abs(b) * h**2 * s.alpha_t[t_next] + 1e-9
    # a first-order step from the same point misses by O(h^2): the correction must matter
    first = s.sigma_t[t_next] / s.sigma_t[t_s] * x - s.alpha_t[t_next] * np.expm1(-h) * D(t_s)
    assert abs(out - exact)[0, 0] < 0.2 * abs(first - exact)[0, 0]


def test_steps_must_follow_the_schedule_in_order():
    s = DPMSolverMultistepScheduler()
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="in order"):
        s.step(np.zeros((1, 1)), int(s.timesteps[1]), np.zeros((1, 1)))


def test_set_timesteps_resets_the_history():
    g = example_mixture_2d()
    s = DPMSolverMultistepScheduler()
    model = g.as_model(s.alphas_cumprod)
    x0 = np.random.default_rng(0).standard_normal((20, 2))
    runs = []
    for _ in range(2):
        s.set_timesteps(15)
        x = x0
        for t in s.timesteps:
            x = s.step(model(x, int(t)), int(t), x).prev_sample
        runs.append(x)
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("kwargs, name", [
    (dict(algorithm_type="dpmsolver"), "algorithm_type"),
    (dict(solver_order=3), "solver_order"),
    (dict(solver_type="heun"), "solver_type"),
    (dict(final_sigmas_type="none"), "final_sigmas_type"),
])
def test_unsupported_options_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DPMSolverMultistepScheduler(**kwargs)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("n", [1, 7, 10, 25, 999])
def test_dpm_timesteps_are_valid(spacing, n):
    t = dpm_spaced_timesteps(1000, n, spacing)
    assert t.shape == (n,) and np.all(np.diff(t) < 0) and t[0] <= 999 and t[-1] >= 0
