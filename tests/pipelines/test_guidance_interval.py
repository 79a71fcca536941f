"""Guidance in a limited interval of timesteps (Kynkaanniemi et al. 2024), against exact math.

With the exact class-mixture denoiser of test_guidance.py: at a step inside the interval the
scheduler is handed the closed-form guided prediction, outside it the exact conditional one, for
every scheduler; an interval holding every step is plain guidance, one holding none is s = 1; and
outside the interval a step costs one forward of B, inside one of 2B.
"""

import numpy as np
import pytest
from test_guidance import LABELS, NULL, ExactClassModel, OvershootingModel, closed_form, recording

from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, forward
from tinydiff.pipelines.guidance import check_guidance_interval, guided_output, scale_at
from tinydiff.pipelines.sampling import sample

SCHEDULERS = [DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler]
STEPS = 8  # DDPM and DDIM: 875, 750, ..., 125, 0; DPM-Solver++: 999, 874, ..., 125
INTERVAL = (250, 625)  # holds four steps in the middle (DDIM: 625, 500, 375, 250), both ends included


def timesteps(cls):
    scheduler = recording(cls)
    scheduler.set_timesteps(STEPS)
    return [int(t) for t in scheduler.timesteps]


def run(cls, s, interval, prediction_type="epsilon", seed=0):
    scheduler = recording(cls, prediction_type)
    model = ExactClassModel(scheduler.alphas_cumprod, prediction_type)
    x = sample(model, scheduler, (len(LABELS), 2), np.random.default_rng(seed), STEPS, class_labels=LABELS,
               guidance_scale=s, guidance_interval=interval)
    return x, scheduler, model


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_inside_the_interval_the_guided_output_outside_the_conditional_one(cls, prediction_type):
    _, scheduler, _ = run(cls, 3.0, INTERVAL, prediction_type)
    inside = [t for t, *_ in scheduler.record if INTERVAL[0] <= t <= INTERVAL[1]]
    assert len(inside) == 4 and len(scheduler.record) == STEPS
    for t, x, output, _, _ in scheduler.record:
        a = scheduler.alphas_cumprod[t]
        expected = closed_form(x, a, LABELS, 3.0 if t in inside else 1.0, prediction_type)
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))
        if t > INTERVAL[1]:  # at high noise guidance would matter: skipping it is seen (near t = 0 it would not)
            assert not np.allclose(output, closed_form(x, a, LABELS, 3.0, prediction_type), atol=1e-3)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_an_interval_holding_every_step_is_plain_guidance_and_one_holding_none_is_s_1(cls):
    plain, *_ = run(cls, 2.5, None)
    np.testing.assert_array_equal(run(cls, 2.5, (0, 999))[0], plain)
    ts = timesteps(cls)
    np.testing.assert_array_equal(run(cls, 2.5, (ts[-1], ts[0]))[0], plain)  # the ends are included
    unguided, *_ = run(cls, 1.0, None)
    np.testing.assert_array_equal(run(cls, 2.5, (ts[1] + 1, ts[0] - 1))[0], unguided)  # no timestep in it
    assert not np.allclose(run(cls, 2.5, INTERVAL)[0], plain)
    assert not np.allclose(run(cls, 2.5, INTERVAL)[0], unguided)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_one_forward_of_b_outside_the_interval_and_of_2b_inside(cls):
    _, scheduler, model = run(cls, 4.0, INTERVAL)
    B = len(LABELS)
    assert model.batches == [2 * B if INTERVAL[0] <= t <= INTERVAL[1] else B for t, *_ in scheduler.record]
    assert model.batches.count(2 * B) == 4 and model.batches.count(B) == STEPS - 4  # four steps inside
    assert [t for t, *_ in scheduler.record] == timesteps(cls)


def test_dpm_solver_history_holds_each_step_s_own_output():
    _, scheduler, _ = run(DPMSolverMultistepScheduler, 3.0, INTERVAL)
    for t, x, _, _, history in scheduler.record:
        a = scheduler.alphas_cumprod[t]
        s = 3.0 if INTERVAL[0] <= t <= INTERVAL[1] else 1.0
        x0 = forward.epsilon_to_x0(closed_form(x, a, LABELS, s, "epsilon"), x.astype(np.float64), a)
        np.testing.assert_allclose(history[-1], x0, rtol=1e-4, atol=1e-4)


def test_ddim_takes_eps_from_the_clipped_x0_only_where_it_extrapolates():
    scheduler = DDIMScheduler(prediction_type="sample", clip_sample=True)
    model = OvershootingModel()  # its conditional x_0 (1.5 x_t) overshoots too, so the choice shows at s = 1
    interval = (300, 700)

    def by_hand(per_step_clipped):
        """Every x_t of the DDIM loop written out with the given use_clipped_model_output per step."""
        x = np.random.default_rng(5).standard_normal((3, 2)).astype(np.float32)
        scheduler.set_timesteps(4)  # timesteps 750, 500, 250, 0: only 500 is inside
        labels, null = np.zeros(3, dtype=int), np.full(3, NULL)
        path = []
        for t in scheduler.timesteps:
            path.append(x)
            s = scale_at(int(t), 3.0, interval)
            out = guided_output(model, x, int(t), labels, null, s)
            x = scheduler.step(out, t, x, use_clipped_model_output=per_step_clipped(s)).prev_sample.astype(np.float32)
        return np.stack(path + [x])

    def path(**kw):
        x, trajectory = sample(model, scheduler, (3, 2), np.random.default_rng(5), 4, class_labels=0,
                               guidance_scale=3.0, guidance_interval=interval, record=True, **kw)
        return np.stack([x_t for _, x_t, _ in trajectory] + [x])

    np.testing.assert_array_equal(path(), by_hand(lambda s: s > 1.0))
    assert not np.allclose(path(), by_hand(lambda s: True))  # the unguided steps keep diffusers' default
    np.testing.assert_array_equal(path(use_clipped_model_output=True), by_hand(lambda s: True))


def test_scale_at():
    assert scale_at(500, 2.0, None) == 2.0
    assert [scale_at(t, 2.0, (100, 300)) for t in (99, 100, 200, 300, 301)] == [1.0, 2.0, 2.0, 2.0, 1.0]
    assert scale_at(200, 0.0, (100, 300)) == 0.0 and scale_at(50, 0.0, (100, 300)) == 1.0


@pytest.mark.parametrize("interval, error, message", [
    ((300, 200), ValueError, r"0 <= t_low <= t_high < 1000"),
    ((-1, 200), ValueError, r"0 <= t_low <= t_high < 1000"),
    ((0, 1000), ValueError, r"0 <= t_low <= t_high < 1000.*num_train_timesteps"),
    ((0.5, 200), TypeError, "two integer timesteps"),
    ((0, float("nan")), TypeError, "two integer timesteps"),
    ((True, 200), TypeError, "two integer timesteps"),
    ((100,), TypeError, r"\(t_low, t_high\)"),
    ((1, 2, 3), TypeError, r"\(t_low, t_high\)"),
    ("0 9", TypeError, r"\(t_low, t_high\)"),
    (500, TypeError, r"\(t_low, t_high\)"),
])
def test_bad_intervals_are_refused_naming_the_argument(interval, error, message):
    scheduler = DDIMScheduler()
    model = ExactClassModel(scheduler.alphas_cumprod, "epsilon")
    with pytest.raises(error, match="guidance_interval: .*" + message):
        sample(model, scheduler, (2, 2), np.random.default_rng(0), 2, class_labels=0, guidance_scale=2.0,
               guidance_interval=interval)


def test_check_guidance_interval_returns_ints():
    assert check_guidance_interval(None, 1000) is None
    assert check_guidance_interval([np.int64(3), 7.0], 10) == (3, 7)
    assert all(type(v) is int for v in check_guidance_interval(np.array([3, 7]), 10))
