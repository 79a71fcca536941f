"""CLIP's symmetric contrastive loss (Radford et al. 2021, "Learning Transferable Visual Models
From Natural Language Supervision", sec. 2.3 and its Figure 3 pseudocode), with its backward.

Notation (B pairs, P = projection_dim):
    x, y      image and text embeddings (B, P), row i of each from the same (image, caption) pair
    u, v      x and y scaled to unit length per row: u_i = x_i / |x_i|
    s         the learned log-temperature, logit_scale; CLIP starts it at log(1 / 0.07)
    t         exp(s) clamped at 100 (sec. 2.5): the inverse temperature
    L         logits_per_image = t u v^T (B, B); L[i, j] is image i against caption j, and
              logits_per_text is L^T
    loss      (CE(L, diag) + CE(L^T, diag)) / 2: each image must pick its own caption among the
              B captions of the batch, and each caption its own image

Backward, from the upstream gradient g of the loss:
    G  = g (softmax(L) - I) / 2B + g (softmax(L^T) - I)^T / 2B      (B, B), dloss/dL
    dt = sum(G * u v^T);  ds = dt exp(s) where exp(s) <= 100, else 0 (the clamp is flat there)
    du = t G v;  dv = t G^T u
    dx = (du - u sum(du * u)) / |x|    per row: the unit-length map passes only the part of du
                                        orthogonal to u (its Jacobian is (I - u u^T) / |x|)
"""

import numpy as np

from tinydiff.nn.checks import check_float_array, describe
from tinydiff.nn.loss import cross_entropy

MAX_LOGIT_SCALE = 100.0  # Radford et al. 2021, sec. 2.5: t is clipped "to prevent scaling the logits by more than 100"
INIT_LOGIT_SCALE = float(np.log(1 / 0.07))  # sec. 2.5: initialised "to the equivalent of 0.07"; 2.6593


def l2_normalize(x, name="x"):
    """Rows of x scaled to unit length: x (B, P) -> (u (B, P), norms (B, 1)).

    A zero row has no direction: ValueError naming the row."""
    norms = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))  # (B, P) -> (B, 1)
    if np.any(norms == 0):
        raise ValueError(f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is all zeros; "
                         f"a zero embedding has no direction to normalise")
    return x / norms, norms


def l2_normalize_backward(du, u, norms):
    """du (B, P) -> dx (B, P) for u = x / |x|: (du - u <du, u>) / |x| per row."""
    return (du - u * np.sum(du * u, axis=-1, keepdims=True)) / norms


def check_embeddings(image_embeds, text_embeds):
    check_float_array(image_embeds, "image_embeds", ndim=2)
    check_float_array(text_embeds, "text_embeds", ndim=2, dtype=image_embeds.dtype)
    if text_embeds.shape != image_embeds.shape:
        raise ValueError(f"text_embeds: expected image_embeds' shape (B, P) = {image_embeds.shape} "
                         f"(one caption per image), got {text_embeds.shape}")
    if image_embeds.shape[0] == 0:
        raise ValueError("image_embeds: expected at least one pair, got an empty batch")


def inverse_temperature(logit_scale):
    """t = min(exp(s), 100) and dt/ds: exp(s) below the clamp, 0 where it holds t at 100."""
    s = np.asarray(logit_scale)
    if s.size != 1 or s.dtype.kind != "f":
        raise TypeError(f"logit_scale: expected one float (a 0-d array or a Python float), got {describe(s)}")
    s = float(s.reshape(()))
    if not np.isfinite(s):
        raise ValueError(f"logit_scale: expected a finite number, got {s}")
    scale = float(np.exp(s))
    if scale > MAX_LOGIT_SCALE:  # sec. 2.5: clipped at 100, where t no longer depends on s
        return MAX_LOGIT_SCALE, 0.0
    return scale, scale


def clip_logits(image_embeds, text_embeds, logit_scale):
    """logits_per_image = t u v^T (B_img, B_txt), no cache: the similarity matrix for display
    and retrieval (its transpose is logits_per_text, captions x images). The two sets may
    differ in size here."""
    check_float_array(image_embeds, "image_embeds", ndim=2)
    check_float_array(text_embeds, "text_embeds", ndim=2, dtype=image_embeds.dtype)
    if text_embeds.shape[1] != image_embeds.shape[1]:
        raise ValueError(f"text_embeds: expected width P = {image_embeds.shape[1]} like image_embeds, "
                         f"got shape {text_embeds.shape}")
    t, _ = inverse_temperature(logit_scale)
    u, _ = l2_normalize(image_embeds, "image_embeds")
    v, _ = l2_normalize(text_embeds, "text_embeds")
    return t * (u @ v.T)  # (B, P) x (P, B') -> (B, B')


def clip_loss(image_embeds, text_embeds, logit_scale):
    """CLIP's symmetric cross-entropy over the batch's B x B pairings (Radford et al. 2021,
    sec. 2.3, Figure 3).

    Parameters
    ----------
    image_embeds, text_embeds : ndarray (B, P), one dtype
        Unnormalised projected embeddings; row i of each comes from the same pair.
    logit_scale : float or 0-d ndarray
        log of the inverse temperature (CLIP's learned parameter, INIT_LOGIT_SCALE at start).

    Returns
    -------
    loss : float
    cache : for clip_loss_backward
    """
    check_embeddings(image_embeds, text_embeds)
    t, dt_ds = inverse_temperature(logit_scale)
    u, norm_x = l2_normalize(image_embeds, "image_embeds")  # Figure 3: l2_normalize(I_e)
    v, norm_y = l2_normalize(text_embeds, "text_embeds")
    cosines = u @ v.T  # (B, P) x (P, B) -> (B, B)
    logits = t * cosines  # logits_per_image; sec. 2.3: "scaled pairwise cosine similarities"
    labels = np.arange(len(logits))
    loss_i, dlogits_i = cross_entropy(logits, labels)  # each image against all captions
    loss_t, dlogits_t = cross_entropy(logits.T, labels)  # each caption against all images
    loss = (loss_i + loss_t) / 2  # sec. 2.3: the symmetric cross entropy
    dlogits = (dlogits_i + dlogits_t.T) / 2  # (B, B): dloss/dL, both terms on L's layout
    cache = (u, v, norm_x, norm_y, cosines, dlogits, t, dt_ds)
    return loss, cache


def clip_loss_backward(cache, grad_loss=1.0):
    """The gradients of grad_loss * loss: (d_image_embeds (B, P), d_text_embeds (B, P),
    d_logit_scale float, 0 where the clamp at 100 is active)."""
    u, v, norm_x, norm_y, cosines, dlogits, t, dt_ds = cache
    G = grad_loss * dlogits  # a new array: the cache is never modified
    d_logit_scale = float(np.sum(G * cosines)) * dt_ds  # dloss/dt times dt/ds
    du = t * (G @ v)  # (B, B) x (B, P) -> (B, P)
    dv = t * (G.T @ u)
    d_image = l2_normalize_backward(du, u, norm_x)
    d_text = l2_normalize_backward(dv, v, norm_y)
    return d_image.astype(u.dtype, copy=False), d_text.astype(v.dtype, copy=False), d_logit_scale
