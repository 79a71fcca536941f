"""Gradient-norm clipping (Pascanu et al. 2013), as torch.nn.utils.clip_grad_norm_ does it.

The global norm is ||g|| = sqrt(sum over all parameters of sum(g_i^2)). If it exceeds
max_norm, every gradient is multiplied by the same factor max_norm / (||g|| + 1e-6), so the
direction of the whole update is kept and only its length is capped.
"""

import math

import numpy as np

from tinydiff.optim.checks import check_grad, check_number, check_params

EPS = 1e-6  # PyTorch's guard against dividing by a zero norm
CHUNK = 1 << 16  # elements converted to float64 at a time


def global_grad_norm(params):
    """sqrt(sum_i ||p_i.grad||^2), accumulated in float64 whatever the gradients' dtype.

    float64, so that float32 gradients near 1e20 do not overflow the sum of squares. The
    conversion goes through one small reused buffer: a float64 copy of a whole gradient
    would be a fresh multi-megabyte allocation per parameter per step, whose page faults
    cost more than the arithmetic. NumPy's pairwise sum is used rather than np.dot, whose
    BLAS threads, woken once per chunk, cost milliseconds on a busy machine.
    """
    params = check_params(params, "global_grad_norm")
    buffer = np.empty(CHUNK, dtype=np.float64)
    total = 0.0
    for p in params:
        g = p.grad.reshape(-1)  # (...) -> (D,)
        for start in range(0, g.size, CHUNK):
            part = buffer[:min(CHUNK, g.size - start)]
            part[...] = g[start:start + CHUNK]
            np.square(part, out=part)
            total += float(part.sum())
    return math.sqrt(total)


def clip_grad_norm_(params, max_norm, error_if_nonfinite=True):
    """Scale all gradients in place so that their global L2 norm is at most max_norm.

    Parameters
    ----------
    params : iterable of Parameter
    max_norm : float
        > 0.
    error_if_nonfinite : bool
        If the norm is NaN or infinite: True (the default; PyTorch's is False) raises
        FloatingPointError naming the parameters with non-finite gradients, so training stops
        where the problem is visible; False returns the norm and leaves the gradients alone
        (the caller can skip the step).

    Returns
    -------
    float
        The global norm before clipping.
    """
    params = check_params(params, "clip_grad_norm_")
    max_norm = check_number(max_norm, "max_norm", low=0.0)
    if max_norm == 0.0:
        raise ValueError("max_norm: expected a number > 0, got 0.0")
    norm = global_grad_norm(params)
    if not math.isfinite(norm):
        if error_if_nonfinite:
            bad = [f"{i} (shape {p.data.shape}, {int(np.count_nonzero(~np.isfinite(p.grad)))} "
                   f"non-finite values)" for i, p in enumerate(params)
                   if not np.all(np.isfinite(p.grad))]
            detail = ", ".join(bad) if bad else "none, the sum of squares overflowed"
            raise FloatingPointError(
                f"clip_grad_norm_: the gradient norm is {norm}; parameters with NaN/inf "
                f"gradients: {detail}. A non-finite loss or too large a learning rate is the "
                f"usual cause.")
        return norm
    coef = max_norm / (norm + EPS)
    if coef < 1.0:
        for i, p in enumerate(params):
            check_grad(p, i, "clip_grad_norm_")[...] *= coef
    return norm
