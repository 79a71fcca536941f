"""The forward process q(x_t | x_0), its posterior q(x_{t-1} | x_t, x_0), and the three
things a network may be trained to predict.

Notation (Ho et al. 2020; Salimans & Ho 2022 for v):

    alpha_bar   cumulative product of (1 - beta), ᾱ_t in the paper
    x_t         sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps          (Ho et al. 2020, eq. 4)
    eps         the standard normal noise that made x_t
    v           sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0          (Salimans & Ho 2022, sec. 4)

Given x_t and any one of (eps, x_0, v), the other two follow; the conversions below are
exact inverses of each other whenever 0 < alpha_bar < 1.

Coefficients are per-sample: `alpha_bar` may be a scalar or have shape (B,), and is
broadcast over the remaining axes of the (B, ...) sample. Results keep the sample's dtype.
"""

import numpy as np

from tinydiff.diffusion.checks import as_float_array, check_choice, check_same_shape, check_timesteps_array

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def _per_sample(alpha_bar, like):
    """Reshape a scalar or (B,) coefficient so it broadcasts over a (B, ...) array."""
    a = np.asarray(alpha_bar, dtype=np.float64)
    if a.ndim == 0:
        return a
    if like.ndim == 0 or a.shape != (like.shape[0],):
        raise ValueError(f"alpha_bar must be a scalar or have shape ({like.shape[0] if like.ndim else 1},), got {a.shape}")
    return a.reshape((-1,) + (1,) * (like.ndim - 1))  # (B,) -> (B, 1, ..., 1)


def q_sample(x0, noise, alpha_bar):
    """x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps (Ho et al. 2020, eq. 4).

    Parameters
    ----------
    x0, noise : ndarray, shape (B, ...)
    alpha_bar : float or ndarray, shape (B,)

    Returns
    -------
    x_t : ndarray, shape (B, ...), dtype of x0
    """
    x0 = as_float_array("original_samples", x0)
    noise = as_float_array("noise", noise)
    check_same_shape("original_samples", x0, "noise", noise)
    a = _per_sample(alpha_bar, x0)
    return (np.sqrt(a) * x0 + np.sqrt(1.0 - a) * noise).astype(x0.dtype, copy=False)


def velocity(x0, noise, alpha_bar):
    """v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 (Salimans & Ho 2022, sec. 4 and
    appendix D); shape of x0."""
    x0 = as_float_array("sample", x0)
    noise = as_float_array("noise", noise)
    check_same_shape("sample", x0, "noise", noise)
    a = _per_sample(alpha_bar, x0)
    return (np.sqrt(a) * noise - np.sqrt(1.0 - a) * x0).astype(x0.dtype, copy=False)


def _batch_and_alpha_bar(name, x0, alphas_cumprod, timesteps):
    """x0 as a float array with a batch axis (B, ...), and alpha_bar at each sample's timestep (B,)."""
    x0 = as_float_array(name, x0)
    if x0.ndim == 0:
        raise ValueError(f"{name} must have a batch axis (B, ...), got a scalar")
    t = check_timesteps_array("timesteps", timesteps, len(alphas_cumprod), x0.shape[0])
    return x0, np.asarray(alphas_cumprod)[t]


def add_noise(alphas_cumprod, original_samples, noise, timesteps):
    """q(x_t | x_0) in closed form with one timestep per sample (Ho et al. 2020, eq. 4).

    Parameters
    ----------
    alphas_cumprod : ndarray, shape (T,)
    original_samples, noise : ndarray, shape (B, ...)
    timesteps : int or ndarray of int, shape (B,), each in [0, T-1]

    Returns
    -------
    noisy_samples : ndarray, shape (B, ...)
    """
    x0, alpha_bar = _batch_and_alpha_bar("original_samples", original_samples, alphas_cumprod, timesteps)
    return q_sample(x0, noise, alpha_bar)


def get_velocity(alphas_cumprod, sample, noise, timesteps):
    """The v-prediction target for clean `sample` and `noise` at per-sample `timesteps`.

    Parameters
    ----------
    alphas_cumprod : ndarray, shape (T,)
    sample, noise : ndarray, shape (B, ...)
    timesteps : int or ndarray of int, shape (B,)

    Returns
    -------
    v : ndarray, shape (B, ...)
    """
    x0, alpha_bar = _batch_and_alpha_bar("sample", sample, alphas_cumprod, timesteps)
    return velocity(x0, noise, alpha_bar)


def epsilon_to_x0(eps, x_t, alpha_bar):
    """x_0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) (eq. 4 solved for x_0; Ho eq. 15)."""
    a = _per_sample(alpha_bar, np.asarray(x_t))
    return (x_t - np.sqrt(1.0 - a) * eps) / np.sqrt(a)


def x0_to_epsilon(x0, x_t, alpha_bar):
    """eps = (x_t - sqrt(alpha_bar) x_0) / sqrt(1 - alpha_bar) (eq. 4 solved for eps)."""
    a = _per_sample(alpha_bar, np.asarray(x_t))
    return (x_t - np.sqrt(a) * x0) / np.sqrt(1.0 - a)


def v_to_x0(v, x_t, alpha_bar):
    """x_0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v (Salimans & Ho 2022, sec. 4)."""
    a = _per_sample(alpha_bar, np.asarray(x_t))
    return np.sqrt(a) * x_t - np.sqrt(1.0 - a) * v


def v_to_epsilon(v, x_t, alpha_bar):
    """eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x_t (Salimans & Ho 2022, sec. 4)."""
    a = _per_sample(alpha_bar, np.asarray(x_t))
    return np.sqrt(a) * v + np.sqrt(1.0 - a) * x_t


def predict_x0_and_epsilon(model_output, x_t, alpha_bar, prediction_type):
    """Turn a network output of any prediction type into the pair (x_0 estimate, eps estimate).

    Parameters
    ----------
    model_output, x_t : ndarray, shape (B, ...)
    alpha_bar : float or ndarray, shape (B,)
    prediction_type : {"epsilon", "sample", "v_prediction"}

    Returns
    -------
    x0, eps : ndarray, shape (B, ...)
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    a = np.asarray(alpha_bar)
    if prediction_type == "epsilon" and np.any(a == 0.0):
        # At zero SNR x_t is pure noise: eps = x_t carries no information about x_0.
        raise ValueError("prediction_type='epsilon' cannot recover x_0 where alpha_bar = 0 (zero terminal SNR); "
                         "use prediction_type='v_prediction' (Lin et al. 2023, sec. 3.2)")
    if prediction_type == "sample" and np.any(a == 1.0):
        raise ValueError("prediction_type='sample' cannot recover eps where alpha_bar = 1 (no noise in x_t); "
                         "use prediction_type='epsilon' or 'v_prediction'")
    if prediction_type == "epsilon":
        return epsilon_to_x0(model_output, x_t, alpha_bar), model_output
    if prediction_type == "sample":
        return model_output, x0_to_epsilon(model_output, x_t, alpha_bar)
    return v_to_x0(model_output, x_t, alpha_bar), v_to_epsilon(model_output, x_t, alpha_bar)


def posterior_coefficients(alpha_bar_t, alpha_bar_prev):
    """Mean coefficients and variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 6-7; the
    mean written with eps instead of x_0 is eq. 11, see posterior_mean_from_epsilon).

    With beta_t = 1 - alpha_bar_t / alpha_bar_prev (the effective beta of a possibly
    respaced step from t to prev):

        mean     = c0 * x_0 + ct * x_t
        c0       = sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar_t)
        ct       = sqrt(1 - beta_t) (1 - alpha_bar_prev) / (1 - alpha_bar_t)
        variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t       ("beta tilde")

    Returns
    -------
    c0, ct, variance : float or ndarray shaped like the inputs
    """
    ab_t = np.asarray(alpha_bar_t, dtype=np.float64)
    ab_prev = np.asarray(alpha_bar_prev, dtype=np.float64)
    beta_t = 1.0 - ab_t / ab_prev
    c0 = np.sqrt(ab_prev) * beta_t / (1.0 - ab_t)
    ct = np.sqrt(1.0 - beta_t) * (1.0 - ab_prev) / (1.0 - ab_t)
    variance = (1.0 - ab_prev) / (1.0 - ab_t) * beta_t
    return c0, ct, variance


def posterior_mean_from_epsilon(eps, x_t, alpha_bar_t, alpha_bar_prev):
    """The reverse step's mean written with an eps estimate (Ho et al. 2020, eq. 11):

        mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t)

    with alpha_t = 1 - beta_t = alpha_bar_t / alpha_bar_prev (the effective beta of a possibly
    respaced step). It is the posterior mean of eq. 7 with x_0 replaced by its eq. 15 estimate
    from eps; DDPMScheduler.step takes that longer route because it may clip x_0 in between.

    Parameters
    ----------
    eps, x_t : ndarray, shape (B, ...)
    alpha_bar_t, alpha_bar_prev : float

    Returns
    -------
    mu : ndarray, shape (B, ...)
    """
    alpha_t = alpha_bar_t / alpha_bar_prev
    beta_t = 1.0 - alpha_t
    return (x_t - beta_t / np.sqrt(1.0 - alpha_bar_t) * eps) / np.sqrt(alpha_t)  # Ho et al. 2020, eq. 11
