"""Every layer's hand-written backward against float64 central differences, inputs and
parameters both, on shapes drawn by hypothesis, on both kernel backends (fast and reference)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.nn import (
    GELU, Conv2d, Downsample2x, Embedding, GlobalAvgPool2d, GroupNorm, Identity, LayerNorm, Linear, Module,
    MultiHeadAttention, ScaledDotProductAttention, Sequential, SiLU, SinusoidalTimestepEmbedding,
    Upsample2x,
)
from tinydiff.nn.activation import sigmoid
from tinydiff.nn.gradcheck import gradcheck

pytestmark = pytest.mark.usefixtures("each_backend")

seeds = st.integers(0, 2**32 - 1)


def randn(rng, *shape):
    return rng.standard_normal(shape)


@given(seed=seeds, batch=st.integers(1, 3), d_in=st.integers(1, 6), d_out=st.integers(1, 5),
       bias=st.booleans(), lead=st.integers(0, 2))
def test_linear(seed, batch, d_in, d_out, bias, lead):
    rng = np.random.default_rng(seed)
    layer = Linear(d_in, d_out, bias=bias, rng=rng)
    x = randn(rng, batch, *([2] * lead), d_in)  # any number of leading dimensions
    gradcheck(layer, (x,), rng)


@given(seed=seeds, batch=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
       kh=st.integers(1, 4), kw=st.integers(1, 4), stride=st.integers(1, 3),
       padding=st.integers(0, 2), h=st.integers(1, 6), w=st.integers(1, 6), bias=st.booleans())
def test_conv2d(seed, batch, c_in, c_out, kh, kw, stride, padding, h, w, bias):
    h, w = max(h, kh - 2 * padding), max(w, kw - 2 * padding)  # kernel fits the padded input
    rng = np.random.default_rng(seed)
    layer = Conv2d(c_in, c_out, (kh, kw), stride=stride, padding=padding, bias=bias, rng=rng)
    gradcheck(layer, (randn(rng, batch, c_in, h, w),), rng)


@given(seed=seeds, batch=st.integers(1, 2), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2))
def test_group_norm(seed, batch, groups, per_group, spatial):
    rng = np.random.default_rng(seed)
    layer = GroupNorm(groups, groups * per_group)
    if groups * per_group * int(np.prod(spatial)) == 1:
        spatial = [2]  # a group of one element has zero variance: its gradient is all round-off
    layer.weight.data[:] = rng.standard_normal(layer.weight.shape)  # non-trivial affine
    layer.bias.data[:] = rng.standard_normal(layer.bias.shape)
    gradcheck(layer, (randn(rng, batch, groups * per_group, *spatial),), rng)


@given(seed=seeds, lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       normalized=st.lists(st.integers(2, 4), min_size=1, max_size=2))
def test_layer_norm(seed, lead, normalized):
    rng = np.random.default_rng(seed)
    layer = LayerNorm(tuple(normalized))
    layer.weight.data[...] = rng.standard_normal(layer.weight.shape)
    layer.bias.data[...] = rng.standard_normal(layer.bias.shape)
    gradcheck(layer, (randn(rng, *lead, *normalized),), rng)


@pytest.mark.parametrize("make", [SiLU, GELU, lambda: GELU("tanh"), Identity], ids=["silu", "gelu", "gelu_tanh", "identity"])
@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_elementwise(make, seed, shape):
    rng = np.random.default_rng(seed)
    gradcheck(make(), (3 * randn(rng, *shape),), rng)


@given(seed=seeds, batch=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 5), w=st.integers(1, 5))
def test_downsample(seed, batch, c, h, w):
    rng = np.random.default_rng(seed)
    gradcheck(Downsample2x(c, rng=rng), (randn(rng, batch, c, h, w),), rng)


@given(seed=seeds, batch=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       use_conv=st.booleans())
def test_upsample(seed, batch, c, h, w, use_conv):
    rng = np.random.default_rng(seed)
    layer = Upsample2x(c, use_conv=use_conv, rng=rng)
    gradcheck(layer, (randn(rng, batch, c, h, w),), rng)


@given(seed=seeds, num=st.integers(1, 6), dim=st.integers(1, 4), n=st.integers(1, 8))
def test_embedding(seed, num, dim, n):
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, num, size=n)  # repeats likely: the scatter must accumulate
    gradcheck(Embedding(num, dim, rng=rng), (indices,), rng)


@given(seed=seeds, dim=st.integers(4, 9), flip=st.booleans(), shift=st.sampled_from([0.0, 1.0]))
def test_sinusoidal_timestep_embedding_gradient_wrt_t(seed, dim, flip, shift):
    rng = np.random.default_rng(seed)
    layer = SinusoidalTimestepEmbedding(dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    t = rng.uniform(0, 20, size=3)  # fractional timesteps: the embedding is smooth in t
    gradcheck(layer, (t,), rng, eps=1e-7)


@given(seed=seeds, batch=st.integers(1, 2), heads=st.integers(1, 2), n=st.integers(1, 4),
       m=st.integers(1, 4), d=st.integers(1, 4), causal=st.booleans())
def test_scaled_dot_product_attention(seed, batch, heads, n, m, d, causal):
    rng = np.random.default_rng(seed)
    q, k, v = randn(rng, batch, heads, n, d), randn(rng, batch, heads, m, d), randn(rng, batch, heads, m, d)
    gradcheck(ScaledDotProductAttention(causal=causal), (q, k, v), rng)


@given(seed=seeds, batch=st.integers(1, 2), heads=st.integers(1, 2), head_dim=st.integers(1, 3),
       n=st.integers(1, 4), m=st.integers(1, 4), context_dim=st.one_of(st.none(), st.integers(1, 4)))
def test_multi_head_attention(seed, batch, heads, head_dim, n, m, context_dim):
    rng = np.random.default_rng(seed)
    dim = heads * head_dim
    layer = MultiHeadAttention(dim, heads, context_dim=context_dim, rng=rng)
    inputs = (randn(rng, batch, n, dim),)
    if context_dim is not None:
        inputs += (randn(rng, batch, m, context_dim),)
    gradcheck(layer, inputs, rng)


class TinyResBlock(Module):
    """GroupNorm -> SiLU -> Conv2d, plus a projected time embedding, plus the skip:
    y = x + conv(silu(norm(x))) + proj(temb)[:, :, None, None]."""

    def __init__(self, channels, groups, temb_dim, rng):
        super().__init__()
        self.norm = GroupNorm(groups, channels)
        self.act = SiLU()
        self.conv = Conv2d(channels, channels, 3, padding=1, rng=rng)
        self.time_proj = Linear(temb_dim, channels, rng=rng)

    def forward(self, x, temb):
        h = self.conv(self.act(self.norm(x)))
        return x + h + self.time_proj(temb)[:, :, None, None]  # (B, C) -> (B, C, 1, 1)

    def backward(self, grad_out):
        dtemb = self.time_proj.backward(grad_out.sum(axis=(2, 3)))  # broadcast add: sum over H, W
        dx = self.norm.backward(self.act.backward(self.conv.backward(grad_out)))
        return dx + grad_out, dtemb


@given(seed=seeds, batch=st.integers(1, 2), groups=st.integers(1, 2), per_group=st.integers(1, 2),
       h=st.integers(2, 4), w=st.integers(2, 4), temb_dim=st.integers(1, 4))
def test_composite_residual_block(seed, batch, groups, per_group, h, w, temb_dim):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    block = TinyResBlock(c, groups, temb_dim, rng)
    block.norm.weight.data[:] = rng.standard_normal(c)
    gradcheck(block, (randn(rng, batch, c, h, w), randn(rng, batch, temb_dim)), rng)


def test_sequential_backward_walks_in_reverse():
    rng = np.random.default_rng(0)
    model = Sequential([Linear(3, 4, rng=rng), SiLU(), Linear(4, 2, rng=rng), GELU()])
    gradcheck(model, (randn(rng, 5, 3),), rng)


def test_gradcheck_catches_a_wrong_backward():
    """The checker itself must be able to fail: a SiLU whose backward forgets a term."""

    class BrokenSiLU(SiLU):
        def backward(self, grad_out):
            (x,) = self.saved()
            return grad_out * sigmoid(x)  # missing x s (1 - s)

    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError, match="input 0"):
        gradcheck(BrokenSiLU(), (randn(rng, 4, 3),), rng)

    class BrokenLinear(Linear):
        def backward(self, grad_out):
            dx = super().backward(grad_out)
            self.weight.grad *= 1.001  # slightly wrong parameter gradient
            return dx

    with pytest.raises(AssertionError, match="weight"):
        gradcheck(BrokenLinear(3, 2, rng=rng), (randn(rng, 4, 3),), rng)


@given(seed=seeds, batch=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4))
def test_global_avg_pool(seed, batch, c, h, w):
    rng = np.random.default_rng(seed)
    gradcheck(GlobalAvgPool2d(), (randn(rng, batch, c, h, w),), rng)


@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_quick_gelu(seed, shape):
    from tinydiff.nn import QuickGELU

    rng = np.random.default_rng(seed)
    x = 3 * randn(rng, *shape)
    np.testing.assert_allclose(QuickGELU()(x), x / (1 + np.exp(-1.702 * x)), rtol=1e-13)
    gradcheck(QuickGELU(), (x,), rng)
