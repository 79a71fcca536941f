"""Learning-rate schedules as pure functions of the step: warm-up, then constant or cosine.

Both follow diffusers' get_constant_schedule_with_warmup and get_cosine_schedule_with_warmup
(the tests compare them where diffusers is installed), with a floor min_lr added to cosine:

    warm-up (step < W):   lr = base_lr * step / W            (0 at step 0)
    constant afterwards:  lr = base_lr
    cosine afterwards:    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2,
                          p = (step - W) / (total_steps - W), held at 1 after total_steps
                          (diffusers' cosine would rise again past total_steps)
                          (Loshchilov & Hutter 2017, SGDR, eq. 5, one cycle, no restarts)

`step` may be an int or an integer array (e.g. np.arange(total) to plot a schedule).
Use: `optimizer.lr = cosine_with_warmup(step, 1e-3, 500, 20000)` before each step.
"""

import numpy as np

from tinydiff.optim.checks import check_number


def _check_steps(step, warmup_steps, total_steps=None):
    steps = np.asarray(step)
    if not np.issubdtype(steps.dtype, np.integer) or (steps.size and steps.min() < 0):
        raise ValueError(f"step: expected integer(s) >= 0, got {step!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) \
            or warmup_steps < 0:
        raise ValueError(f"warmup_steps: expected an integer >= 0, got {warmup_steps!r}")
    if total_steps is not None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) \
                or total_steps <= warmup_steps:
            raise ValueError(f"total_steps: expected an integer > warmup_steps "
                             f"({warmup_steps}), got {total_steps!r}")
    return steps.astype(np.float64)


def _result(lr, step):
    return float(lr) if np.ndim(step) == 0 else lr


def _warmup_factor(steps, warmup_steps):
    if warmup_steps == 0:
        return np.ones_like(steps)
    return np.minimum(steps / warmup_steps, 1.0)


def constant_with_warmup(step, base_lr, warmup_steps):
    """Linear warm-up from 0 to base_lr over warmup_steps, then base_lr."""
    base_lr = check_number(base_lr, "base_lr", low=0.0)
    steps = _check_steps(step, warmup_steps)
    return _result(base_lr * _warmup_factor(steps, warmup_steps), step)


def cosine_with_warmup(step, base_lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warm-up to base_lr, then half a cosine down to min_lr at total_steps."""
    base_lr = check_number(base_lr, "base_lr", low=0.0)
    min_lr = check_number(min_lr, "min_lr", 0.0, base_lr)
    steps = _check_steps(step, warmup_steps, total_steps)
    progress = np.clip((steps - warmup_steps) / (total_steps - warmup_steps), 0.0, 1.0)
    cosine = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + np.cos(np.pi * progress))
    lr = np.where(steps < warmup_steps, base_lr * _warmup_factor(steps, warmup_steps), cosine)
    return _result(lr, step)
