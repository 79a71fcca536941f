"""AdamW: closed-form steps, an independent re-derivation from the paper, PyTorch step by
step, state round trips and argument checks."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.nn import Parameter
from tinydiff.optim import AdamW


class StandIn:
    """The whole contract an optimiser may rely on: .data and .grad."""

    def __init__(self, data):
        self.data = np.array(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)


def make_params(rng, shapes=((3, 4), (5,), (2, 1, 3)), dtype=np.float64):
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]


hyper = dict(lr=st.floats(1e-4, 0.5), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.9999),
             eps=st.floats(1e-10, 1e-2), weight_decay=st.floats(0.0, 1.0),
             seed=st.integers(0, 2**32))


@given(**hyper)
def test_first_step_in_closed_form(lr, beta1, beta2, eps, weight_decay, seed):
    # With m_0 = v_0 = 0, bias correction gives m_hat = g and v_hat = g^2 exactly, so
    # theta_1 = theta_0 (1 - lr lambda) - lr g / (|g| + eps).
    rng = np.random.default_rng(seed)
    params = make_params(rng)
    theta0 = [p.data.copy() for p in params]
    for p in params:
        p.grad[...] = rng.standard_normal(p.data.shape)
    AdamW(params, lr, (beta1, beta2), eps, weight_decay).step()
    for p, t0 in zip(params, theta0):
        g = p.grad
        expected = t0 * (1 - lr * weight_decay) - lr * g / (np.abs(g) + eps)
        np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-14)


def paper_adamw(theta, grads, lrs, beta1, beta2, eps, weight_decay):
    """Loshchilov & Hutter 2019, Algorithm 2, with PyTorch's eta_t = lr_t, written out."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * theta)
    return theta, m, v


@given(**hyper)
def test_matches_the_paper_over_many_steps_with_a_changing_lr(lr, beta1, beta2, eps,
                                                              weight_decay, seed):
    rng = np.random.default_rng(seed)
    p = Parameter(rng.standard_normal(6))
    theta0 = p.data.copy()
    grads = rng.standard_normal((12, 6)) * rng.uniform(0.01, 10, size=(12, 1))
    lrs = lr * rng.uniform(0.1, 1.0, size=12)
    opt = AdamW([p], lr, (beta1, beta2), eps, weight_decay)
    for g, step_lr in zip(grads, lrs):
        p.grad[...] = g
        opt.lr = step_lr
        opt.step()
    theta, m, v = paper_adamw(theta0, grads, lrs, beta1, beta2, eps, weight_decay)
    np.testing.assert_allclose(p.data, theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(opt.exp_avg[0], m, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(opt.exp_avg_sq[0], v, rtol=1e-10, atol=1e-14)
    assert opt.step_count == 12


def test_zero_gradients_only_decay_the_weights():
    p = Parameter(np.array([1.0, -2.0, 3.0]))
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(7):
        opt.step()
    np.testing.assert_allclose(p.data, np.array([1.0, -2.0, 3.0]) * 0.95**7, rtol=1e-13)


@given(seed=st.integers(0, 2**32), dtype=st.sampled_from([np.float32, np.float64]))
def test_minimises_a_quadratic(seed, dtype):
    # f(theta) = 1/2 sum a (theta - c)^2 with curvatures a spanning two decades.
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 10.0, size=8)
    c = rng.standard_normal(8)
    p = Parameter(rng.standard_normal(8).astype(dtype))
    opt = AdamW([p], lr=0.05, weight_decay=0.0)

    def loss():
        return 0.5 * float(np.sum(a * (p.data - c) ** 2))

    start = loss()
    for _ in range(300):
        opt.zero_grad()
        p.grad += (a * (p.data - c)).astype(dtype)
        opt.step()
    assert p.data.dtype == dtype
    assert loss() < 1e-3 * start + 1e-6


def test_update_is_in_place_and_keeps_dtypes():
    rng = np.random.default_rng(0)
    params = make_params(rng, dtype=np.float32) + [StandIn([1.0, 2.0])]
    arrays = [p.data for p in params]
    opt = AdamW(params)
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    for p, arr in zip(params, arrays):
        assert p.data is arr  # layers holding the array see the update
    assert opt.exp_avg[0].dtype == np.float32 and opt.exp_avg[-1].dtype == np.float64
    grads = [p.grad for p in params]
    opt.zero_grad()
    for p, g in zip(params, grads):
        assert p.grad is g and not g.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_update_equals_the_numpy_statements_to_the_bit(dtype):
    # C-contiguous parameters take the Numba loop; Fortran-ordered ones (whose moments are
    # Fortran-ordered too) take the NumPy statements. Same hyperparameters, same gradients:
    # the same weights and moments, bit for bit, over steps with a changing lr
    rng = np.random.default_rng(5)
    shapes = ((6, 7), (3, 4, 5), (9, 2))
    fused = make_params(rng, shapes, dtype)
    plain = [Parameter(np.asfortranarray(p.data)) for p in fused]
    assert not any(p.data.flags.c_contiguous for p in plain)
    opts = [AdamW(ps, lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
            for ps in (fused, plain)]
    for step in range(6):
        for a, b in zip(fused, plain):
            a.grad[...] = b.grad[...] = rng.standard_normal(a.data.shape).astype(dtype)
        for opt in opts:
            opt.lr = 3e-3 * (1 + step) / 6
            opt.step()
    for i, (a, b) in enumerate(zip(fused, plain)):
        np.testing.assert_array_equal(a.data, b.data, err_msg=f"param {i}")
        np.testing.assert_array_equal(opts[0].exp_avg[i], opts[1].exp_avg[i])
        np.testing.assert_array_equal(opts[0].exp_avg_sq[i], opts[1].exp_avg_sq[i])


def test_matches_torch_step_by_step():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        params = make_params(rng, dtype=dtype)
        mine = AdamW(params, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)
        theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
        ref = torch.optim.AdamW(theirs, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)
        for step in range(25):
            lr = 3e-3 * (0.5 + 0.5 * np.cos(step / 10))
            mine.lr = lr
            for group in ref.param_groups:
                group["lr"] = lr
            for p, t in zip(params, theirs):
                g = (rng.standard_normal(p.data.shape) * 10.0 ** rng.integers(-3, 2)).astype(dtype)
                p.grad[...] = g
                t.grad = torch.from_numpy(g.copy())
            mine.step()
            ref.step()
            for i, (p, t) in enumerate(zip(params, theirs)):
                np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=tol, atol=tol * 1e-2,
                                           err_msg=f"{dtype.__name__} step {step} param {i}")
        state = ref.state[theirs[0]]
        np.testing.assert_allclose(mine.exp_avg[0], state["exp_avg"].numpy(), rtol=tol)
        np.testing.assert_allclose(mine.exp_avg_sq[0], state["exp_avg_sq"].numpy(), rtol=tol)


def test_state_dict_round_trip_resumes_exactly():
    rng = np.random.default_rng(2)
    grads = [[rng.standard_normal(s) for s in ((3, 4), (5,), (2, 1, 3))] for _ in range(10)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad[...] = g
            opt.step()

    params = make_params(np.random.default_rng(3))
    opt = AdamW(params, lr=0.01)
    run(params, opt, grads[:5])
    state = opt.state_dict()
    saved_weights = [p.data.copy() for p in params]
    run(params, opt, grads[5:])

    numbers = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    assert json.loads(json.dumps(numbers)) == numbers  # the rest is arrays only
    assert sorted(k for k in state if isinstance(state[k], np.ndarray)) == sorted(
        [f"exp_avg.{i}" for i in range(3)] + [f"exp_avg_sq.{i}" for i in range(3)])

    resumed = [Parameter(w) for w in saved_weights]
    opt2 = AdamW(resumed, lr=123.0)  # hyperparameters come from the state
    opt2.load_state_dict(state)
    assert opt2.lr == 0.01 and opt2.step_count == 5
    run(resumed, opt2, grads[5:])
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)


def test_bad_state_dicts_are_refused_and_change_nothing():
    params = make_params(np.random.default_rng(4))
    opt = AdamW(params)
    good = opt.state_dict()
    with pytest.raises(ValueError, match="missing keys.*step"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "step"})
    with pytest.raises(ValueError, match=r"exp_avg.1 has shape \(4,\).*\(5,\)"):
        opt.load_state_dict({**good, "exp_avg.1": np.zeros(4)})
    with pytest.raises(ValueError, match="for 2 parameters.*3 arrays"):
        AdamW(params[:2]).load_state_dict(good)
    with pytest.raises(ValueError, match="unexpected keys.*shadow.0"):
        opt.load_state_dict({**good, "shadow.0": np.zeros(3)})
    with pytest.raises(ValueError, match="betas"):
        opt.load_state_dict({**good, "beta2": 1.0, "lr": 0.5})
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict({**good, "step": -1})
    with pytest.raises(TypeError, match="dict"):
        opt.load_state_dict([1, 2])
    assert opt.lr == 1e-3 and opt.beta2 == 0.999


def test_bad_arguments():
    params = make_params(np.random.default_rng(5))
    for kwargs, match in [({"lr": -1e-3}, "lr"), ({"lr": float("nan")}, "lr"),
                          ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
                          ({"betas": (-0.1, 0.9)}, r"betas\[0\]"),
                          ({"betas": (0.9,)}, "betas"), ({"eps": -1.0}, "eps"),
                          ({"weight_decay": -0.1}, "weight_decay")]:
        with pytest.raises(ValueError, match=match):
            AdamW(params, **kwargs)
    opt = AdamW(params)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.5
    with pytest.raises(TypeError, match="lr"):
        opt.lr = "0.1"
    with pytest.raises(ValueError, match="empty"):
        AdamW([])
    with pytest.raises(TypeError, match=r"named_parameters"):
        AdamW([("w", params[0])])
    with pytest.raises(ValueError, match="twice"):
        AdamW([params[0], params[1], params[0]])
    with pytest.raises(TypeError, match="parameter 0 needs .data"):
        AdamW([np.zeros(3)])
    params[1].grad = np.zeros(7)
    with pytest.raises(ValueError, match=r"parameter 1 needs .grad of shape \(5,\)"):
        opt.step()
