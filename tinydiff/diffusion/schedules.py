"""Noise schedules: pure functions of (T, options) that return arrays.

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"):

    T          number of training timesteps; t runs over 0 .. T-1 (diffusers' 0-based indexing)
    beta_t     variance of the noise added by step t:  q(x_t | x_{t-1}) = N(sqrt(1-beta_t) x_{t-1}, beta_t I)
    alpha_t    1 - beta_t
    alpha_bar  cumulative product of alphas, written ᾱ_t in the paper (eq. 4):
               q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    SNR_t      alpha_bar_t / (1 - alpha_bar_t), the signal-to-noise ratio of x_t (Kingma et al. 2021)

All arrays are float64 of shape (T,). diffusers builds the same numbers in float32 torch
tensors; the values agree to float32 rounding.
"""

import math

import numpy as np

from tinydiff.diffusion.checks import check_choice, check_float, check_int

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


def linear_betas(num_train_timesteps, beta_start=1e-4, beta_end=0.02):
    """Betas evenly spaced from beta_start to beta_end (Ho et al. 2020, sec. 4).

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def scaled_linear_betas(num_train_timesteps, beta_start=1e-4, beta_end=0.02):
    """Square roots of the betas evenly spaced (Stable Diffusion's schedule, Rombach et al. 2022).

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    return np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), T, dtype=np.float64) ** 2


def cosine_alpha_bar(u, s=0.008):
    """The continuous cosine alpha_bar of Nichol & Dhariwal 2021, eq. 17, at u = t / T in [0, 1].

    f(u) = cos((u + s) / (1 + s) * pi / 2) ** 2; the paper divides by f(0), which cancels in
    the ratios used by `squaredcos_cap_v2_betas`.
    """
    return np.cos((np.asarray(u, dtype=np.float64) + s) / (1.0 + s) * np.pi / 2.0) ** 2


def squaredcos_cap_v2_betas(num_train_timesteps, max_beta=0.999):
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17) discretised to betas, clipped at max_beta.

    beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta). The clip matters only near t = T where the
    cosine reaches zero; without it the last beta would be 1 and x_T would hold no signal at
    all but could not be inverted either.

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    max_beta = check_float("max_beta", max_beta, 0.0, 1.0, low_open=True, high_open=True)
    i = np.arange(T, dtype=np.float64)
    betas = 1.0 - cosine_alpha_bar((i + 1) / T) / cosine_alpha_bar(i / T)
    return np.minimum(betas, max_beta)


def sigmoid_betas(num_train_timesteps, beta_start=1e-4, beta_end=0.02):
    """Betas following a sigmoid over [-6, 6], scaled to [beta_start, beta_end] (as in diffusers).

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    z = np.linspace(-6.0, 6.0, T, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-z)) * (beta_end - beta_start) + beta_start


def make_betas(beta_schedule, num_train_timesteps, beta_start=1e-4, beta_end=0.02):
    """Betas of the named schedule, validated to lie in (0, 1).

    Parameters
    ----------
    beta_schedule : {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"}
    num_train_timesteps : int, T >= 1
    beta_start, beta_end : float in (0, 1); ignored by "squaredcos_cap_v2"

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    check_choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
    check_int("num_train_timesteps", num_train_timesteps, 1)
    check_float("beta_start", beta_start, 0.0, 1.0, low_open=True, high_open=True)
    check_float("beta_end", beta_end, 0.0, 1.0, low_open=True, high_open=True)
    if beta_schedule == "linear":
        betas = linear_betas(num_train_timesteps, beta_start, beta_end)
    elif beta_schedule == "scaled_linear":
        betas = scaled_linear_betas(num_train_timesteps, beta_start, beta_end)
    elif beta_schedule == "squaredcos_cap_v2":
        betas = squaredcos_cap_v2_betas(num_train_timesteps)
    else:
        betas = sigmoid_betas(num_train_timesteps, beta_start, beta_end)
    return check_betas(betas)


def training_betas(num_train_timesteps, beta_schedule, beta_start, beta_end, trained_betas=None,
                   rescale_betas_zero_snr=False):
    """The betas a scheduler trains and samples with, from its options (diffusers' names).

    Parameters
    ----------
    num_train_timesteps : int, T
    beta_schedule, beta_start, beta_end : see make_betas
    trained_betas : ndarray (T,) or None, used instead of the named schedule
    rescale_betas_zero_snr : bool, then rescaled to zero terminal SNR (rescale_zero_terminal_snr)

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    T = check_int("num_train_timesteps", num_train_timesteps, 1)
    if trained_betas is not None:
        betas = check_betas(trained_betas, "trained_betas")
        if betas.size != T:
            raise ValueError(f"trained_betas must have num_train_timesteps={T} entries, got {betas.size}")
    else:
        betas = make_betas(beta_schedule, T, beta_start, beta_end)
    if not isinstance(rescale_betas_zero_snr, (bool, np.bool_)):
        raise TypeError(f"rescale_betas_zero_snr must be a bool, got {rescale_betas_zero_snr!r}")
    if rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


def check_betas(betas, name="betas"):
    """Return `betas` as a float64 (T,) array; raise ValueError unless every beta is in (0, 1)."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (T,), got shape {betas.shape}")
    bad = ~((betas > 0.0) & (betas < 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must all be in (0, 1), got {name}[{i}] = {betas[i]!r}")
    return betas


def rescale_zero_terminal_snr(betas):
    """Rescale betas so the last timestep has SNR exactly 0 (Lin et al. 2023, Algorithm 1).

    sqrt(alpha_bar) is shifted so its last value is 0 and scaled so its first value is kept:
    the model then learns to predict from pure noise, as it must at sampling time.
    The last beta becomes exactly 1.

    Parameters
    ----------
    betas : ndarray, shape (T,), T >= 2

    Returns
    -------
    betas : ndarray, shape (T,)
    """
    betas = check_betas(betas)
    if betas.size < 2:
        raise ValueError(f"rescale_zero_terminal_snr needs T >= 2 timesteps, got {betas.size}")
    sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ab[0], sqrt_ab[-1]
    sqrt_ab = (sqrt_ab - last) * (first / (first - last))
    alpha_bar = sqrt_ab**2
    alphas = np.concatenate([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1.0 - alphas


def alphas_cumprod_from_betas(betas):
    """alpha_bar_t = prod_{s <= t} (1 - beta_s) (Ho et al. 2020, notation above eq. 4).

    Returns
    -------
    alphas_cumprod : ndarray, shape (T,)
    """
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def snr(alphas_cumprod):
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) (Kingma et al. 2021, eq. 1); shape kept."""
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return ab / (1.0 - ab)


def log_snr(alphas_cumprod):
    """log SNR = log(alpha_bar) - log(1 - alpha_bar), the lambda_t of DPM-Solver; -inf at zero SNR."""
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(ab) - np.log1p(-ab)
