"""Beta schedules: monotonicity, the cosine formula, zero terminal SNR, and argument checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.diffusion import (
    BETA_SCHEDULES,
    DDPMScheduler,
    log_snr,
    make_betas,
    rescale_zero_terminal_snr,
    snr,
    squaredcos_cap_v2_betas,
)

schedule_args = st.fixed_dictionaries({
    "beta_schedule": st.sampled_from(BETA_SCHEDULES),
    "num_train_timesteps": st.integers(2, 2000),
    "beta_start": st.floats(1e-5, 1e-2),
    "beta_end": st.floats(1e-2, 0.05),
})


@settings(max_examples=60, deadline=None)
@given(schedule_args, st.booleans())
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(args, zero_snr):
    s = DDPMScheduler(**args, rescale_betas_zero_snr=zero_snr)
    ab = s.alphas_cumprod
    assert ab.shape == (args["num_train_timesteps"],)
    assert np.all(np.diff(ab) < 0)
    assert ab[0] <= 1.0
    if zero_snr:
        assert ab[-1] == 0.0 and np.all(ab[:-1] > 0)
    else:
        assert np.all(ab > 0)


@settings(max_examples=60, deadline=None)
@given(schedule_args)
def test_snr_and_log_snr_decrease(args):
    s = DDPMScheduler(**args)
    assert np.all(np.diff(s.snr) < 0)
    assert np.all(np.diff(s.log_snr) < 0)
    np.testing.assert_allclose(np.exp(s.log_snr), s.snr, rtol=1e-9)
    np.testing.assert_allclose(snr(s.alphas_cumprod), s.alphas_cumprod / (1 - s.alphas_cumprod))


@settings(max_examples=60, deadline=None)
@given(schedule_args)
def test_zero_terminal_snr_keeps_first_alpha_bar_and_zeroes_the_last(args):
    betas = make_betas(**args)
    ab = np.cumprod(1 - betas)
    ab_new = np.cumprod(1 - rescale_zero_terminal_snr(betas))
    assert ab_new[-1] == 0.0
    assert ab_new[0] == pytest.approx(ab[0], rel=1e-12)
    assert snr(ab_new)[-1] == 0.0 and log_snr(ab_new)[-1] == -np.inf
    # sqrt(alpha_bar) is an affine map of the old one (Lin et al. 2023, Algorithm 1)
    a, b = np.sqrt(ab), np.sqrt(ab_new)
    slope = (b[0] - b[-1]) / (a[0] - a[-1])
    np.testing.assert_allclose(b, slope * (a - a[-1]), atol=1e-12)


def test_cosine_schedule_follows_nichol_dhariwal_and_is_clipped():
    T, s = 1000, 0.008
    betas = squaredcos_cap_v2_betas(T)
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # Nichol & Dhariwal 2021, eq. 17
    ab = np.cumprod(1 - betas)
    unclipped = betas < 0.999
    assert betas.max() == 0.999 and betas[-1] == 0.999  # the cosine reaches 0 at t = T
    t = np.arange(1, T + 1)
    idx = np.flatnonzero(np.cumprod(unclipped))  # before the first clipped beta
    np.testing.assert_allclose(ab[idx], f(t[idx] / T) / f(0.0), rtol=1e-9)


def test_linear_and_scaled_linear_endpoints():
    b = make_betas("linear", 1000, 1e-4, 0.02)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    b = make_betas("scaled_linear", 1000, 0.00085, 0.012)
    assert b[0] == pytest.approx(0.00085) and b[-1] == pytest.approx(0.012)
    assert np.all(np.abs(np.diff(np.sqrt(b), 2)) < 1e-12)  # square roots evenly spaced
    b = make_betas("sigmoid", 1000, 1e-4, 0.02)
    sig = lambda z: 1 / (1 + np.exp(-z))
    assert b[0] == pytest.approx(1e-4 + sig(-6.0) * (0.02 - 1e-4), rel=1e-12)
    assert b[-1] == pytest.approx(1e-4 + sig(6.0) * (0.02 - 1e-4), rel=1e-12)
    assert np.all(np.diff(b) > 0)


@pytest.mark.parametrize("kwargs, names", [
    (dict(beta_schedule="cosine"), ["beta_schedule", "squaredcos_cap_v2"]),
    (dict(beta_end=1.5), ["beta_end", "(0.0, 1.0)", "1.5"]),
    (dict(beta_start=0.0), ["beta_start"]),
    (dict(num_train_timesteps=0), ["num_train_timesteps"]),
    (dict(trained_betas=[0.1, 1.0, 0.2], num_train_timesteps=3), ["trained_betas", "(0, 1)"]),
    (dict(trained_betas=[0.1, 0.2], num_train_timesteps=3), ["trained_betas", "3"]),
    (dict(variance_type="learned"), ["variance_type", "fixed_small", "fixed_large"]),
    (dict(prediction_type="eps"), ["prediction_type", "v_prediction"]),
    (dict(timestep_spacing="uniform"), ["timestep_spacing", "trailing"]),
])
def test_bad_schedule_arguments_name_themselves(kwargs, names):
    with pytest.raises(ValueError) as err:
        DDPMScheduler(**kwargs)
    for name in names:
        assert name in str(err.value)
