"""Live comparison with diffusers (skipped when torch/diffusers are not installed).

Same configuration, same inputs, same noise: betas, alphas_cumprod, timesteps, add_noise,
get_velocity and step() outputs must agree to float32 rounding (diffusers computes in
float32 torch tensors, tinydiff in float64). Where tinydiff deliberately differs (DDIM's
step target for linspace spacing, trailing spacing's occasional extra timestep) the test
pins the difference down instead of hiding it.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import tinydiff.diffusion as td  # noqa: E402

ATOL = 2e-5


def dummy_sample():
    # diffusers' SchedulerCommonTest.dummy_sample_deter: arange / N laid out as (B, C, H, W)
    return (np.arange(4 * 3 * 8 * 8).reshape(3, 8, 8, 4) / 768).transpose(3, 0, 1, 2).astype(np.float32)


def dummy_model(x, t):
    return x * t / (t + 1)  # diffusers' SchedulerCommonTest.dummy_model


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"])
@pytest.mark.parametrize("zero_snr", [False, True])
@pytest.mark.parametrize("T", [1000, 37])
def test_schedules_match(schedule, zero_snr, T):
    ours = td.DDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, rescale_betas_zero_snr=zero_snr)
    theirs = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, rescale_betas_zero_snr=zero_snr)
    np.testing.assert_allclose(ours.betas, theirs.betas.numpy(), atol=3e-6)
    np.testing.assert_allclose(ours.alphas, theirs.alphas.numpy(), atol=3e-6)
    np.testing.assert_allclose(ours.alphas_cumprod, theirs.alphas_cumprod.numpy(), atol=2e-6)


CASES = [(T, n, spacing, offset) for T in (1000, 100) for n in (1, 3, 10, 29, 50, 100)
         for spacing in ("leading", "trailing", "linspace") for offset in (0, 1) if n <= T
         if not (offset and spacing != "leading")]


@pytest.mark.parametrize("T, n, spacing, offset", CASES)
def test_timesteps_match(T, n, spacing, offset):
    for ours_cls, theirs_cls in ((td.DDPMScheduler, diffusers.DDPMScheduler),
                                 (td.DDIMScheduler, diffusers.DDIMScheduler),
                                 (td.DPMSolverMultistepScheduler, diffusers.DPMSolverMultistepScheduler)):
        if offset and n * (T // n) - (T // n) + offset > T - 1:
            continue
        ours = ours_cls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
        theirs = theirs_cls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
        theirs.set_timesteps(n)
        expected = theirs.timesteps.numpy()
        if np.any(np.diff(expected) >= 0):
            # diffusers' DPM "leading" with n = T repeats timestep 0; tinydiff refuses.
            with pytest.raises(ValueError, match="invalid timesteps"):
                ours.set_timesteps(n)
            continue
        ours.set_timesteps(n)
        if len(expected) == n + 1 and expected[-1] == -1:
            # diffusers' np.arange(T, 0, -T / n) can overshoot by one element into timestep -1
            # (e.g. T=100, n=29); tinydiff returns the n valid ones.
            expected = expected[:-1]
        np.testing.assert_array_equal(ours.timesteps, expected, err_msg=f"{ours_cls.__name__}")


def test_add_noise_and_velocity_match():
    rng = np.random.default_rng(0)
    x0, noise = rng.standard_normal((2, 6, 3, 4)).astype(np.float32)
    t = np.array([0, 1, 250, 500, 998, 999])
    ours, theirs = td.DDPMScheduler(), diffusers.DDPMScheduler()
    args = (torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t))
    np.testing.assert_allclose(ours.add_noise(x0, noise, t), theirs.add_noise(*args).numpy(), atol=ATOL)
    np.testing.assert_allclose(ours.get_velocity(x0, noise, t), theirs.get_velocity(*args).numpy(), atol=ATOL)


def ddpm_loop(ours, theirs, n, seed=0):
    """Run both DDPM schedulers on the dummy model; our noise is exactly the noise diffusers draws."""
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    x = dummy_sample()
    y = torch.from_numpy(x.copy())
    for i, t in enumerate(ours.timesteps):
        gen = torch.Generator().manual_seed(seed + i)
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + i)).numpy()
        a = ours.step(dummy_model(x, int(t)), int(t), x, noise=z)
        b = theirs.step(dummy_model(y, t), t, y, generator=gen)
        np.testing.assert_allclose(a.pred_original_sample, b.pred_original_sample.numpy(), atol=ATOL, rtol=1e-5)
        np.testing.assert_allclose(a.prev_sample, b.prev_sample.numpy(), atol=ATOL, rtol=1e-5)
        x, y = a.prev_sample, b.prev_sample


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("clip_sample", [True, False])
def test_ddpm_steps_match(prediction_type, variance_type, clip_sample):
    cfg = dict(prediction_type=prediction_type, variance_type=variance_type, clip_sample=clip_sample,
               clip_sample_range=0.8)
    ddpm_loop(td.DDPMScheduler(**cfg), diffusers.DDPMScheduler(**cfg), n=25)


@pytest.mark.parametrize("spacing", ["leading", "linspace"])
@pytest.mark.parametrize("schedule", ["scaled_linear", "squaredcos_cap_v2"])
def test_ddpm_respaced_steps_match(spacing, schedule):
    # diffusers' DDPM steps to the next entry of its timesteps, like tinydiff (unlike its DDIM).
    cfg = dict(timestep_spacing=spacing, beta_schedule=schedule, clip_sample=False)
    ddpm_loop(td.DDPMScheduler(**cfg), diffusers.DDPMScheduler(**cfg), n=13)


def ddim_loop(ours, theirs, n, eta):
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    x = dummy_sample()
    y = torch.from_numpy(x.copy())
    rng = np.random.default_rng(0)
    for t in ours.timesteps:
        z = rng.standard_normal(x.shape).astype(np.float32)
        a = ours.step(dummy_model(x, int(t)), int(t), x, eta=eta, noise=z)
        b = theirs.step(dummy_model(y, torch.tensor(int(t))), int(t), y, eta=eta, variance_noise=torch.from_numpy(z))
        np.testing.assert_allclose(a.prev_sample, b.prev_sample.numpy(), atol=ATOL, rtol=1e-5)
        x, y = a.prev_sample, b.prev_sample


@pytest.mark.parametrize("spacing, T, n", [("leading", 1000, 10), ("leading", 1000, 7), ("leading", 999, 50),
                                           ("trailing", 1000, 10), ("trailing", 1000, 50)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_steps_match_where_diffusers_steps_to_the_next_timestep(spacing, T, n, eta, prediction_type):
    cfg = dict(num_train_timesteps=T, timestep_spacing=spacing, prediction_type=prediction_type)
    ddim_loop(td.DDIMScheduler(**cfg), diffusers.DDIMScheduler(**cfg), n, eta)


def test_ddim_linspace_differs_from_diffusers_by_design():
    # diffusers' DDIM goes from t to t - T // n; for linspace spacing that is not the schedule's
    # next timestep (999 -> 899 while the schedule continues at 888), so results differ.
    # tinydiff lands on the next timestep: documented in ddim.py and lesson 02.
    cfg = dict(timestep_spacing="linspace", clip_sample=False)
    ours, theirs = td.DDIMScheduler(**cfg), diffusers.DDIMScheduler(**cfg)
    ours.set_timesteps(10)
    theirs.set_timesteps(10)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())  # same schedule...
    assert ours.timesteps[1] == 888 and 999 - 1000 // 10 == 899  # ...different step targets
    rng = np.random.default_rng(0)
    x, eps = rng.standard_normal((2, 4, 3)).astype(np.float32)
    a = ours.step(eps, 999, x).prev_sample
    b = theirs.step(torch.from_numpy(eps), 999, torch.from_numpy(x)).prev_sample.numpy()
    assert np.abs(a - b).max() > 1e-2
    # both are DDIM eq. 12 with the same x_0 and eps estimates; only the target level differs
    ab = ours.alphas_cumprod
    x0 = (x - np.sqrt(1 - ab[999]) * eps) / np.sqrt(ab[999])
    np.testing.assert_allclose(b, np.sqrt(ab[899]) * x0 + np.sqrt(1 - ab[899]) * eps, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(a, np.sqrt(ab[888]) * x0 + np.sqrt(1 - ab[888]) * eps, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("spacing, n", [("leading", 10), ("leading", 50), ("trailing", 20)])
@pytest.mark.parametrize("set_alpha_to_one", [True, False])
def test_ddim_inverse_matches(spacing, n, set_alpha_to_one):
    cfg = dict(timestep_spacing=spacing, set_alpha_to_one=set_alpha_to_one, clip_sample=False)
    ours, theirs = td.DDIMInverseScheduler(**cfg), diffusers.DDIMInverseScheduler(**cfg)
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    np.testing.assert_array_equal(ours.timesteps, theirs.timesteps.numpy())
    x = dummy_sample()
    y = torch.from_numpy(x.copy())
    for t in ours.timesteps:
        x = ours.step(0.1 * x - 0.05, int(t), x).prev_sample
        y = theirs.step(0.1 * y - 0.05, int(t), y).prev_sample
        np.testing.assert_allclose(x, y.numpy(), atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("solver_order", [1, 2])
@pytest.mark.parametrize("final_sigmas_type, lower_order_final", [("zero", True), ("sigma_min", False),
                                                                  ("sigma_min", True)])
@pytest.mark.parametrize("spacing, n", [("linspace", 10), ("leading", 20), ("trailing", 7)])
def test_dpm_solver_loops_match(prediction_type, solver_order, final_sigmas_type, lower_order_final, spacing, n):
    cfg = dict(prediction_type=prediction_type, solver_order=solver_order, final_sigmas_type=final_sigmas_type,
               lower_order_final=lower_order_final, timestep_spacing=spacing)
    ours, theirs = td.DPMSolverMultistepScheduler(**cfg), diffusers.DPMSolverMultistepScheduler(**cfg)
    ours.set_timesteps(n)
    theirs.set_timesteps(n)
    x = dummy_sample()
    y = torch.from_numpy(x.copy())
    for t in ours.timesteps:
        x = ours.step(dummy_model(x, int(t)), int(t), x).prev_sample
        y = theirs.step(dummy_model(y, torch.tensor(int(t))), torch.tensor(int(t)), y).prev_sample
        np.testing.assert_allclose(x, y.numpy(), atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("zero_snr", [False, True])
def test_dpm_solver_zero_snr_matches(zero_snr):
    cfg = dict(rescale_betas_zero_snr=zero_snr, prediction_type="v_prediction", timestep_spacing="trailing")
    ours, theirs = td.DPMSolverMultistepScheduler(**cfg), diffusers.DPMSolverMultistepScheduler(**cfg)
    ours.set_timesteps(12)
    theirs.set_timesteps(12)
    x = dummy_sample()
    y = torch.from_numpy(x.copy())
    for t in ours.timesteps:
        x = ours.step(dummy_model(x, int(t)), int(t), x).prev_sample
        y = theirs.step(dummy_model(y, torch.tensor(int(t))), torch.tensor(int(t)), y).prev_sample
        np.testing.assert_allclose(x, y.numpy(), atol=5e-5, rtol=1e-4)
