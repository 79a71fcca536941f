"""Embeddings: a learned lookup table, and the fixed sinusoidal embedding of a timestep.

Sinusoidal embedding (Vaswani et al. 2017, sec. 3.5; Ho et al. 2020, appendix B): with
half = dim // 2 frequencies f_i = exp(-ln(max_period) * i / (half - downscale_freq_shift)),
i = 0..half-1, emb(t) = [sin(t f_0), ..., sin(t f_{half-1}), cos(t f_0), ..., cos(t f_{half-1})]
(cos first when flip_sin_to_cos), zero-padded to dim when dim is odd. These are the arguments
of diffusers' get_timestep_embedding; its UNet2DModel uses flip_sin_to_cos=True and
downscale_freq_shift=0, Ho et al.'s code corresponds to downscale_freq_shift=1.
"""

import math

import numpy as np

from tinydiff.nn.checks import check_float_array, check_positive_int, describe
from tinydiff.nn.init import generator
from tinydiff.nn.module import Module, Parameter


class Embedding(Module):
    """A table of `num_embeddings` learned vectors of size `embedding_dim`, drawn from N(0, 1)
    as in PyTorch. forward(indices) gathers rows; backward returns None for the integer
    indices and scatter-adds into weight.grad.

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends)."""

    def __init__(self, num_embeddings, embedding_dim, rng=None):
        super().__init__()
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        rng = generator(rng)
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)).astype(np.float32))

    def forward(self, indices):
        """indices (...) integers in [0, num_embeddings) -> (..., embedding_dim)."""
        indices = np.asarray(indices)
        if not np.issubdtype(indices.dtype, np.integer):
            raise TypeError(f"Embedding: indices must be integers, got {describe(indices)}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_embeddings):
            raise ValueError(
                f"Embedding: indices must lie in [0, {self.num_embeddings}), got values in "
                f"[{indices.min()}, {indices.max()}]"
            )
        self.save_for_backward(indices)
        return self.weight.data[indices]

    def backward(self, grad_out):
        """None (indices have no gradient); scatter-adds into weight.grad unless it is frozen."""
        (indices,) = self.saved()
        if self.weight.requires_grad:
            # np.add.at accumulates repeated indices (a plain fancy-index += would not)
            np.add.at(self.weight.grad, indices.reshape(-1), grad_out.reshape(-1, self.embedding_dim))
        return None

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


def timestep_frequencies(dim, downscale_freq_shift=1.0, max_period=10000.0):
    """The half = dim // 2 frequencies f_i, float64 (half,)."""
    half = dim // 2
    denominator = half - downscale_freq_shift
    if denominator <= 0:
        raise ValueError(
            f"SinusoidalTimestepEmbedding: dim // 2 - downscale_freq_shift must be > 0, got "
            f"dim={dim}, downscale_freq_shift={downscale_freq_shift}"
        )
    return np.exp(-math.log(max_period) * np.arange(half) / denominator)


class SinusoidalTimestepEmbedding(Module):
    """Fixed sinusoidal features of a (possibly fractional) timestep; no parameters.

    forward(t (B,)) -> (B, dim) in float32 (or `dtype`); backward returns dL/dt (B,).

    Reference: this class's NumPy code (no fast kernel: it runs as is on both kernel backends).
    """

    def __init__(self, dim, flip_sin_to_cos=False, downscale_freq_shift=1.0, max_period=10000.0, dtype=np.float32):
        super().__init__()
        self.dim = check_positive_int(dim, "dim", minimum=2)
        self.flip_sin_to_cos = bool(flip_sin_to_cos)
        self.downscale_freq_shift = float(downscale_freq_shift)
        self.max_period = float(max_period)
        self.dtype = np.dtype(dtype)
        self.frequencies = timestep_frequencies(self.dim, self.downscale_freq_shift, self.max_period)

    def forward(self, t):
        """t (B,) integers or floats -> (B, dim)."""
        t = np.asarray(t)
        if t.ndim != 1:
            raise ValueError(f"SinusoidalTimestepEmbedding: t must be 1-D (B,), got shape {t.shape}")
        if not (np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating)):
            raise TypeError(f"SinusoidalTimestepEmbedding: t must be numeric, got {describe(t)}")
        angles = t.astype(np.float64)[:, None] * self.frequencies[None, :]  # (B, half)
        sin, cos = np.sin(angles), np.cos(angles)
        parts = [cos, sin] if self.flip_sin_to_cos else [sin, cos]
        emb = np.concatenate(parts, axis=1)  # (B, 2 half)
        if self.dim % 2:
            emb = np.pad(emb, ((0, 0), (0, 1)))  # (B, dim - 1) -> (B, dim)
        self.save_for_backward(sin, cos)
        return emb.astype(self.dtype)

    def backward(self, grad_out):
        """dL/dt = sum_i f_i (g_sin_i cos(t f_i) - g_cos_i sin(t f_i))."""
        sin, cos = self.saved()
        half = sin.shape[1]
        g = grad_out[:, : 2 * half].astype(np.float64)
        g_first, g_second = g[:, :half], g[:, half:]
        g_sin, g_cos = (g_second, g_first) if self.flip_sin_to_cos else (g_first, g_second)
        dt = ((g_sin * cos - g_cos * sin) * self.frequencies).sum(axis=1)
        return dt.astype(grad_out.dtype)

    def cast_buffers(self, dtype):
        self.dtype = np.dtype(dtype)

    def extra_repr(self):
        return (
            f"{self.dim}, flip_sin_to_cos={self.flip_sin_to_cos}, "
            f"downscale_freq_shift={self.downscale_freq_shift}"
        )
