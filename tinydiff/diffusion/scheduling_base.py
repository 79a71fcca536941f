"""What DDPM, DDIM and DPM-Solver share: the checks on their common options, the training
noise schedule, timestep spacing, the forward process, and the checks on step() inputs.

Schedulers mirror diffusers' API (argument names, defaults, attributes `betas`, `alphas`,
`alphas_cumprod`, `timesteps`, `init_noise_sigma`, `set_timesteps`, `step`, `add_noise`), so
a loop written for tinydiff runs with diffusers after swapping the import and the arrays.
"""

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from tinydiff.diffusion import forward, schedules
from tinydiff.diffusion.checks import (
    as_float_array,
    check_choice,
    check_float,
    check_generator,
    check_int,
    check_same_shape,
)
from tinydiff.diffusion.schedules import BETA_SCHEDULES

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclass
class SchedulerOutput:
    """What step() returns: the sample one step less noisy, and the x_0 estimate it used."""

    prev_sample: np.ndarray
    pred_original_sample: np.ndarray = None


def spaced_timesteps(num_train_timesteps, num_inference_steps, timestep_spacing="leading", steps_offset=0):
    """The descending timesteps a sampler visits (Lin et al. 2023, Table 2; diffusers' rules).

    leading   k * (T // n) + steps_offset for k = n-1 .. 0   (never reaches T-1 unless n divides T-1)
    trailing  round(T - k * T / n) - 1 for k = 0 .. n-1     (always starts at T-1)
    linspace  round(linspace(0, T-1, n)) reversed           (always covers 0 and T-1)

    Parameters
    ----------
    num_train_timesteps : int, T
    num_inference_steps : int, n in [1, T]
    timestep_spacing : {"leading", "trailing", "linspace"}
    steps_offset : int >= 0, only used by "leading"

    Returns
    -------
    timesteps : ndarray of int64, shape (n,), strictly decreasing, in [0, T-1]
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    n = check_int("num_inference_steps", num_inference_steps, 1, T)
    check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
    offset = check_int("steps_offset", steps_offset, 0)
    if timestep_spacing == "linspace":
        t = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
    elif timestep_spacing == "leading":
        t = (np.arange(n) * (T // n))[::-1].astype(np.int64) + offset
    else:
        # diffusers writes np.arange(T, 0, -T / n), which float rounding can make one element
        # too long (T = 200, n = 29 gives 30 timesteps ending at -1); counting k avoids that.
        t = np.round(T - np.arange(n) * (T / n)).astype(np.int64) - 1
    if t.max() > T - 1:
        raise ValueError(
            f"steps_offset={offset} pushes the first timestep to {t.max()}, past num_train_timesteps - 1 = {T - 1}"
        )
    return t.copy()


class SchedulerBase:
    """The training noise schedule and the forward process, shared by every scheduler.

    Parameters every scheduler takes (diffusers' names and meaning)
    ----------------------------------------------------------------
    num_train_timesteps : int, T
    beta_start, beta_end : float in (0, 1)
    beta_schedule : {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"}
    trained_betas : ndarray (T,) or None, used instead of the named schedule
    prediction_type : {"epsilon", "sample", "v_prediction"}, what the model outputs
    timestep_spacing : {"leading", "trailing", "linspace"}, see spaced_timesteps
    steps_offset : int >= 0, added to "leading" timesteps
    rescale_betas_zero_snr : bool, rescale to zero terminal SNR (Lin et al. 2023)
    clip_sample, clip_sample_range : bool, float > 0 (not DPM-Solver): clip the x_0 estimate
        to [-clip_sample_range, clip_sample_range]

    Attributes
    ----------
    betas, alphas, alphas_cumprod : ndarray, shape (T,)
    timesteps : ndarray of int64, the timesteps step() visits, in order
    init_noise_sigma : float, the std of the starting noise (1 for variance-preserving schedules)
    """

    def _init_schedule_and_config(self, config, trained_betas):
        """What every scheduler's __init__ shares: check the common options, build the training
        schedule (`betas`, `alphas`, `alphas_cumprod`), keep `config` as self.config, and visit
        every training timestep, T-1 down to 0, until set_timesteps() chooses fewer.

        Parameters
        ----------
        config : dict, the scheduler's arguments by diffusers' names and in diffusers' order (the
            order scheduler_config.json is written in). The shared keys are checked and stored
            as Python ints, floats and bools; a scheduler converts its own keys before calling.
        trained_betas : ndarray (T,) or None, used instead of the named schedule
        """
        check_choice("beta_schedule", config["beta_schedule"], BETA_SCHEDULES)
        check_choice("prediction_type", config["prediction_type"], forward.PREDICTION_TYPES)
        check_choice("timestep_spacing", config["timestep_spacing"], TIMESTEP_SPACINGS)
        if "clip_sample_range" in config:
            config["clip_sample"] = bool(config["clip_sample"])
            config["clip_sample_range"] = check_float("clip_sample_range", config["clip_sample_range"], 0.0,
                                                      low_open=True)
        T = check_int("num_train_timesteps", config["num_train_timesteps"], 1)
        betas = schedules.training_betas(T, config["beta_schedule"], config["beta_start"], config["beta_end"],
                                         trained_betas, config["rescale_betas_zero_snr"])
        config["num_train_timesteps"] = T
        config["steps_offset"] = check_int("steps_offset", config["steps_offset"], 0)
        config["rescale_betas_zero_snr"] = bool(config["rescale_betas_zero_snr"])
        self.config = make_config(**config)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = np.arange(T, dtype=np.int64)[::-1].copy()

    def __len__(self):
        return self.config.num_train_timesteps

    @property
    def snr(self):
        """alpha_bar / (1 - alpha_bar) per training timestep, shape (T,)."""
        return schedules.snr(self.alphas_cumprod)

    @property
    def log_snr(self):
        """log SNR per training timestep, shape (T,) (-inf where SNR is 0)."""
        return schedules.log_snr(self.alphas_cumprod)

    def scale_model_input(self, sample, timestep=None):
        """Identity: variance-preserving schedulers feed x_t to the model unscaled (diffusers' API)."""
        return sample

    def add_noise(self, original_samples, noise, timesteps):
        """x_t from x_0 and noise in one jump (Ho et al. 2020, eq. 4); see forward.add_noise."""
        return forward.add_noise(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample, noise, timesteps):
        """The v-prediction target (Salimans & Ho 2022, sec. 4); see forward.get_velocity."""
        return forward.get_velocity(self.alphas_cumprod, sample, noise, timesteps)

    # ---- helpers for step() ------------------------------------------------------------

    def _check_step_inputs(self, model_output, sample):
        sample = as_float_array("sample", sample)
        model_output = as_float_array("model_output", model_output)
        check_same_shape("sample", sample, "model_output", model_output)
        return model_output, sample

    def _index_of(self, timestep):
        """Position of `timestep` in self.timesteps; ValueError if the scheduler never visits it."""
        t = check_int("timestep", timestep, 0, self.config.num_train_timesteps - 1)
        hits = np.flatnonzero(self.timesteps == t)
        if hits.size == 0:
            shown = self.timesteps if self.timesteps.size <= 12 else np.r_[self.timesteps[:5], self.timesteps[-5:]]
            raise ValueError(f"timestep {t} is not one of this scheduler's timesteps ({shown.tolist()}...); "
                             "call set_timesteps() and step through scheduler.timesteps")
        return int(hits[0]), t

    @staticmethod
    def _noise_for(shape, dtype, generator, noise):
        """The stochastic part of a step: the explicit `noise` if given, else drawn from `generator`."""
        if noise is not None:
            noise = as_float_array("noise", noise)
            if noise.shape != tuple(shape):
                raise ValueError(f"noise must have the sample's shape {tuple(shape)}, got {noise.shape}")
            return noise
        check_generator("generator", generator)
        if generator is None:
            raise ValueError("this step adds noise: pass generator=np.random.default_rng(seed) or noise=array "
                             "(tinydiff never draws from global random state)")
        return generator.standard_normal(shape).astype(dtype, copy=False)


def make_config(**values):
    """The scheduler's arguments, readable as scheduler.config.<name> as in diffusers."""
    return SimpleNamespace(**values)
