"""Frozen parameters (requires_grad=False): no gradient computed, stored or allocated, no input
kept for it, and optimisers, EMA and clipping leave them out."""

import numpy as np
import pytest

from tinydiff.nn import Conv2d, Embedding, GroupNorm, LayerNorm, Linear, Parameter, Sequential
from tinydiff.optim import EMA, AdamW, clip_grad_norm_

pytestmark = pytest.mark.usefixtures("each_backend")


def test_parameter_flag_releases_and_reallocates_grad():
    p = Parameter(np.ones(3, dtype=np.float32))
    assert p.requires_grad and p.grad.shape == (3,)
    p.requires_grad = False
    assert p.grad is None and "requires_grad=False" in repr(p)
    p.requires_grad = True
    np.testing.assert_array_equal(p.grad, 0)
    with pytest.raises(TypeError, match="requires_grad"):
        p.requires_grad = 1


@pytest.mark.parametrize("make, x", [
    (lambda rng: Linear(4, 3, rng=rng), (2, 5, 4)),
    (lambda rng: Conv2d(2, 3, 3, padding=1, rng=rng), (2, 2, 5, 5)),
    (lambda rng: Conv2d(2, 3, 1, rng=rng), (1, 2, 3, 3)),
    (lambda rng: Conv2d(2, 3, 3, stride=2, rng=rng), (1, 2, 5, 5)),
    (lambda rng: Conv2d(8, 8, 3, padding=1, rng=rng), (2, 8, 6, 6)),  # Winograd on the fast backend
])
def test_frozen_weight_same_dx_no_dw_no_input_kept(make, x):
    rng = np.random.default_rng(0)
    layer = make(rng).to(np.float64)
    x = rng.standard_normal(x)
    y = layer(x)
    dy = rng.standard_normal(y.shape)
    dx_full = layer.backward(dy)
    db_full = layer.bias.grad.copy()
    layer.weight.requires_grad = False
    layer.zero_grad()
    y_frozen = layer(x)
    assert layer._cache[0][0] is None  # x is not kept: only dW would need it
    dx = layer.backward(dy)
    np.testing.assert_array_equal(y_frozen, y)
    np.testing.assert_allclose(dx, dx_full, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, db_full, atol=1e-12)  # bias still trains
    assert layer.weight.grad is None


def test_frozen_norms_embedding_and_model():
    rng = np.random.default_rng(1)
    model = Sequential([Linear(4, 6, rng=rng), LayerNorm(6)])
    assert model.requires_grad_(False) is model
    assert all(p.grad is None for p in model.parameters()) and model.trainable_parameters() == []
    x = rng.standard_normal((3, 4)).astype(np.float32)
    model(x)
    model.backward(np.ones((3, 6), dtype=np.float32))
    model.zero_grad()  # no grads to clear: must not fail
    gn, emb = GroupNorm(2, 4), Embedding(5, 3, rng=rng)
    gn.requires_grad_(False)
    emb.requires_grad_(False)
    gn(np.ones((1, 4, 2, 2), np.float32))
    gn.backward(np.ones((1, 4, 2, 2), np.float32))
    emb(np.array([1, 1, 2]))
    assert emb.backward(np.ones((3, 3), np.float32)) is None
    assert gn.weight.grad is None and emb.weight.grad is None
    model.to(np.float64)
    model[1].requires_grad_(True)
    assert [p.shape for p in model.trainable_parameters()] == [(6,), (6,)]


def test_optimisers_skip_frozen_parameters():
    rng = np.random.default_rng(2)
    frozen, trained = Linear(3, 3, rng=rng), Linear(3, 2, rng=rng)
    frozen.requires_grad_(False)
    params = frozen.parameters() + trained.parameters()
    opt, ema = AdamW(params, lr=0.1), EMA(params, decay=0.5)
    assert len(opt.params) == 2 and len(opt.exp_avg) == 2 and len(ema.shadow) == 2  # no state kept
    before = frozen.weight.data.copy()
    for p in trained.parameters():
        p.grad[...] = 1.0
    assert clip_grad_norm_(params, 1.0) == pytest.approx(np.sqrt(8))
    trained_before = trained.weight.data.copy()
    opt.step()
    ema.update()
    assert not np.array_equal(trained.weight.data, trained_before)
    np.testing.assert_array_equal(frozen.weight.data, before)
    with pytest.raises(ValueError, match="frozen"):
        AdamW(frozen.parameters())


def test_data_parallel_refuses_a_model_with_frozen_parameters():
    from tinydiff.models import UNet2DModel
    from tinydiff.runtime.parallel import DataParallel

    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                        norm_num_groups=4, rng=np.random.default_rng(0))
    model.conv_in.requires_grad_(False)
    with pytest.raises(TypeError, match="frozen parameters"):
        DataParallel(model, 2)  # its workers would rebuild the model without the freeze
