"""DDIM inversion: the deterministic DDIM update (eta = 0) run forward in time, mapping a
clean sample to the noise that DDIM sampling would turn back into it (Song et al. 2021,
sec. 4.3; Dhariwal & Nichol 2021, appendix F). API as diffusers' DDIMInverseScheduler.

Notation: alpha_bar = cumulative product of (1 - beta) (ᾱ_t). `timesteps` are ascending;
step(model_output, t, sample) moves `sample` from the level before t (the previous entry of
`timesteps`, or alpha_bar = 1 / alpha_bar_0 before the first) up to level t. As in diffusers,
the model output is evaluated at (sample, t): the DDIM ODE is inverted by reusing an eps
from one end of the step, which is exact only in the limit of small steps, so inversion
followed by DDIM sampling returns close to the start point for 50+ steps.

Difference from diffusers (deliberate, as in ddim.py): diffusers steps from t - T // n;
tinydiff steps from the previous entry of `timesteps`. They agree for "leading" spacing and
for "trailing" spacing when n divides T.
"""

import numpy as np

from tinydiff.diffusion import forward
from tinydiff.diffusion.ddim import DDIMSchedulerBase
from tinydiff.diffusion.scheduling_base import SchedulerOutput, spaced_timesteps


class DDIMInverseScheduler(DDIMSchedulerBase):
    """Deterministic DDIM run from data to noise (Song et al. 2021, eq. 12 with eta = 0, reversed).

    Parameters are those of DDIMScheduler. `set_alpha_to_one` sets the level inversion
    starts from: alpha_bar = 1 (the input is clean data) if True, else alpha_bar_0.
    """

    walks_from_data_to_noise = True

    def set_timesteps(self, num_inference_steps):
        """The same n timesteps DDIMScheduler would use, in ascending order."""
        self.timesteps = spaced_timesteps(self.config.num_train_timesteps, num_inference_steps,
                                          self.config.timestep_spacing, self.config.steps_offset)[::-1].copy()
        self.num_inference_steps = int(num_inference_steps)

    def step(self, model_output, timestep, sample, return_dict=True):
        """One inverted DDIM step: `sample` at the level before `timestep` -> level `timestep`.

        Parameters
        ----------
        model_output : ndarray, shape (B, ...), the network output at (sample, timestep)
        timestep : int, one of self.timesteps (the level reached)
        sample : ndarray, shape (B, ...)
        return_dict : bool

        Returns
        -------
        SchedulerOutput with prev_sample (B, ...), the noisier sample, and pred_original_sample
        """
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step()")
        model_output, sample = self._check_step_inputs(model_output, sample)
        i, t = self._index_of(timestep)

        # 1. the step starts at the previous (lower) timestep of the schedule.
        source_t = int(self.timesteps[i - 1]) if i > 0 else -1
        alpha_bar_source = self.alphas_cumprod[source_t] if source_t >= 0 else self.clean_alpha_cumprod
        alpha_bar_t = self.alphas_cumprod[t]

        # 2. x_0 and eps estimates at the source level (DDIM eq. 12, "predicted x_0").
        pred_x0, pred_eps = forward.predict_x0_and_epsilon(model_output, sample, alpha_bar_source,
                                                           self.config.prediction_type)
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            pred_x0 = np.clip(pred_x0, -r, r)

        # 3. DDIM eq. 12 with eta = 0, written for the noisier level t.
        next_sample = np.sqrt(alpha_bar_t) * pred_x0 + np.sqrt(1.0 - alpha_bar_t) * pred_eps

        next_sample = next_sample.astype(sample.dtype, copy=False)
        pred_x0 = np.asarray(pred_x0).astype(sample.dtype, copy=False)
        if not return_dict:
            return next_sample, pred_x0
        return SchedulerOutput(prev_sample=next_sample, pred_original_sample=pred_x0)
