"""EMA of weights: closed forms after k updates, warm-up, swapping in for sampling, state."""

from math import comb

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.nn import Parameter
from tinydiff.optim import EMA


def two_params(rng):
    return [Parameter(rng.standard_normal((4, 3))), Parameter(rng.standard_normal(5))]


@given(decay=st.floats(0.0, 1.0), k=st.integers(0, 60), seed=st.integers(0, 2**32))
def test_closed_form_for_a_step_change_without_warmup(decay, k, seed):
    # The shadow starts at theta_0; the weights jump to theta_1 and stay:
    # after k updates shadow = decay^k theta_0 + (1 - decay^k) theta_1.
    rng = np.random.default_rng(seed)
    params = two_params(rng)
    theta0 = [p.data.copy() for p in params]
    ema = EMA(params, decay=decay, warmup=False)
    theta1 = [rng.standard_normal(p.data.shape) for p in params]
    for p, t in zip(params, theta1):
        p.data[...] = t
    for _ in range(k):
        ema.update()
    w = decay**k
    for s, t0, t1 in zip(ema.shadow, theta0, theta1):
        np.testing.assert_allclose(s, w * t0 + (1 - w) * t1, rtol=1e-10, atol=1e-12)
    assert ema.num_updates == k


@given(k=st.integers(0, 200))
def test_closed_form_during_warmup(k):
    # prod_{j<k} (1 + j) / (10 + j) = k! 9! / (k + 9)! = 1 / binomial(k + 9, 9)
    p = Parameter(np.array([1.0, -3.0]))
    ema = EMA([p], decay=0.9999, warmup=True)
    p.data[...] = 0.0
    for _ in range(k):
        ema.update()
    np.testing.assert_allclose(ema.shadow[0], np.array([1.0, -3.0]) / comb(k + 9, 9),
                               rtol=1e-12, atol=1e-300)


def test_warmup_hands_over_to_the_constant_decay():
    ema = EMA([Parameter(np.zeros(1))], decay=0.9, warmup=True)
    decays = []
    for _ in range(100):
        decays.append(ema.current_decay())
        ema.update()
    assert decays[0] == pytest.approx(0.1) and decays[10] == pytest.approx(11 / 20)
    assert np.all(np.diff(decays) >= 0) and decays[-1] == 0.9
    assert EMA([Parameter(np.zeros(1))], decay=0.9, warmup=False).current_decay() == 0.9


@given(seed=st.integers(0, 2**32), decay=st.floats(0.5, 0.999), warmup=st.booleans())
def test_weighted_sum_of_the_whole_history(seed, decay, warmup):
    # shadow_K = (prod_k d_k) theta_0 + sum_j (1 - d_j) (prod_{k > j} d_k) theta_{j+1}
    rng = np.random.default_rng(seed)
    p = Parameter(rng.standard_normal(3))
    history = [p.data.copy()]
    ema = EMA([p], decay=decay, warmup=warmup)
    ds = []
    for _ in range(15):
        p.data[...] = rng.standard_normal(3)
        history.append(p.data.copy())
        ds.append(ema.current_decay())
        ema.update()
    ds = np.array(ds)
    weights = [np.prod(ds)] + [(1 - ds[j]) * np.prod(ds[j + 1:]) for j in range(15)]
    assert sum(weights) == pytest.approx(1.0)
    np.testing.assert_allclose(ema.shadow[0], np.tensordot(weights, history, axes=1),
                               rtol=1e-12, atol=1e-13)


def test_swap_in_and_back_even_after_an_error():
    rng = np.random.default_rng(0)
    params = two_params(rng)
    ema = EMA(params, decay=0.5, warmup=False)
    for p in params:
        p.data += 1.0
    ema.update()
    training = [p.data.copy() for p in params]
    arrays = [p.data for p in params]
    with ema.swap_in():
        for p, s in zip(params, ema.shadow):
            np.testing.assert_array_equal(p.data, s)
        assert not np.allclose(params[0].data, training[0])
    for p, t, a in zip(params, training, arrays):
        np.testing.assert_array_equal(p.data, t)
        assert p.data is a
    with pytest.raises(KeyError):
        with ema.swap_in():
            raise KeyError("sampling failed")
    np.testing.assert_array_equal(params[1].data, training[1])
    with pytest.raises(RuntimeError, match="store"):
        ema.restore()


def test_copy_to_another_model():
    rng = np.random.default_rng(1)
    params, other = two_params(rng), two_params(rng)
    ema = EMA(params, decay=0.0)
    ema.copy_to(other)
    for p, q in zip(params, other):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="expected 2 parameters"):
        ema.copy_to(other[:1])
    with pytest.raises(ValueError, match=r"parameter 1 has shape \(6,\)"):
        ema.copy_to([other[0], Parameter(np.zeros(6))])


def test_decay_one_freezes_and_zero_follows():
    p = Parameter(np.array([2.0]))
    frozen = EMA([p], decay=1.0, warmup=False)
    follower = EMA([p], decay=0.0)
    p.data[...] = 5.0
    frozen.update()
    follower.update()
    assert frozen.shadow[0][0] == 2.0 and follower.shadow[0][0] == 5.0


def test_state_dict_round_trip_and_mismatch():
    rng = np.random.default_rng(2)
    params = two_params(rng)
    ema = EMA(params, decay=0.99)
    for _ in range(3):
        for p in params:
            p.data += 0.1
        ema.update()
    state = ema.state_dict()
    assert state["num_updates"] == 3 and state["warmup"] is True
    fresh = EMA(two_params(rng), decay=0.5, warmup=False)
    fresh.load_state_dict(state)
    assert fresh.decay == 0.99 and fresh.warmup and fresh.num_updates == 3
    for a, b in zip(fresh.shadow, ema.shadow):
        np.testing.assert_array_equal(a, b)
        assert a is not b
    with pytest.raises(ValueError, match=r"shadow.0 has shape"):
        fresh.load_state_dict({**state, "shadow.0": np.zeros(3)})
    with pytest.raises(ValueError, match="for 1 parameters"):
        EMA(params[:1]).load_state_dict(state)
    with pytest.raises(ValueError, match="missing keys"):
        fresh.load_state_dict({"shadow.0": state["shadow.0"]})
    with pytest.raises(ValueError, match="decay"):
        fresh.load_state_dict({**state, "decay": 1.5})


def test_bad_arguments():
    params = two_params(np.random.default_rng(3))
    with pytest.raises(ValueError, match="decay"):
        EMA(params, decay=1.01)
    with pytest.raises(ValueError, match="decay"):
        EMA(params, decay=-0.1)
    with pytest.raises(TypeError, match="warmup"):
        EMA(params, warmup=100)
    with pytest.raises(ValueError, match="empty"):
        EMA([])
