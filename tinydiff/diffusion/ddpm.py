"""DDPM ancestral sampling (Ho et al. 2020), with diffusers' DDPMScheduler API.

Notation: alpha_bar = cumulative product of (1 - beta) (ᾱ_t); `prev` is the next timestep the
sampler visits, which is t - 1 at full steps and the next entry of `timesteps` after
set_timesteps(n < T). A respaced step from t to prev uses the effective
beta = 1 - alpha_bar_t / alpha_bar_prev (Nichol & Dhariwal 2021, sec. 4), so fewer-step DDPM
still follows the same marginals q(x_t | x_0).
"""

import numpy as np

from tinydiff.diffusion import forward
from tinydiff.diffusion.checks import check_choice
from tinydiff.diffusion.scheduling_base import SchedulerBase, SchedulerOutput, spaced_timesteps

VARIANCE_TYPES = ("fixed_small", "fixed_large")


class DDPMScheduler(SchedulerBase):
    """Denoising diffusion probabilistic model sampler (Ho et al. 2020, Algorithm 2).

    Parameters: those every scheduler takes (SchedulerBase), and
    variance_type : {"fixed_small", "fixed_large"}
        "fixed_small" uses the posterior variance beta tilde (Ho eq. 7), "fixed_large" uses
        beta_t itself; Ho et al. sec. 3.2 found both to give similar samples.
    """

    order = 1

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 trained_betas=None, variance_type="fixed_small", clip_sample=True, prediction_type="epsilon",
                 clip_sample_range=1.0, timestep_spacing="leading", steps_offset=0, rescale_betas_zero_snr=False):
        check_choice("variance_type", variance_type, VARIANCE_TYPES)
        self._init_schedule_and_config(dict(
            num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
            beta_schedule=beta_schedule, variance_type=variance_type, clip_sample=clip_sample,
            prediction_type=prediction_type, clip_sample_range=clip_sample_range,
            timestep_spacing=timestep_spacing, steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr), trained_betas)
        spaced_timesteps(self.config.num_train_timesteps, 1, timestep_spacing, steps_offset)  # offset < T
        self.variance_type = variance_type
        # alpha_bar "before" timestep 0, where the last step lands: clean data (diffusers' self.one).
        self.final_alpha_cumprod = 1.0
        self.custom_timesteps = False

    def set_timesteps(self, num_inference_steps=None, timesteps=None):
        """Choose the timesteps to sample with: n spaced ones, or a custom descending list.

        Parameters
        ----------
        num_inference_steps : int in [1, T], or None when `timesteps` is given
        timesteps : sequence of int, strictly decreasing, in [0, T-1], or None
        """
        T = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("pass exactly one of num_inference_steps or timesteps, got "
                             f"num_inference_steps={num_inference_steps!r}, timesteps={timesteps!r}")
        if timesteps is not None:
            t = np.asarray(timesteps)
            if t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.integer):
                raise ValueError(f"timesteps must be a non-empty 1-D sequence of integers, got {timesteps!r}")
            if np.any(np.diff(t) >= 0):
                raise ValueError(f"timesteps must be strictly decreasing, got {t.tolist()}")
            if t[0] > T - 1 or t[-1] < 0:
                raise ValueError(f"timesteps must be in [0, {T - 1}], got values in [{t.min()}, {t.max()}]")
            self.timesteps = t.astype(np.int64)
            self.custom_timesteps = True
            self.num_inference_steps = len(t)
        else:
            self.timesteps = spaced_timesteps(T, num_inference_steps, self.config.timestep_spacing,
                                              self.config.steps_offset)
            self.custom_timesteps = False
            self.num_inference_steps = int(num_inference_steps)

    def previous_timestep(self, timestep):
        """The timestep the sampler reaches from `timestep`: the next entry of `timesteps`, or -1."""
        i, _ = self._index_of(timestep)
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def _alpha_bar_pair(self, timestep):
        prev_t = self.previous_timestep(timestep)
        alpha_bar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        return self.alphas_cumprod[int(timestep)], alpha_bar_prev

    def _step_noise_variance(self, t):
        """Variance of the noise added when stepping from t (Ho et al. 2020, sec. 3.2: sigma_t^2 is
        beta_t or the posterior's beta tilde of eq. 7)."""
        alpha_bar_t, alpha_bar_prev = self._alpha_bar_pair(t)
        _, _, beta_tilde = forward.posterior_coefficients(alpha_bar_t, alpha_bar_prev)
        if self.variance_type == "fixed_large":
            return 1.0 - alpha_bar_t / alpha_bar_prev  # beta_t of this (possibly respaced) step
        # diffusers clamps at 1e-20 so that log-variance variants stay finite; kept for parity.
        return max(float(beta_tilde), 1e-20)

    def step(self, model_output, timestep, sample, generator=None, noise=None, return_dict=True):
        """One ancestral step x_t -> x_prev (Ho et al. 2020, Algorithm 2, line 4).

        Parameters
        ----------
        model_output : ndarray, shape (B, ...), the network's eps / x_0 / v at (sample, timestep)
        timestep : int, one of self.timesteps
        sample : ndarray, shape (B, ...), x_t
        generator : numpy.random.Generator or None, draws the step's noise
        noise : ndarray (B, ...) or None, the step's standard normal noise; overrides `generator`
        return_dict : bool, return SchedulerOutput (True) or a tuple (prev_sample, pred_original_sample)

        Returns
        -------
        SchedulerOutput with prev_sample (B, ...) and pred_original_sample (B, ...)
        """
        model_output, sample = self._check_step_inputs(model_output, sample)
        t = int(self._index_of(timestep)[1])

        # 1. alpha_bar at t and at the step's target; the effective beta of this step.
        alpha_bar_t, alpha_bar_prev = self._alpha_bar_pair(t)

        # 2. the x_0 estimate from the model output (Ho et al. 2020, eq. 15 for epsilon;
        #    Salimans & Ho 2022, sec. 4 for v).
        pred_x0, _ = forward.predict_x0_and_epsilon(model_output, sample, alpha_bar_t, self.config.prediction_type)

        # 3. clip only the x_0 estimate: data lives in [-1, 1], x_t does not.
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            pred_x0 = np.clip(pred_x0, -r, r)

        # 4. posterior mean mu_tilde(x_t, x_0) (Ho et al. 2020, eq. 7). For an eps model without
        #    clipping this is eq. 11, mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        #    (forward.posterior_mean_from_epsilon); going through x_0 lets stage 3 clip it.
        c0, ct, _ = forward.posterior_coefficients(alpha_bar_t, alpha_bar_prev)
        prev_sample = c0 * pred_x0 + ct * sample

        # 5. add noise with the chosen variance, except on the final step to x_0 (Algorithm 2,
        #    line 3). diffusers tests `t > 0` instead, which also adds noise to the final sample
        #    when the last timestep is not 0 (trailing spacing, steps_offset); with fixed_small
        #    that noise has std 1e-10, with fixed_large it is a visible error, so we skip it.
        if self.previous_timestep(t) >= 0:
            z = self._noise_for(sample.shape, sample.dtype, generator, noise)
            prev_sample = prev_sample + np.sqrt(self._step_noise_variance(t)) * z

        prev_sample = prev_sample.astype(sample.dtype, copy=False)
        pred_x0 = np.asarray(pred_x0).astype(sample.dtype, copy=False)
        if not return_dict:
            return prev_sample, pred_x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)
