"""Losses, each returning (loss, gradient of the loss w.r.t. the prediction).

There is no autograd to ask for the gradient later, so a loss hands it back with its value;
the model's backward starts from it.
"""

import numpy as np

from tinydiff.nn.checks import check_float_array, describe


def non_finite_report(name, x):
    n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    return f"{name} has {n_nan} NaN and {n_inf} inf of {x.size} values"


def mse_loss(pred, target, weight=None):
    """Mean squared error, optionally with a weight per sample (e.g. min-SNR weighting).

    loss = mean over all elements of w_b (pred - target)^2, w_b = 1 without weight.

    Parameters
    ----------
    pred, target : ndarray (B, ...)
    weight : ndarray (B,), optional

    Returns
    -------
    loss : float
    dpred : ndarray (B, ...), same dtype as pred

    Raises FloatingPointError when the loss is not finite, saying where the NaN/inf came from.
    """
    check_float_array(pred, "pred", min_ndim=1)
    check_float_array(target, "target", dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"mse_loss: target must have pred's shape {pred.shape}, got {target.shape}")
    diff = pred - target
    if weight is None:
        w = np.ones((), dtype=pred.dtype)
    else:
        weight = np.asarray(weight)
        if weight.shape != (pred.shape[0],):
            raise ValueError(f"mse_loss: weight must have shape (B,) = ({pred.shape[0]},), got {describe(weight)}")
        w = weight.astype(pred.dtype).reshape((-1,) + (1,) * (pred.ndim - 1))  # (B,) -> (B, 1, ...)
    loss = float((w * diff * diff).mean())
    if not np.isfinite(loss):
        raise FloatingPointError(
            f"mse_loss: the loss is not finite ({loss}); "
            f"{non_finite_report('pred', pred)}, {non_finite_report('target', target)}"
            + ("" if weight is None else f", {non_finite_report('weight', weight)}")
        )
    dpred = (2.0 / diff.size) * w * diff
    return loss, dpred.astype(pred.dtype, copy=False)


def log_softmax(logits):
    """Row-wise log-softmax, stable: subtract each row's max before exp."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(logits, labels):
    """Mean negative log-likelihood of integer labels under softmax(logits).

    Parameters
    ----------
    logits : ndarray (B, K)
    labels : integer ndarray (B,), values in [0, K)

    Returns
    -------
    loss : float
    dlogits : ndarray (B, K) = (softmax(logits) - onehot(labels)) / B
    """
    check_float_array(logits, "logits", ndim=2)
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"cross_entropy: labels must be integers, got {describe(labels)}")
    B, K = logits.shape
    if labels.shape != (B,):
        raise ValueError(f"cross_entropy: labels must have shape (B,) = ({B},), got {labels.shape}")
    if B and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"cross_entropy: labels must lie in [0, {K}), got values in [{labels.min()}, {labels.max()}]")
    logp = log_softmax(logits)
    rows = np.arange(B)
    loss = float(-logp[rows, labels].mean())
    if not np.isfinite(loss):
        raise FloatingPointError(f"cross_entropy: the loss is not finite ({loss}); {non_finite_report('logits', logits)}")
    dlogits = np.exp(logp)
    dlogits[rows, labels] -= 1.0
    dlogits /= B
    return loss, dlogits
