"""Noise schedules, the forward process and the samplers, with diffusers' scheduler API.

Depends on NumPy alone: a scheduler never knows what network produced `model_output`.

    schedules.py      beta schedules, zero-terminal-SNR rescaling, SNR and log-SNR
    forward.py        q(x_t | x_0), v, prediction-type conversions, the posterior q(x_{t-1} | x_t, x_0)
    ddpm.py           DDPMScheduler (Ho et al. 2020)
    ddim.py           DDIMScheduler (Song et al. 2021)
    ddim_inverse.py   DDIMInverseScheduler (DDIM run from data to noise)
    dpm_solver.py     DPMSolverMultistepScheduler (DPM-Solver++ 2M, Lu et al. 2022)
    oracle.py         GaussianMixture: data whose ideal denoiser E[eps | x_t] is known exactly;
                      ExactConditionalModel, the same per class with a null class (guidance)
"""

from tinydiff.diffusion.ddim import DDIMScheduler
from tinydiff.diffusion.ddim_inverse import DDIMInverseScheduler
from tinydiff.diffusion.ddpm import DDPMScheduler
from tinydiff.diffusion.dpm_solver import DPMSolverMultistepScheduler
from tinydiff.diffusion.forward import (
    PREDICTION_TYPES,
    add_noise,
    epsilon_to_x0,
    get_velocity,
    posterior_coefficients,
    predict_x0_and_epsilon,
    q_sample,
    v_to_epsilon,
    v_to_x0,
    velocity,
    x0_to_epsilon,
)
from tinydiff.diffusion.oracle import ExactConditionalModel, GaussianMixture, example_mixture_2d, mixture_of_classes
from tinydiff.diffusion.scheduling_base import TIMESTEP_SPACINGS, SchedulerOutput, spaced_timesteps
from tinydiff.diffusion.schedules import (
    BETA_SCHEDULES,
    alphas_cumprod_from_betas,
    linear_betas,
    log_snr,
    make_betas,
    rescale_zero_terminal_snr,
    scaled_linear_betas,
    sigmoid_betas,
    snr,
    squaredcos_cap_v2_betas,
)

__all__ = [
    "BETA_SCHEDULES", "PREDICTION_TYPES", "TIMESTEP_SPACINGS",
    "DDIMInverseScheduler", "DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler",
    "ExactConditionalModel", "GaussianMixture", "SchedulerOutput", "example_mixture_2d", "mixture_of_classes",
    "add_noise", "alphas_cumprod_from_betas", "epsilon_to_x0", "get_velocity", "linear_betas", "log_snr",
    "make_betas", "posterior_coefficients", "predict_x0_and_epsilon", "q_sample", "rescale_zero_terminal_snr",
    "scaled_linear_betas", "sigmoid_betas", "snr", "spaced_timesteps", "squaredcos_cap_v2_betas",
    "v_to_epsilon", "v_to_x0", "velocity", "x0_to_epsilon",
]
