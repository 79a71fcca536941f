"""LR schedules: endpoints, monotonicity, midpoint, scalar/array agreement, diffusers."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.optim import constant_with_warmup, cosine_with_warmup


@st.composite
def schedules(draw):
    warmup = draw(st.integers(0, 50))
    total = warmup + draw(st.integers(1, 200))
    base = draw(st.floats(1e-6, 1.0))
    floor = draw(st.floats(0.0, 1.0)) * base
    return warmup, total, base, floor


@given(schedules())
def test_cosine_endpoints_and_monotonicity(schedule):
    warmup, total, base, floor = schedule
    steps = np.arange(total + 20)
    lr = cosine_with_warmup(steps, base, warmup, total, min_lr=floor)
    assert lr.shape == steps.shape
    if warmup:
        assert lr[0] == 0.0
        assert np.all(np.diff(lr[:warmup + 1]) > 0)  # rising through the warm-up
    assert lr[warmup] == pytest.approx(base)  # peak right after warm-up
    assert np.all(np.diff(lr[warmup:]) <= 1e-15 * base)  # never rises again
    assert lr[total] == pytest.approx(floor, abs=1e-12 * base)
    np.testing.assert_allclose(lr[total:], lr[total])  # held at the floor
    assert lr.min() >= 0.0 and lr.max() <= base * (1 + 1e-12)


@given(schedules())
def test_cosine_midpoint_and_scalar_calls(schedule):
    warmup, total, base, floor = schedule
    if (total - warmup) % 2 == 0:
        mid = warmup + (total - warmup) // 2
        assert cosine_with_warmup(mid, base, warmup, total, floor) == pytest.approx(
            (base + floor) / 2)
    step = (warmup + total) // 2
    value = cosine_with_warmup(step, base, warmup, total, floor)
    assert isinstance(value, float)
    assert value == cosine_with_warmup(np.array([step]), base, warmup, total, floor)[0]


@given(warmup=st.integers(0, 40), base=st.floats(1e-6, 1.0))
def test_constant_with_warmup(warmup, base):
    lr = constant_with_warmup(np.arange(warmup + 10), base, warmup)
    np.testing.assert_allclose(lr[:warmup], base * np.arange(warmup) / warmup if warmup else [])
    np.testing.assert_allclose(lr[warmup:], base)
    assert constant_with_warmup(0, base, warmup) == (0.0 if warmup else base)


def test_matches_diffusers():
    pytest.importorskip("torch")
    optimization = pytest.importorskip("diffusers.optimization")
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-3)
    cosine = optimization.get_cosine_schedule_with_warmup(opt, 10, 100)
    constant = optimization.get_constant_schedule_with_warmup(opt, 10)
    steps = np.arange(101)
    np.testing.assert_allclose(cosine_with_warmup(steps, 2e-3, 10, 100),
                               [2e-3 * cosine.lr_lambdas[0](int(s)) for s in steps],
                               rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(constant_with_warmup(steps, 2e-3, 10),
                               [2e-3 * constant.lr_lambdas[0](int(s)) for s in steps],
                               rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        cosine_with_warmup(0, 1e-3, 10, 10)
    with pytest.raises(ValueError, match="step"):
        cosine_with_warmup(-1, 1e-3, 10, 100)
    with pytest.raises(ValueError, match="step"):
        cosine_with_warmup(1.5, 1e-3, 10, 100)
    with pytest.raises(ValueError, match="min_lr"):
        cosine_with_warmup(0, 1e-3, 10, 100, min_lr=2e-3)
    with pytest.raises(ValueError, match="base_lr"):
        constant_with_warmup(0, -1.0, 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        constant_with_warmup(0, 1.0, -2)
