"""Classifier-free guidance: one network, run with and without its condition, extrapolated.

Notation (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance"):

    cond     the model's output given the condition c            (eps(x_t, c), or v, or x_0)
    uncond   its output given the null condition (c = null)    (eps(x_t)), learnt by dropping c
    w        the paper's guidance strength, eq. 6:  eps~ = (1 + w) eps(x_t, c) - w eps(x_t)
    s        diffusers' guidance_scale, s = 1 + w:  guided = uncond + s * (cond - uncond)

So s = 1 (w = 0) is the plain conditional model, s = 0 (w = -1) the unconditional one, and
s = 7.5 (Stable Diffusion's default) is w = 6.5. Users trip over w against w + 1: tinydiff,
like diffusers, always takes s.

Why it works: eps is a scaled score, eps = -sqrt(1 - alpha_bar) * grad log p(x_t), and the
guided output is the score of p(x_t | c)^s p(x_t)^(1 - s), i.e. of p(x_t) p(c | x_t)^s: an
implicit classifier raised to the power s sharpens samples towards what says "c".

Training (Algorithm 1) drops the condition: with probability p_uncond a sample's label is
replaced by the null class, so the one network learns both outputs (drop_condition).

Guidance need not run at every step: Kynkaanniemi et al. 2024 apply it only in an interval of
noise levels (scale_at), which keeps the diversity that guidance at high noise costs and skips
the low-noise steps where it does little; outside the interval a step is one conditional forward.

The condition is one array whose first axis is the batch: class labels (B,) today, text
embeddings (B, N, D) later. The null condition has the same shape. Both halves run as one
batch of 2B, as diffusers' pipelines do.
"""

import numpy as np

# The key in a model folder's model_index.json under which it recommends a guidance scale,
# the default of `tinydiff sample` (save_pipeline(..., guidance_scale=) writes it).
GUIDANCE_SCALE_KEY = "_tinydiff_guidance_scale"
# ... and the interval of timesteps [low, high] it applies guidance in (absent: every step).
GUIDANCE_INTERVAL_KEY = "_tinydiff_guidance_interval"


def check_guidance(guidance_scale, guidance_rescale):
    """guidance_scale: a finite number >= 0; guidance_rescale: a number in [0, 1]."""
    for name, value in (("guidance_scale", guidance_scale), ("guidance_rescale", guidance_rescale)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not np.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale: expected a finite number >= 0 (1 = no guidance, 0 = the unconditional "
                         f"model; diffusers' s = 1 + w of Ho & Salimans eq. 6), got {guidance_scale!r}")
    if not 0 <= guidance_rescale <= 1:  # also rejects NaN
        raise ValueError(f"guidance_rescale: expected a number in [0, 1] (Lin et al. 2023's phi), "
                         f"got {guidance_rescale!r}")
    return float(guidance_scale), float(guidance_rescale)


def check_guidance_interval(guidance_interval, num_train_timesteps):
    """None (guidance at every step) or (t_low, t_high): two integer timesteps with
    0 <= t_low <= t_high < num_train_timesteps, in training-timestep units (the t the model is
    called with). Returned as a tuple of two ints."""
    if guidance_interval is None:
        return None
    if isinstance(guidance_interval, (str, bytes)) or not hasattr(guidance_interval, "__len__") \
            or len(guidance_interval) != 2:
        raise TypeError(f"guidance_interval: expected None or (t_low, t_high), two timesteps, "
                        f"got {guidance_interval!r}")
    for value in guidance_interval:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
                or not float(value).is_integer():
            raise TypeError(f"guidance_interval: expected two integer timesteps (t_low, t_high), "
                            f"got {guidance_interval!r}")
    low, high = (int(v) for v in guidance_interval)
    if not 0 <= low <= high < num_train_timesteps:
        raise ValueError(f"guidance_interval: expected (t_low, t_high) with 0 <= t_low <= t_high < "
                         f"{num_train_timesteps} (the scheduler's num_train_timesteps), got {guidance_interval!r}")
    return low, high


def scale_at(t, guidance_scale, guidance_interval):
    """The guidance scale used at timestep t: guidance_scale inside the interval [t_low, t_high]
    (both ends included) or everywhere when the interval is None, else 1 (the conditional model).

    Kynkaanniemi et al. 2024 ("Applying guidance in a limited interval improves sample and
    distribution quality in diffusion models"): the guidance weight is a function of the noise
    level, w(sigma) = w inside (sigma_lo, sigma_hi] and no guidance outside. At high noise,
    guidance pulls every sample of a class towards the same few modes (it costs diversity); at
    low noise the class is settled and guidance does little. Here the interval is in timesteps,
    which rise with sigma = sqrt((1 - alpha_bar_t) / alpha_bar_t)."""
    if guidance_interval is None or guidance_interval[0] <= t <= guidance_interval[1]:
        return guidance_scale
    return 1.0


def null_class_label(model):
    """The index of a class-conditional model's null class (its config's class_embed_null_index),
    or None if it was built without one (trained without condition dropout)."""
    index = getattr(model, "config", {}).get("class_embed_null_index")
    return None if index is None else int(index)


def rescale_noise_cfg(guided, cond, guidance_rescale):
    """Pull the guided output's per-sample std back to the conditional output's, then mix.

    Lin et al. 2023 ("Common Diffusion Noise Schedules and Sample Steps are Flawed"),
    sec. 3.4 (its equations, written here in tinydiff's names):

        sigma_pos = std(cond), sigma_cfg = std(guided)           per sample, over all but axis 0
        rescaled  = guided * sigma_pos / sigma_cfg
        final     = phi * rescaled + (1 - phi) * guided

    A large s inflates the output's std (over-exposed, saturated images); the rescale undoes that,
    and phi < 1 keeps some of the guided output so that images do not turn plain. The std is
    the unbiased one (ddof=1), as torch.std in diffusers' rescale_noise_cfg.

    Parameters
    ----------
    guided, cond : ndarray, shape (B, ...)
    guidance_rescale : float in [0, 1], phi

    Returns
    -------
    ndarray, shape (B, ...), dtype of guided
    """
    axes = tuple(range(1, guided.ndim))
    std_cond = cond.std(axis=axes, keepdims=True, ddof=1)      # (B, 1, ...)
    std_guided = guided.std(axis=axes, keepdims=True, ddof=1)  # (B, 1, ...)
    rescaled = guided * (std_cond / std_guided)                # Lin et al. 2023, sec. 3.4
    return (guidance_rescale * rescaled + (1 - guidance_rescale) * guided).astype(guided.dtype, copy=False)  # mixed by phi


def guided_output(model_fn, x, t, cond, null_cond, guidance_scale, guidance_rescale=0.0):
    """The classifier-free guided model output at (x_t, t).

    Guidance acts on whatever the model predicts (epsilon, v or x_0): all three are affine in
    the score at a fixed x_t, so the extrapolation is the same guided score in each. Rescale is
    not affine (it divides by a std), so its effect depends on the prediction type, as in
    diffusers.

    Parameters
    ----------
    model_fn : callable(x (B, ...), t int array (B,), cond) -> output (B, ...)
    x : ndarray, shape (B, ...), x_t
    t : int, the timestep
    cond, null_cond : ndarray, shape (B, ...), the condition and the null condition
    guidance_scale : float >= 0, s (= 1 + w of Ho & Salimans 2022, eq. 6)
    guidance_rescale : float in [0, 1], phi (Lin et al. 2023, sec. 3.4)

    Returns
    -------
    ndarray, shape (B, ...): model_fn's output itself when s = 1 (one forward of B)
    """
    B = x.shape[0]
    if guidance_scale == 1.0:
        return model_fn(x, np.full(B, t), cond)
    x2 = np.concatenate([x, x])                                # (B, ...) -> (2B, ...)
    cond2 = np.concatenate([np.asarray(cond), np.asarray(null_cond)])
    out = model_fn(x2, np.full(2 * B, t), cond2)               # one batch of 2B
    out_cond, out_uncond = out[:B], out[B:]
    guided = out_uncond + guidance_scale * (out_cond - out_uncond)  # Ho & Salimans 2022, eq. 6, s = 1 + w
    if guidance_rescale > 0:
        guided = rescale_noise_cfg(guided, out_cond, guidance_rescale)
    return guided.astype(out.dtype, copy=False)


# ---- training: condition dropout ---------------------------------------------------------

def real_classes(config):
    """How many real classes a model's config has: num_class_embeds without the null class."""
    classes = config.get("num_class_embeds")
    return classes - 1 if classes and config.get("class_embed_null_index") is not None else classes


def drop_condition(labels, prob, null_label, key):
    """Condition dropout (Ho & Salimans 2022, Algorithm 1, line 3: "c <- null with probability
    p_uncond"): each label (B,) is replaced by null_label with probability prob, drawn from
    np.random.default_rng(key), so a step's mask depends on (seed, step) alone: a resumed run
    and every process of a parallel run draw the same one. labels come back untouched (the
    same object) when prob is 0 or labels is None."""
    if labels is None or prob == 0:
        return labels
    drop = np.random.default_rng(key).random(len(labels)) < prob  # (B,) bool
    return np.where(drop, null_label, labels).astype(np.asarray(labels).dtype, copy=False)
