"""Optimisation: AdamW, an EMA of the weights, gradient clipping and LR schedules.

All of them work on any parameters with `.data` and `.grad` arrays (tinydiff.nn.Parameter),
update in place, and save their state as flat dicts of numbers and numpy arrays (JSON +
safetensors friendly, no pickle).
"""

from tinydiff.optim.adamw import AdamW
from tinydiff.optim.clip import clip_grad_norm_, global_grad_norm
from tinydiff.optim.ema import EMA
from tinydiff.optim.lr_schedule import constant_with_warmup, cosine_with_warmup

__all__ = ["AdamW", "EMA", "clip_grad_norm_", "constant_with_warmup", "cosine_with_warmup",
           "global_grad_norm"]
