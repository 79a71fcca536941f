"""TrainConfig: how a diffusion model is trained, and the checks of every field.

Each field is checked for its type and range when a Trainer starts, so a typo such as
TrainConfig(lr="0.001") or a NaN fails at once with the field's name, not as a NumPy error
deep inside the first step.
"""

import math
from dataclasses import dataclass, fields

import numpy as np


def check_int_field(name, value, minimum):
    """`value` must be an integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r} (a {type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def check_float_field(name, value, low, high=math.inf, low_open=False, high_open=False):
    """`value` must be a finite real number in the interval low..high (ends open as told)."""
    if high == math.inf:
        wanted = f"a finite number {'>' if low_open else '>='} {low}"
    else:
        wanted = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected {wanted}, got {value!r} (a {type(value).__name__})")
    inside = math.isfinite(value) and (value > low if low_open else value >= low) and \
        (value < high if high_open else value <= high)
    if not inside:
        raise ValueError(f"{name}: expected {wanted}, got {value!r}")


def check_choice_field(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")


@dataclass
class TrainConfig:
    """How to train. Every field is saved in each checkpoint's trainer_state.json."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    min_snr_gamma: float = 0.0  # 0: plain loss; 5 is Hang et al. 2023's choice
    # classifier-free guidance's condition dropout (Ho & Salimans 2022, Algorithm 1): each
    # sample's class label becomes the model's null class (config class_embed_null_index) with
    # this probability, so one network learns p(x | c) and p(x). 0: never (no null class needed).
    # For a text model the data source replaces the caption by the empty prompt instead
    # (tinydiff.pipelines.text_conditioning).
    cond_drop_prob: float = 0.0
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0: only at the end
    sample_steps: int = 25
    num_samples: int = 16
    log_every: int = 10
    # How many processes share each batch is not a field: the caller hands the Trainer a
    # tinydiff.runtime.parallel.ParallelRunner (Trainer(..., parallel=...)). A run resumes with the same weights as an
    # uninterrupted one when it keeps the same count (another count changes the rounding of the
    # gradient sums, so it is allowed, not exact).

    def validate(self):
        """Raise TypeError/ValueError naming the first field of the wrong type or range."""
        for field in fields(self):
            if field.type in (int, "int"):
                minimum = 0 if field.name in ("warmup_steps", "sample_every", "seed") else 1
                check_int_field(field.name, getattr(self, field.name), minimum)
        check_float_field("lr", self.lr, 0, low_open=True)
        for name in ("min_lr", "weight_decay", "min_snr_gamma"):
            check_float_field(name, getattr(self, name), 0)
        check_float_field("grad_clip", self.grad_clip, 0, low_open=True)
        check_float_field("ema_decay", self.ema_decay, 0, 1, high_open=True)
        check_float_field("cond_drop_prob", self.cond_drop_prob, 0, 1, high_open=True)
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps: expected fewer than steps={self.steps}, got {self.warmup_steps}")
