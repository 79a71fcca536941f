"""End to end: each sampler, driven by the exact denoiser of a 2-D Gaussian mixture, must
reproduce the data's mean, covariance, mode weights and typical log-density.

A wrong sign, a wrong alpha_bar pair or an off-by-one timestep all bias at least one of
these well beyond the statistical tolerance (checked by breaking the code on purpose).
"""

import numpy as np
import pytest

from tinydiff.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    example_mixture_2d,
)

N = 2000  # samples per run: ~0.02 standard error on the mean, ~0.011 on a mode weight


def sample_with(scheduler, num_inference_steps, seed, prediction_type="epsilon"):
    g = example_mixture_2d()
    rng = np.random.default_rng(seed)
    scheduler.set_timesteps(num_inference_steps)
    model = g.as_model(scheduler.alphas_cumprod, prediction_type)
    x = rng.standard_normal((N, 2)) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = model(x, int(t))
        if isinstance(scheduler, DDPMScheduler):
            x = scheduler.step(out, int(t), x, generator=rng).prev_sample
        else:
            x = scheduler.step(out, int(t), x).prev_sample
    return x


def check_matches_data(x, loglik_tolerance):
    g = example_mixture_2d()
    ref = g.sample(20000, np.random.default_rng(12345))
    se = np.sqrt(np.diag(g.covariance) / len(x))
    assert np.all(np.abs(x.mean(0) - g.mean) < 4 * se + 0.02), ("mean", x.mean(0), g.mean)
    np.testing.assert_allclose(np.cov(x.T), g.covariance, atol=0.1, err_msg="covariance")
    weights = np.bincount(g.responsibilities(x).argmax(1), minlength=3) / len(x)
    ref_weights = np.bincount(g.responsibilities(ref).argmax(1), minlength=3) / len(ref)
    np.testing.assert_allclose(weights, ref_weights, atol=0.045, err_msg="mode weights")
    # The average log-density catches modes that are too wide or too narrow.
    gap = g.log_prob(x).mean() - g.log_prob(ref).mean()
    assert abs(gap) < loglik_tolerance, ("mean log-density gap", gap)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_ddpm_1000_steps(variance_type):
    s = DDPMScheduler(clip_sample=False, variance_type=variance_type)
    check_matches_data(sample_with(s, 1000, seed=0), loglik_tolerance=0.08)


def test_ddpm_respaced_100_steps():
    s = DDPMScheduler(clip_sample=False, timestep_spacing="trailing")
    check_matches_data(sample_with(s, 100, seed=1), loglik_tolerance=0.25)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_50_steps(prediction_type):
    s = DDIMScheduler(clip_sample=False, prediction_type=prediction_type)
    check_matches_data(sample_with(s, 50, seed=2, prediction_type=prediction_type), loglik_tolerance=0.2)


@pytest.mark.parametrize("steps, tolerance", [(50, 0.2), (20, 0.45)])
def test_dpm_solver_pp(steps, tolerance):
    s = DPMSolverMultistepScheduler()
    check_matches_data(sample_with(s, steps, seed=3), loglik_tolerance=tolerance)
