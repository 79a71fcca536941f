import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.nn import cross_entropy, mse_loss


def central_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = f(x)
        x[i] = old - eps
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 4), width=st.integers(1, 5), weighted=st.booleans())
def test_mse_loss_value_and_gradient(seed, batch, width, weighted):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal((2, batch, width))
    weight = rng.uniform(0.1, 3.0, batch) if weighted else None
    loss, dpred = mse_loss(pred, target, weight)
    w = np.ones(batch) if weight is None else weight
    assert loss == pytest.approx(np.sum(w[:, None] * (pred - target) ** 2) / pred.size, rel=1e-12)
    numeric = central_difference(lambda p: mse_loss(p, target, weight)[0], pred.copy())
    np.testing.assert_allclose(dpred, numeric, rtol=1e-6, atol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 4), classes=st.integers(2, 6))
def test_cross_entropy_value_and_gradient(seed, batch, classes):
    rng = np.random.default_rng(seed)
    logits = 3 * rng.standard_normal((batch, classes))
    labels = rng.integers(0, classes, batch)
    loss, dlogits = cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(batch), labels])), rel=1e-10)
    numeric = central_difference(lambda z: cross_entropy(z, labels)[0], logits.copy())
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    loss, grad = cross_entropy(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    assert loss == pytest.approx(2e4) and np.all(np.isfinite(grad))


def test_mse_loss_reports_a_non_finite_loss_clearly():
    pred = np.array([[1.0, np.nan], [np.inf, 0.0]], dtype=np.float32)
    with pytest.raises(FloatingPointError, match="pred has 1 NaN and 1 inf of 4 values"):
        mse_loss(pred, np.zeros_like(pred))


def test_mse_loss_checks_its_arguments():
    with pytest.raises(ValueError, match="target must have pred's shape"):
        mse_loss(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"weight must have shape \(B,\)"):
        mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), weight=np.ones(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        mse_loss(np.zeros((2, 3), dtype=np.int32), np.zeros((2, 3)))


def test_nan_propagates_through_layers_and_the_loss_names_it():
    from tinydiff.nn import Conv2d, GroupNorm, SiLU, Sequential

    model = Sequential([Conv2d(2, 4, 3, padding=1), GroupNorm(2, 4), SiLU()])
    x = np.zeros((1, 2, 5, 5), dtype=np.float32)
    x[0, 0, 2, 2] = np.nan
    y = model(x)  # training mode: no error, the NaN spreads as arithmetic says
    assert np.isnan(y).any()
    with pytest.raises(FloatingPointError, match="not finite.*pred has .* NaN"):
        mse_loss(y, np.zeros_like(y))
