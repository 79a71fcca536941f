"""Forward and backward of every layer against PyTorch autograd, in float64, with the same
weights copied in by name. Skipped where torch is not installed (it is never a dependency)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tinydiff.nn import (  # noqa: E402
    GELU, Conv2d, Embedding, GroupNorm, LayerNorm, Linear, MultiHeadAttention,
    ScaledDotProductAttention, SiLU, Upsample2x, cross_entropy, mse_loss,
)

seeds = st.integers(0, 2**32 - 1)


def check(module, torch_fn, inputs, rng, grad_inputs=None):
    """Run module and torch_fn(params, *inputs) on the same float64 data; compare outputs,
    input gradients and parameter gradients (by name)."""
    module.to(np.float64).train()
    grad_inputs = [True] * len(inputs) if grad_inputs is None else grad_inputs
    t_inputs = [torch.tensor(x, requires_grad=g) for x, g in zip(inputs, grad_inputs)]
    t_params = {n: torch.tensor(p.data, requires_grad=True) for n, p in module.named_parameters()}
    out = module(*inputs)
    t_out = torch_fn(t_params, *t_inputs)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    module.zero_grad()
    grads = module.backward(g)
    grads = grads if isinstance(grads, tuple) else (grads,)
    t_out.backward(torch.tensor(g))
    for k, (mine, t_in) in enumerate(zip(grads, t_inputs)):
        if t_in.requires_grad:
            np.testing.assert_allclose(mine, t_in.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=f"input {k}")
    for name, p in module.named_parameters():
        np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


@given(seed=seeds, batch=st.integers(1, 3), c_in=st.integers(1, 4), c_out=st.integers(1, 4),
       k=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2), size=st.integers(4, 9),
       bias=st.booleans())
def test_conv2d(seed, batch, c_in, c_out, k, stride, padding, size, bias):
    rng = np.random.default_rng(seed)
    layer = Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=bias, rng=rng)
    fn = lambda p, x: F.conv2d(x, p["weight"], p.get("bias"), stride=stride, padding=padding)
    check(layer, fn, (rng.standard_normal((batch, c_in, size, size + 1)),), rng)


@given(seed=seeds, lead=st.integers(1, 4), d_in=st.integers(1, 6), d_out=st.integers(1, 6))
def test_linear(seed, lead, d_in, d_out):
    rng = np.random.default_rng(seed)
    check(Linear(d_in, d_out, rng=rng), lambda p, x: F.linear(x, p["weight"], p["bias"]),
          (rng.standard_normal((lead, 2, d_in)),), rng)


@given(seed=seeds, groups=st.integers(1, 4), per_group=st.integers(1, 3), size=st.integers(1, 5))
def test_group_norm(seed, groups, per_group, size):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    layer = GroupNorm(groups, c, eps=1e-5)
    layer.weight.data[:] = rng.standard_normal(c)
    layer.bias.data[:] = rng.standard_normal(c)
    fn = lambda p, x: F.group_norm(x, groups, p["weight"], p["bias"], eps=1e-5)
    check(layer, fn, (rng.standard_normal((2, c, size, size + 1)),), rng)


def test_layer_norm():
    rng = np.random.default_rng(0)
    layer = LayerNorm(6)
    layer.weight.data[:] = rng.standard_normal(6)
    fn = lambda p, x: F.layer_norm(x, (6,), p["weight"], p["bias"], eps=1e-5)
    check(layer, fn, (rng.standard_normal((3, 4, 6)),), rng)


@pytest.mark.parametrize("module, fn", [
    (SiLU(), lambda p, x: F.silu(x)),
    (GELU(), lambda p, x: F.gelu(x)),
    (GELU("tanh"), lambda p, x: F.gelu(x, approximate="tanh")),
    (Upsample2x(), lambda p, x: F.interpolate(x, scale_factor=2, mode="nearest")),
])
def test_parameterless(module, fn):
    rng = np.random.default_rng(0)
    check(module, fn, (4 * rng.standard_normal((2, 3, 4, 5)),), rng)


def test_embedding():
    rng = np.random.default_rng(0)
    idx = np.array([[0, 3, 3], [1, 0, 4]])
    check(Embedding(5, 3, rng=rng), lambda p, i: F.embedding(i, p["weight"]), (idx,), rng, grad_inputs=[False])


@given(seed=seeds, batch=st.integers(1, 2), heads=st.integers(1, 3), n=st.integers(1, 9),
       m=st.integers(1, 9), d=st.integers(1, 8), scale=st.sampled_from([1.0, 30.0]))
def test_scaled_dot_product_attention(seed, batch, heads, n, m, d, scale):
    rng = np.random.default_rng(seed)
    q = scale * rng.standard_normal((batch, heads, n, d))  # scale 30: nearly one-hot softmax
    k, v = rng.standard_normal((2, batch, heads, m, d))
    check(ScaledDotProductAttention(), lambda p, q, k, v: F.scaled_dot_product_attention(q, k, v), (q, k, v), rng)


@given(seed=seeds, heads=st.integers(1, 3), head_dim=st.integers(1, 4), n=st.integers(1, 6),
       m=st.integers(1, 6), cross=st.booleans())
def test_multi_head_attention(seed, heads, head_dim, n, m, cross):
    rng = np.random.default_rng(seed)
    dim = heads * head_dim
    context_dim = 5 if cross else None
    layer = MultiHeadAttention(dim, heads, context_dim=context_dim, rng=rng)

    def fn(p, x, context=None):
        source = x if context is None else context
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, head_dim).transpose(1, 2)
        q = split(F.linear(x, p["to_q.weight"], p["to_q.bias"]))
        k = split(F.linear(source, p["to_k.weight"], p["to_k.bias"]))
        v = split(F.linear(source, p["to_v.weight"], p["to_v.bias"]))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape[0], x.shape[1], dim)
        return F.linear(out, p["to_out.0.weight"], p["to_out.0.bias"])

    inputs = (rng.standard_normal((2, n, dim)),)
    if cross:
        inputs += (rng.standard_normal((2, m, context_dim)),)
    check(layer, fn, inputs, rng)


def test_losses_match_torch():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((2, 4, 3))
    loss, grad = mse_loss(pred, target)
    t_pred = torch.tensor(pred, requires_grad=True)
    t_loss = F.mse_loss(t_pred, torch.tensor(target))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t_pred.grad.numpy(), rtol=1e-12)
    logits, labels = rng.standard_normal((5, 7)), rng.integers(0, 7, 5)
    loss, grad = cross_entropy(logits, labels)
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = F.cross_entropy(t_logits, torch.tensor(labels))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t_logits.grad.numpy(), rtol=1e-10)
