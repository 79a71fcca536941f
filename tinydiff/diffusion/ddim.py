"""DDIM sampling (Song, Meng & Ermon 2021), with diffusers' DDIMScheduler API.

Notation: alpha_bar = cumulative product of (1 - beta) (ᾱ_t, written alpha_t in the DDIM
paper); `prev` is the next timestep in `timesteps`; sigma_t is the std of the noise added
by a step, sigma_t = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
(DDIM eq. 16). eta = 0 gives the deterministic DDIM sampler, eta = 1 the DDPM posterior.

Difference from diffusers (deliberate): diffusers' DDIM steps from t to t - T // n whatever
the spacing. For "linspace" spacing, or "trailing" when n does not divide T, that is not the
next timestep of its own schedule (e.g. T = 1000, n = 10, linspace: timesteps 999, 888, ..., 111, 0, but the
steps go 999 -> 899, 888 -> 788, ...), so each step lands on a noise level the next model
call does not assume. tinydiff steps to the next entry of `timesteps`; the two agree for
"leading" spacing and for "trailing" when n divides T.
"""

import numpy as np

from tinydiff.diffusion import forward
from tinydiff.diffusion.checks import check_float
from tinydiff.diffusion.scheduling_base import SchedulerBase, SchedulerOutput, spaced_timesteps


class DDIMSchedulerBase(SchedulerBase):
    """The arguments, config and schedule that DDIMScheduler and DDIMInverseScheduler share
    (diffusers gives the two the same arguments); see DDIMScheduler for their meaning.

    Attributes
    ----------
    clean_alpha_cumprod : float, alpha_bar at the clean end of the chain, where DDIM sampling
        stops and inversion starts: 1 (clean data, the DDIM paper's alpha_0 = 1) with
        set_alpha_to_one, else alpha_bar_0, which keeps the tiny noise of timestep 0.
    """

    order = 1
    walks_from_data_to_noise = False  # the order of `timesteps` before set_timesteps

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 trained_betas=None, clip_sample=True, set_alpha_to_one=True, steps_offset=0,
                 prediction_type="epsilon", clip_sample_range=1.0, timestep_spacing="leading",
                 rescale_betas_zero_snr=False):
        self._init_schedule_and_config(dict(
            num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
            beta_schedule=beta_schedule, clip_sample=clip_sample, set_alpha_to_one=bool(set_alpha_to_one),
            steps_offset=steps_offset, prediction_type=prediction_type, clip_sample_range=clip_sample_range,
            timestep_spacing=timestep_spacing, rescale_betas_zero_snr=rescale_betas_zero_snr), trained_betas)
        spaced_timesteps(self.config.num_train_timesteps, 1, timestep_spacing, steps_offset)  # offset < T
        self.clean_alpha_cumprod = 1.0 if set_alpha_to_one else float(self.alphas_cumprod[0])
        if self.walks_from_data_to_noise:
            self.timesteps = self.timesteps[::-1].copy()


class DDIMScheduler(DDIMSchedulerBase):
    """Denoising diffusion implicit model sampler (Song et al. 2021, eq. 12).

    Parameters: those every scheduler takes (SchedulerBase), and
    set_alpha_to_one : bool
        The last step goes to alpha_bar = 1 (clean data) if True, else to alpha_bar_0.
    """

    def set_timesteps(self, num_inference_steps):
        """Choose n spaced timesteps (see scheduling_base.spaced_timesteps); n in [1, T]."""
        self.timesteps = spaced_timesteps(self.config.num_train_timesteps, num_inference_steps,
                                          self.config.timestep_spacing, self.config.steps_offset)
        self.num_inference_steps = int(num_inference_steps)

    def previous_timestep(self, timestep):
        """The next entry of `timesteps` after `timestep`, or -1 after the last one."""
        i, _ = self._index_of(timestep)
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def _posterior_variance(self, timestep, prev_timestep):
        """beta tilde of the step t -> prev (DDIM eq. 16 with eta = 1; Ho et al. eq. 7)."""
        alpha_bar_t = self.alphas_cumprod[timestep]
        alpha_bar_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.clean_alpha_cumprod
        return (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * (1.0 - alpha_bar_t / alpha_bar_prev)

    def step(self, model_output, timestep, sample, eta=0.0, use_clipped_model_output=False, generator=None,
             noise=None, return_dict=True, variance_noise=None):
        """One DDIM step x_t -> x_prev (Song et al. 2021, eq. 12).

        Parameters
        ----------
        model_output : ndarray, shape (B, ...), the network's eps / x_0 / v at (sample, timestep)
        timestep : int, one of self.timesteps
        sample : ndarray, shape (B, ...), x_t
        eta : float >= 0, 0 = deterministic DDIM, 1 = DDPM's posterior variance
        use_clipped_model_output : bool, recompute eps from the clipped x_0 (as diffusers)
        generator : numpy.random.Generator or None, draws the noise when eta > 0
        noise : ndarray (B, ...) or None, the standard normal noise; overrides `generator`
        variance_noise : diffusers' name for `noise`; pass one or the other
        return_dict : bool

        Returns
        -------
        SchedulerOutput with prev_sample (B, ...) and pred_original_sample (B, ...)
        """
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step()")
        eta = check_float("eta", eta, 0.0)
        if noise is not None and variance_noise is not None:
            raise ValueError("pass noise= or variance_noise= (the same thing), not both")
        noise = variance_noise if noise is None else noise
        model_output, sample = self._check_step_inputs(model_output, sample)
        t = int(self._index_of(timestep)[1])

        # 1. this step goes to the next timestep of the schedule (see the module docstring).
        prev_t = self.previous_timestep(t)

        # 2. alpha_bar at both ends.
        alpha_bar_t = self.alphas_cumprod[t]
        alpha_bar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.clean_alpha_cumprod

        # 3. x_0 and eps estimates from the model output ("predicted x_0" of DDIM eq. 12).
        pred_x0, pred_eps = forward.predict_x0_and_epsilon(model_output, sample, alpha_bar_t,
                                                           self.config.prediction_type)

        # 4. clip only the x_0 estimate.
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            pred_x0 = np.clip(pred_x0, -r, r)
            if use_clipped_model_output:
                pred_eps = forward.x0_to_epsilon(pred_x0, sample, alpha_bar_t)

        # 5. sigma_t (DDIM eq. 16).
        std_dev_t = eta * np.sqrt(self._posterior_variance(t, prev_t))

        # 6. "direction pointing to x_t" (DDIM eq. 12, middle term).
        direction = np.sqrt(1.0 - alpha_bar_prev - std_dev_t**2) * pred_eps

        # 7. x_prev without the random term (DDIM eq. 12).
        prev_sample = np.sqrt(alpha_bar_prev) * pred_x0 + direction

        # 8. the random term sigma_t * z, only when eta > 0.
        if eta > 0:
            prev_sample = prev_sample + std_dev_t * self._noise_for(sample.shape, sample.dtype, generator, noise)

        prev_sample = prev_sample.astype(sample.dtype, copy=False)
        pred_x0 = np.asarray(pred_x0).astype(sample.dtype, copy=False)
        if not return_dict:
            return prev_sample, pred_x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)
