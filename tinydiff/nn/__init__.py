"""Layers with hand-written backward passes, named as in PyTorch.

Every module: forward(x, ...) computes (and, in training mode, caches what backward needs);
backward(grad_out) returns the gradient w.r.t. each forward input and adds into each
parameter's .grad. See tinydiff.nn.module for the contract.
"""

from tinydiff.nn.activation import GELU, Dropout, Identity, LeakyReLU, QuickGELU, ReLU, SiLU, Tanh
from tinydiff.nn.attention import MultiHeadAttention, ScaledDotProductAttention, attention_probabilities
from tinydiff.nn.batch_norm import BatchNorm2d
from tinydiff.nn.contrastive import clip_logits, clip_loss, clip_loss_backward
from tinydiff.nn.conv import Conv2d, Downsample2x, Upsample2x
from tinydiff.nn.conv_transpose import ConvTranspose2d
from tinydiff.nn.embedding import Embedding, SinusoidalTimestepEmbedding
from tinydiff.nn.linear import Linear
from tinydiff.nn.loss import cross_entropy, mse_loss
from tinydiff.nn.module import Module, ModuleList, Parameter, Sequential
from tinydiff.nn.norm import GroupNorm, LayerNorm
from tinydiff.nn.pool import GlobalAvgPool2d

__all__ = [
    "Parameter", "Module", "ModuleList", "Sequential",
    "Linear", "Conv2d", "Downsample2x", "Upsample2x",
    "GroupNorm", "LayerNorm", "GlobalAvgPool2d", "SiLU", "GELU", "QuickGELU", "Dropout", "Identity",
    "ConvTranspose2d", "BatchNorm2d", "ReLU", "LeakyReLU", "Tanh",
    "Embedding", "SinusoidalTimestepEmbedding",
    "ScaledDotProductAttention", "MultiHeadAttention", "attention_probabilities",
    "mse_loss", "cross_entropy",
    "clip_loss", "clip_loss_backward", "clip_logits",
]
