"""CLIP's contrastive loss against torch autograd in float64: the loss written as OpenCLIP and
transformers' CLIPModel write it (F.normalize, logit_scale.exp().clamp(max=100), cross_entropy
over rows and columns), the same inputs, every gradient. Skipped where torch is not installed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tinydiff.nn import clip_logits, clip_loss, clip_loss_backward  # noqa: E402


def torch_clip_loss(x, y, s):
    u, v = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits_per_image = s.exp().clamp(max=100) * u @ v.T
    labels = torch.arange(len(x))
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2, logits_per_image


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 6), width=st.integers(1, 8),
       logit_scale=st.sampled_from([0.0, np.log(1 / 0.07), 4.0, np.log(100) + 0.3]),
       grad_loss=st.floats(-2.0, 2.0))
def test_clip_loss_matches_torch(seed, batch, width, logit_scale, grad_loss):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, batch, width))
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    ts = torch.tensor(logit_scale, dtype=torch.float64, requires_grad=True)
    t_loss, t_logits = torch_clip_loss(tx, ty, ts)
    loss, cache = clip_loss(x, y, logit_scale)
    assert loss == pytest.approx(t_loss.item(), rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(clip_logits(x, y, logit_scale), t_logits.detach().numpy(), rtol=1e-12, atol=1e-13)
    (t_loss * grad_loss).backward()
    dx, dy, ds = clip_loss_backward(cache, grad_loss)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dy, ty.grad.numpy(), rtol=1e-10, atol=1e-13)
    assert ds == pytest.approx(ts.grad.item(), rel=1e-10, abs=1e-13)
