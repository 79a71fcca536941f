"""diffusers' own published scheduler test values, reproduced without torch.

The dummy sample and model are rebuilt exactly as diffusers' tests/schedulers/test_schedulers.py
(SchedulerCommonTest.dummy_sample_deter and dummy_model) defines them:

    sample = arange(4*3*8*8).reshape(3, 8, 8, 4) / 768, permuted to (4, 3, 8, 8)
    model(sample, t) = sample * t / (t + 1)

DDPM's full loops draw torch noise, so only its deterministic variance values are used here;
the live comparison in test_diffusers_crosscheck.py covers the rest.
"""

import numpy as np
import pytest

from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

# From diffusers tests/schedulers/test_scheduler_ddim.py (DDIMSchedulerTest): config
# num_train_timesteps=1000, beta 1e-4..0.02 linear, clip_sample=True; full_loop: 10 steps, eta=0.
# (extra config, expected sum of |sample|, expected mean of |sample|)
DIFFUSERS_DDIM_FULL_LOOP = [
    (dict(), 172.0067, 0.223967),                                          # test_full_loop_no_noise
    (dict(prediction_type="v_prediction"), 52.5302, 0.0684),               # test_full_loop_with_v_prediction
    (dict(set_alpha_to_one=True, beta_start=0.01), 149.8295, 0.1951),      # test_full_loop_with_set_alpha_to_one
    (dict(set_alpha_to_one=False, beta_start=0.01), 149.0784, 0.1941),     # test_full_loop_with_no_set_alpha_to_one
]
# test_full_loop_with_noise: add_noise(sample, dummy_noise_deter, timesteps[8]) then the last 2 steps.
DIFFUSERS_DDIM_FULL_LOOP_WITH_NOISE = (354.5418, 0.4616)

# From diffusers tests/schedulers/test_scheduler_ddim.py::test_variance: (t, prev_t, variance)
DIFFUSERS_DDIM_VARIANCE = [(0, 0, 0.0), (420, 400, 0.14771), (980, 960, 0.32460), (487, 486, 0.00979),
                           (999, 998, 0.02)]
# From diffusers tests/schedulers/test_scheduler_ddpm.py::test_variance (fixed_small): (t, variance)
DIFFUSERS_DDPM_VARIANCE = [(0, 0.0), (487, 0.00979), (999, 0.02)]

# From diffusers tests/schedulers/test_scheduler_dpm_multi.py (DPMSolverMultistepSchedulerTest):
# config solver_order=2, dpmsolver++, midpoint, lower_order_final=False; full_loop: 10 steps.
# Those values were recorded when the last step landed on timestep 0's noise level, which is
# final_sigmas_type="sigma_min" in today's diffusers (the default is now "zero").
DIFFUSERS_DPM_FULL_LOOP = [
    (dict(), 0.3301),                                 # test_full_loop_no_noise
    (dict(prediction_type="v_prediction"), 0.2251),   # test_full_loop_with_v_prediction
]


def dummy_sample_deter():
    return (np.arange(4 * 3 * 8 * 8).reshape(3, 8, 8, 4) / 768).transpose(3, 0, 1, 2).astype(np.float32)


def dummy_noise_deter():
    return (np.arange(4 * 3 * 8 * 8)[::-1].reshape(3, 8, 8, 4) / 768).transpose(3, 0, 1, 2).astype(np.float32)


def dummy_model(sample, t):
    return sample * t / (t + 1)


def ddim_config(**extra):
    cfg = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear", clip_sample=True)
    cfg.update(extra)
    return cfg


@pytest.mark.parametrize("extra, expected_sum, expected_mean", DIFFUSERS_DDIM_FULL_LOOP)
def test_ddim_full_loop(extra, expected_sum, expected_mean):
    s = DDIMScheduler(**ddim_config(**extra))
    s.set_timesteps(10)
    x = dummy_sample_deter()
    for t in s.timesteps:
        x = s.step(dummy_model(x, int(t)), int(t), x, 0.0).prev_sample
    assert abs(np.abs(x).sum() - expected_sum) < 1e-2
    assert abs(np.abs(x).mean() - expected_mean) < 1e-3


def test_ddim_full_loop_with_noise():
    s = DDIMScheduler(**ddim_config())
    s.set_timesteps(10)
    timesteps = s.timesteps[8:]
    x = s.add_noise(dummy_sample_deter(), dummy_noise_deter(), timesteps[:1])
    for t in timesteps:
        x = s.step(dummy_model(x, int(t)), int(t), x, 0.0).prev_sample
    expected_sum, expected_mean = DIFFUSERS_DDIM_FULL_LOOP_WITH_NOISE
    assert abs(np.abs(x).sum() - expected_sum) < 1e-2
    assert abs(np.abs(x).mean() - expected_mean) < 1e-3


def test_variances():
    ddim, ddpm = DDIMScheduler(**ddim_config()), DDPMScheduler(**ddim_config())
    for t, prev, expected in DIFFUSERS_DDIM_VARIANCE:
        assert abs(ddim._posterior_variance(t, prev) - expected) < 1e-5
    for t, expected in DIFFUSERS_DDPM_VARIANCE:
        assert abs(ddpm._step_noise_variance(t) - expected) < 1e-5


@pytest.mark.parametrize("extra, expected_mean", DIFFUSERS_DPM_FULL_LOOP)
def test_dpm_solver_full_loop(extra, expected_mean):
    s = DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++", solver_type="midpoint",
                                    lower_order_final=False, final_sigmas_type="sigma_min", **extra)
    s.set_timesteps(10)
    x = dummy_sample_deter()
    for t in s.timesteps:
        x = s.step(dummy_model(x, int(t)), int(t), x).prev_sample
    assert abs(np.abs(x).mean() - expected_mean) < 1e-3
