"""Likelihoods on 8-bit images, in bits per dimension: the discretised Gaussian decoder and the
DDPM variational bound (Ho et al. 2020, eq. 5 with the decoder of eq. 13 for L_0).

Notation (0-based timesteps as in the schedulers: index t is the paper's t + 1):

    8-bit data   x in {0, ..., 255}, scaled to x / 127.5 - 1 in [-1, 1]; a bin is 2/255 wide
    abar_t       alphas_cumprod[t], the cumulative product of (1 - beta)
    x_t          sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps                      (eq. 4)
    L_T          KL(q(x_T | x_0) || N(0, I))                                   (eq. 5, first term)
    L_(t-1)      KL(q(x_(t-1) | x_t, x_0) || p(x_(t-1) | x_t)), Ho's t = 2..T  (eq. 5, middle)
    L_0          -log p(x_0 | x_1), the discretised decoder                    (eq. 13)
    bits/dim     nats / (D ln 2), D = C H W

The reverse step p(x_(t-1) | x_t) = N(mu_theta, sigma_t^2) has the posterior mean of eq. 7 with
x_0 replaced by the network's estimate, and the variance sigma_t^2 = beta_tilde_t of eq. 7
("fixedsmall" in Ho et al.'s code) or beta_t ("fixedlarge"); both of their choices in sec. 3.2.
beta_tilde at Ho's t = 1 is 0 (a decoder with no width), so the decoder's variance is
beta_tilde at Ho's t = 2, as Ho et al.'s code clips it (posterior_log_variance_clipped).
"""

import numpy as np
from scipy.special import log_ndtr

from tinydiff.diffusion.checks import check_generator
from tinydiff.diffusion.forward import posterior_coefficients

BIN_HALF_WIDTH = 1.0 / 255.0  # half of a bin of 8-bit data scaled to [-1, 1]
REVERSE_VARIANCES = ("beta_tilde", "beta")


def to_8bit(images):
    """Images in [-1, 1] (any shape) -> the nearest 8-bit values {0..255}, uint8."""
    images = np.asarray(images, dtype=np.float64)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_8bit(values, dtype=np.float32):
    """8-bit values {0..255} -> x / 127.5 - 1 in [-1, 1], the centres of the bins."""
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"values: expected 8-bit integers in [0, 255], got [{values.min()}, {values.max()}]")
    return (values.astype(np.float64) / 127.5 - 1.0).astype(dtype)


def bits_per_dim(nats, dims):
    """Nats per image -> bits per dimension: nats / (D ln 2)."""
    return np.asarray(nats, dtype=np.float64) / (dims * np.log(2.0))


def _log_normal_pdf(z):
    return -0.5 * z * z - 0.5 * np.log(2.0 * np.pi)


def _bin_edges(x, mean, log_scale):
    """Standardised bin edges (lo, hi) of each 8-bit value x in [-1, 1]: the outermost bins reach
    to -inf and +inf, so the 256 probabilities of a pixel sum to 1 (Ho et al. 2020, eq. 13)."""
    inv = np.exp(-log_scale)
    lo = np.where(x <= -1.0 + 1e-6, -np.inf, (x - BIN_HALF_WIDTH - mean) * inv)
    hi = np.where(x >= 1.0 - 1e-6, np.inf, (x + BIN_HALF_WIDTH - mean) * inv)
    return lo, hi


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log P(x) per element for 8-bit data x under N(mean, exp(log_scale)^2) integrated over the
    bin of x (Ho et al. 2020, eq. 13). Elementwise, float64, all arguments broadcast.

    log(Phi(hi) - Phi(lo)) is formed from log Phi of the edge farther into the tail on the same
    side (by symmetry Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)), so it stays finite for a mean
    many standard deviations away.

    Parameters
    ----------
    x : ndarray (...), bin centres x / 127.5 - 1 of 8-bit data (from_8bit)
    mean, log_scale : ndarray broadcastable to x

    Returns
    -------
    logp : ndarray (...) float64, <= 0
    """
    x, mean, log_scale = (np.asarray(a, dtype=np.float64) for a in (x, mean, log_scale))
    lo, hi = _bin_edges(x, mean, log_scale)
    flip = (lo + hi) > 0  # the bin lies right of the mean: use the mirrored edges
    a, b = np.where(flip, -hi, lo), np.where(flip, -lo, hi)  # b >= a, b on the left of centre
    log_b, log_a = log_ndtr(b), log_ndtr(a)
    with np.errstate(divide="ignore"):
        return log_b + np.log1p(-np.exp(log_a - log_b))


def discretized_gaussian_backward(dlogp, x, mean, log_scale):
    """Gradients of discretized_gaussian_log_likelihood: (dmean, dlog_scale), shaped like the
    broadcast of the arguments (reduce them yourself where an argument was broadcast).

    With delta = Phi(hi) - Phi(lo) and phi the standard normal density:
        d log delta / d mean      = -(phi(hi) - phi(lo)) / (s delta)
        d log delta / d log_scale = -(hi phi(hi) - lo phi(lo)) / delta     (phi(+-inf) terms = 0)
    """
    x, mean, log_scale = (np.asarray(a, dtype=np.float64) for a in (x, mean, log_scale))
    logp = discretized_gaussian_log_likelihood(x, mean, log_scale)
    lo, hi = _bin_edges(x, mean, log_scale)
    # phi(edge) / delta in logs; an infinite edge has phi = 0 (its term drops)
    hi_f, lo_f = np.where(np.isfinite(hi), hi, np.inf), np.where(np.isfinite(lo), lo, np.inf)
    r_hi, r_lo = np.exp(_log_normal_pdf(hi_f) - logp), np.exp(_log_normal_pdf(lo_f) - logp)
    hi_f, lo_f = np.where(np.isfinite(hi), hi, 0.0), np.where(np.isfinite(lo), lo, 0.0)
    dlogp = np.asarray(dlogp, dtype=np.float64)
    dmean = -dlogp * (r_hi - r_lo) * np.exp(-log_scale)
    dlog_scale = -dlogp * (hi_f * r_hi - lo_f * r_lo)
    return dmean, dlog_scale


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats (the Gaussian
    KL divergences eq. 5 is made of; Ho et al. 2020, sec. 3: all in closed form)."""
    return 0.5 * (logvar2 - logvar1 + np.exp(logvar1 - logvar2)
                  + (np.asarray(mean1) - mean2) ** 2 * np.exp(-np.asarray(logvar2)) - 1.0)


def reverse_variances(alphas_cumprod, kind="beta_tilde"):
    """sigma_t^2 of p(x_(t-1) | x_t) per 0-based timestep (T,): beta_tilde_t (eq. 7) or beta_t
    (Ho et al. 2020, sec. 3.2), with entry 0 (the decoder's) = beta_tilde_1 as in Ho et al.'s code."""
    if kind not in REVERSE_VARIANCES:
        raise ValueError(f"kind: expected one of {REVERSE_VARIANCES}, got {kind!r}")
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    _, _, beta_tilde = posterior_coefficients(ab, ab_prev)
    var = beta_tilde.copy() if kind == "beta_tilde" else 1.0 - ab / ab_prev
    var[0] = beta_tilde[1]
    return var


def prior_term(x0, alphas_cumprod):
    """L_T = KL(q(x_T | x_0) || N(0, I)) per image, nats (B,); x0 (B, ...) (Ho et al. 2020, eq. 5)."""
    ab_T = float(np.asarray(alphas_cumprod)[-1])
    kl = normal_kl(np.sqrt(ab_T) * np.asarray(x0, dtype=np.float64), np.log(1.0 - ab_T), 0.0, 0.0)
    return kl.reshape(len(x0), -1).sum(axis=1)


def transition_term(x0, x_t, x0_pred, t, alphas_cumprod, variances):
    """L_(t-1) = KL(q(x_(t-1) | x_t, x_0) || p(x_(t-1) | x_t)) per image, nats (B,), for 0-based
    timesteps t (B,) >= 1 (Ho et al. 2020, eq. 5). Both means are eq. 7's posterior mean, with
    x_0 and with the network's estimate x0_pred; x0, x_t, x0_pred (B, ...)."""
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    t = np.asarray(t)
    c0, ct, post_var = posterior_coefficients(ab[t], ab[t - 1])  # eq. 6-7, each (B,)
    shape = (-1,) + (1,) * (np.ndim(x0) - 1)
    x0, x_t, x0_pred = (np.asarray(a, dtype=np.float64) for a in (x0, x_t, x0_pred))
    mean_q = c0.reshape(shape) * x0 + ct.reshape(shape) * x_t
    mean_p = c0.reshape(shape) * x0_pred + ct.reshape(shape) * x_t
    kl = normal_kl(mean_q, np.log(post_var).reshape(shape), mean_p, np.log(variances[t]).reshape(shape))
    return kl.reshape(len(x0), -1).sum(axis=1)


def decoder_term(x0, x0_pred, variance):
    """L_0 = -log p(x_0 | x_1) per image, nats (B,): the discretised Gaussian of eq. 13 around the
    reverse mean at Ho's t = 1, which is the network's x_0 estimate (eq. 7 with abar_0 = 1)."""
    logp = discretized_gaussian_log_likelihood(x0, x0_pred, 0.5 * np.log(variance))
    return -logp.reshape(len(x0), -1).sum(axis=1)


def strata(num_train_timesteps, num_strata):
    """The timesteps 1..T-1 of the middle terms cut into `num_strata` consecutive groups."""
    if not 1 <= num_strata <= num_train_timesteps - 1:
        raise ValueError(f"num_strata: expected 1..{num_train_timesteps - 1}, got {num_strata}")
    return np.array_split(np.arange(1, num_train_timesteps), num_strata)


def ddpm_bound(predict_x0, x0, alphas_cumprod, rng, num_strata=None, variance="beta_tilde"):
    """The DDPM variational bound (Ho et al. 2020, eq. 5; L_0 by eq. 13) per image, in bits/dim.

    The T - 1 middle terms are summed exactly (num_strata=None: one network call per timestep) or
    estimated without bias by stratified sampling: the timesteps 1..T-1 are cut into num_strata
    groups, one timestep is drawn uniformly in each group per image, and its term counts for the
    whole group (times the group's size). Each image's bound is then a random number whose mean
    is the exact bound; the standard error of their mean covers both the images and the draws.

    Parameters
    ----------
    predict_x0 : callable (x_t (B, ...), t (B,) ints) -> x_0 estimate (B, ...)
    x0 : ndarray (B, ...), 8-bit data scaled to [-1, 1] (from_8bit)
    alphas_cumprod : ndarray (T,)
    rng : numpy.random.Generator, draws the noise and the timesteps
    num_strata : int or None
    variance : "beta_tilde" or "beta", the reverse variance (reverse_variances)

    Returns
    -------
    dict: "bits_per_dim" (B,) per image, "mean" and "stderr" over images, and the mean of each
    part in bits/dim: "prior" (L_T), "transitions" (sum of L_(t-1)), "decoder" (L_0).
    """
    check_generator("rng", rng)
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0: expected a batch (B, ...) with B >= 1, got shape {x0.shape}")
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    B, T, dims = len(x0), len(ab), x0[0].size
    variances = reverse_variances(ab, variance)
    shape = (-1,) + (1,) * (x0.ndim - 1)

    def noised(t):  # x_t by eq. 4, fresh noise per call
        eps = rng.standard_normal(x0.shape)
        return np.sqrt(ab[t]).reshape(shape) * x0 + np.sqrt(1.0 - ab[t]).reshape(shape) * eps

    # 1. L_T, no network
    prior = prior_term(x0, ab)
    # 2. L_0 at Ho's t = 1 (index 0), eq. 13
    t0 = np.zeros(B, dtype=np.int64)
    decoder = decoder_term(x0, predict_x0(noised(t0), t0), variances[0])
    # 3. the middle terms L_(t-1), exactly or one draw per stratum
    groups = [np.array([t]) for t in range(1, T)] if num_strata is None else strata(T, num_strata)
    transitions = np.zeros(B)
    for group in groups:
        t = group[rng.integers(0, len(group), size=B)]
        x_t = noised(t)
        transitions += len(group) * transition_term(x0, x_t, predict_x0(x_t, t), t, ab, variances)
    total = bits_per_dim(prior + decoder + transitions, dims)
    return {
        "bits_per_dim": total,
        "mean": float(total.mean()),
        "stderr": float(total.std(ddof=1) / np.sqrt(B)) if B > 1 else float("nan"),
        "prior": float(bits_per_dim(prior, dims).mean()),
        "transitions": float(bits_per_dim(transitions, dims).mean()),
        "decoder": float(bits_per_dim(decoder, dims).mean()),
    }
