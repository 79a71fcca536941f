"""DPM-Solver++ 2M (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Algorithm 2), with diffusers' DPMSolverMultistepScheduler API.

Notation (Lu et al. 2022):

    alpha_t   sqrt(alpha_bar_t), the signal scale        (x_t = alpha_t x_0 + sigma_t eps)
    sigma_t   sqrt(1 - alpha_bar_t), the noise scale
    lambda_t  log(alpha_t / sigma_t), half the log-SNR
    h         lambda_next - lambda_current, the step in lambda
    D         the data prediction x_0(x_t, t)

The probability-flow ODE solved exactly in its linear part (Lu et al. 2022, sec. 4) gives
the update of Algorithm 2 (DPM-Solver++(2M))

    x_next = (sigma_next / sigma_s) x_s - alpha_next (exp(-h) - 1) * D

with D the model's x_0 at the current point (first order, Algorithm 2's first step; equals
DDIM), or the second-order multistep correction D = (1 + 1 / (2 r)) D_s - 1 / (2 r) D_prev
with r = h_prev / h (Algorithm 2's later steps), which reuses the previous step's x_0 instead
of a new model call.
By default the final step goes to sigma = 0 (x_0 itself) and is first order.
"""

import numpy as np

from tinydiff.diffusion import forward
from tinydiff.diffusion.checks import check_choice, check_int
from tinydiff.diffusion.scheduling_base import TIMESTEP_SPACINGS, SchedulerBase, SchedulerOutput

ALGORITHM_TYPES = ("dpmsolver++",)
SOLVER_TYPES = ("midpoint",)
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")


def dpm_spaced_timesteps(num_train_timesteps, num_inference_steps, timestep_spacing="linspace", steps_offset=0):
    """diffusers' DPM-Solver timesteps: n+1 spaced points with the last (t = 0) dropped, because
    the final step goes to sigma = 0 rather than to timestep 0.

    Returns
    -------
    timesteps : ndarray of int64, shape (n,), strictly decreasing
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    n = check_int("num_inference_steps", num_inference_steps, 1, T)
    check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
    offset = check_int("steps_offset", steps_offset, 0)
    if timestep_spacing == "linspace":
        t = np.linspace(0, T - 1, n + 1).round()[::-1][:-1].astype(np.int64)
    elif timestep_spacing == "leading":
        t = (np.arange(n + 1) * (T // (n + 1)))[::-1][:-1].astype(np.int64) + offset
    else:
        t = np.round(T - np.arange(n) * (T / n)).astype(np.int64) - 1  # see spaced_timesteps
    repeats = np.flatnonzero(np.diff(t) >= 0)
    if repeats.size or t.max() > T - 1:
        where = (f"timestep {t[repeats[0]]} repeats" if repeats.size else f"timestep {t.max()} > {T - 1}")
        raise ValueError(f"num_inference_steps={n} with timestep_spacing={timestep_spacing!r} and "
                         f"steps_offset={offset} gives invalid timesteps for T={T} ({where}); "
                         "use fewer steps or timestep_spacing='trailing'")
    return t.copy()


class DPMSolverMultistepScheduler(SchedulerBase):
    """Multistep DPM-Solver++ of order 1 or 2 for 10-20-step sampling.

    Parameters: those every scheduler takes (SchedulerBase) except clip_sample, and
    solver_order : {1, 2}
    algorithm_type : {"dpmsolver++"}
    solver_type : {"midpoint"}
    lower_order_final : bool
        Take the last step with first order in runs shorter than 15 steps (stabilises very
        short runs; Lu et al. 2022, sec. 5). With final_sigmas_type="zero" the last step is
        always first order anyway.
    final_sigmas_type : {"zero", "sigma_min"}
        Where the last step lands: sigma = 0 (x_0 itself), or the noise level of timestep 0.
    timestep_spacing : default "linspace" here (diffusers' default for this scheduler)
    rescale_betas_zero_snr : bool; the last alpha_bar is then set to 2**-24 (as diffusers)
        so that lambda stays finite.
    """

    order = 1

    def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 trained_betas=None, solver_order=2, prediction_type="epsilon", algorithm_type="dpmsolver++",
                 solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero",
                 timestep_spacing="linspace", steps_offset=0, rescale_betas_zero_snr=False):
        check_choice("algorithm_type", algorithm_type, ALGORITHM_TYPES)
        check_choice("solver_type", solver_type, SOLVER_TYPES)
        check_choice("solver_order", solver_order, (1, 2))
        check_choice("final_sigmas_type", final_sigmas_type, FINAL_SIGMAS_TYPES)
        self._init_schedule_and_config(dict(
            num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
            beta_schedule=beta_schedule, solver_order=int(solver_order), prediction_type=prediction_type,
            algorithm_type=algorithm_type, solver_type=solver_type, lower_order_final=bool(lower_order_final),
            final_sigmas_type=final_sigmas_type, timestep_spacing=timestep_spacing, steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr), trained_betas)
        if rescale_betas_zero_snr:
            # alpha_bar = 0 would make lambda = -inf at the first step; diffusers uses 2**-24.
            self.alphas_cumprod[-1] = 2.0**-24
        self.alpha_t = np.sqrt(self.alphas_cumprod)
        self.sigma_t = np.sqrt(1.0 - self.alphas_cumprod)
        self.lambda_t = np.log(self.alpha_t) - np.log(self.sigma_t)
        self._reset_history()

    def _reset_history(self):
        self.model_outputs = [None] * self.config.solver_order
        self.lower_order_nums = 0
        self._step_index = None

    @property
    def step_index(self):
        """How many steps have been taken since set_timesteps (None before the first)."""
        return self._step_index

    def set_timesteps(self, num_inference_steps):
        """Choose n timesteps (see dpm_spaced_timesteps) and forget the previous run's history."""
        self.timesteps = dpm_spaced_timesteps(self.config.num_train_timesteps, num_inference_steps,
                                              self.config.timestep_spacing, self.config.steps_offset)
        self.num_inference_steps = len(self.timesteps)
        self._reset_history()

    def _alpha_sigma_at(self, index):
        """(alpha, sigma) at position `index` of the run; past the last timestep it is the final level."""
        if index >= len(self.timesteps):
            if self.config.final_sigmas_type == "zero":
                return 1.0, 0.0
            return self.alpha_t[0], self.sigma_t[0]
        t = self.timesteps[index]
        return self.alpha_t[t], self.sigma_t[t]

    def step(self, model_output, timestep, sample, return_dict=True):
        """One DPM-Solver++ step along `timesteps` (Lu et al. 2022, Algorithm 2).

        Steps must be taken in order through self.timesteps: the solver keeps the previous
        x_0 estimate for its second-order term.

        Parameters
        ----------
        model_output : ndarray, shape (B, ...), the network's eps / x_0 / v at (sample, timestep)
        timestep : int, the next entry of self.timesteps
        sample : ndarray, shape (B, ...), x_t
        return_dict : bool

        Returns
        -------
        SchedulerOutput with prev_sample (B, ...) and pred_original_sample (B, ...), the x_0 used
        """
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step()")
        model_output, sample = self._check_step_inputs(model_output, sample)
        i, t = self._index_of(timestep)
        expected = 0 if self._step_index is None else self._step_index
        if i != expected:
            raise ValueError(f"timestep must be self.timesteps[{expected}] = {self.timesteps[expected]} "
                             f"(DPM-Solver steps in order), got {t}")
        n = len(self.timesteps)

        # 1. the data prediction D = x_0(x_t, t) (Lu et al. 2022, sec. 3: "DPM-Solver++ solves
        #    the ODE of the data prediction model").
        alpha_s, sigma_s = self._alpha_sigma_at(i)
        x0, _ = forward.predict_x0_and_epsilon(model_output, sample, alpha_s**2, self.config.prediction_type)
        self.model_outputs = self.model_outputs[1:] + [x0]

        # 2. lambda at this point and at the target; the final target has sigma = 0.
        alpha_next, sigma_next = self._alpha_sigma_at(i + 1)
        lambda_s = np.log(alpha_s) - np.log(sigma_s)

        # 3. choose the order: first order at the start (no history yet), and at the last step
        #    when it goes to sigma = 0 (h is infinite there, the update is D itself) or when
        #    lower_order_final asks for it in a short run.
        last_first = i == n - 1 and (self.config.final_sigmas_type == "zero"
                                     or (self.config.lower_order_final and n < 15))
        use_first = self.config.solver_order == 1 or self.lower_order_nums < 1 or last_first

        if sigma_next == 0.0:
            # 4a. exp(-h) = sigma_next * alpha_s / (alpha_next * sigma_s) = 0: x_next is D itself.
            prev_sample = alpha_next * x0
        else:
            lambda_next = np.log(alpha_next) - np.log(sigma_next)
            h = lambda_next - lambda_s
            if use_first:
                # 4b. first-order update (Lu et al. 2022, Algorithm 2, first step; equals DDIM).
                prev_sample = (sigma_next / sigma_s) * sample - alpha_next * np.expm1(-h) * x0
            else:
                # 4c. second-order multistep update (Lu et al. 2022, Algorithm 2, later steps):
                #     D = (1 + 1 / (2r)) x0 - 1 / (2r) x0_prev = d0 + 0.5 * d1.
                alpha_p, sigma_p = self._alpha_sigma_at(i - 1)
                h_prev = lambda_s - (np.log(alpha_p) - np.log(sigma_p))
                r = h_prev / h
                d0, d1 = x0, (x0 - self.model_outputs[-2]) / r
                prev_sample = (sigma_next / sigma_s) * sample - alpha_next * np.expm1(-h) * (d0 + 0.5 * d1)

        if self.lower_order_nums < self.config.solver_order:
            self.lower_order_nums += 1
        self._step_index = i + 1

        prev_sample = np.asarray(prev_sample).astype(sample.dtype, copy=False)
        x0 = np.asarray(x0).astype(sample.dtype, copy=False)
        if not return_dict:
            return prev_sample, x0
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
