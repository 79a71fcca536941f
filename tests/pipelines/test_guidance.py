"""Classifier-free guidance against exact math.

For a class-conditional Gaussian mixture the conditional and unconditional denoisers are known
exactly (diffusion/oracle.py), and the guided score of p(x_t | c)^s p(x_t)^(1 - s) is
s * score_c + (1 - s) * score_uncond. Since eps = -sqrt(1 - alpha_bar) * score, the guided eps
is s * eps_c + (1 - s) * eps_uncond, and the guided x_0 and v follow from it by Tweedie's
formula. The sampler, fed the exact denoiser, must hand the scheduler exactly that.
"""

import numpy as np
import pytest

from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, forward
from tinydiff.diffusion.oracle import ExactConditionalModel, GaussianMixture, mixture_of_classes
from tinydiff.pipelines.guidance import guided_output, rescale_noise_cfg
from tinydiff.pipelines.sampling import sample

# Two classes in 2-D; class 0 has two components, class 1 one. Class priors 0.6 / 0.4.
PRIORS = np.array([0.6, 0.4])
COMPONENTS = [  # per class: (weights within the class, means, covariances)
    ([0.5, 0.5], [[-1.0, -0.5], [-0.8, 0.9]], [np.eye(2) * 0.05, [[0.08, 0.03], [0.03, 0.06]]]),
    ([1.0], [[1.1, 0.2]], [[[0.04, 0.0], [0.0, 0.12]]]),
]
NULL = 2  # the null class index: num_class_embeds = 2 classes + 1


def class_mixture(c):
    w, mu, cov = COMPONENTS[c]
    return GaussianMixture(w, mu, cov)


def unconditional_mixture():
    w = np.concatenate([PRIORS[c] * np.asarray(COMPONENTS[c][0]) for c in range(2)])
    mu = np.concatenate([COMPONENTS[c][1] for c in range(2)])
    cov = np.concatenate([np.asarray(COMPONENTS[c][2], dtype=float) for c in range(2)])
    return GaussianMixture(w, mu, cov)


class ExactClassModel(ExactConditionalModel):
    """The library's exact class-conditional "model" on this test's classes, counting its calls'
    batch sizes. closed_form below builds the unconditional mixture on its own, so a wrong null
    class in the library fails the tests."""

    def __init__(self, alphas_cumprod, prediction_type, null_class=True):
        super().__init__([class_mixture(0), class_mixture(1)], PRIORS, alphas_cumprod, prediction_type,
                         null_class=null_class)
        self.batches = []

    def __call__(self, x, t, labels):
        self.batches.append(len(x))
        return super().__call__(x, t, labels)


def closed_form(x, a, labels, s, prediction_type):
    """The guided prediction from the guided score: eps~ = s eps_c + (1 - s) eps_uncond (Ho &
    Salimans 2022, eq. 6 with s = 1 + w), then x_0 and v from eps~ and x_t."""
    x = x.astype(np.float64)
    eps_u = unconditional_mixture().expected_epsilon(x, a)
    eps_c = np.stack([class_mixture(c).expected_epsilon(x[i:i + 1], a)[0] for i, c in enumerate(labels)])
    eps = s * eps_c + (1 - s) * eps_u
    x0 = forward.epsilon_to_x0(eps, x, a)
    return {"epsilon": eps, "sample": x0, "v_prediction": forward.velocity(x0, eps, a)}[prediction_type]


def test_the_null_label_is_the_mixture_of_the_classes_weighted_by_their_priors():
    x = np.random.default_rng(4).normal(size=(7, 2))
    joint = np.stack([np.log(p) + class_mixture(c).log_prob(x) for c, p in enumerate(PRIORS)])  # log p(c) p(x | c)
    np.testing.assert_allclose(mixture_of_classes([class_mixture(0), class_mixture(1)], PRIORS).log_prob(x),
                               np.logaddexp(*joint), rtol=1e-12)
    model = ExactClassModel(DDPMScheduler().alphas_cumprod, "epsilon")
    assert model.config["class_embed_null_index"] == NULL
    with pytest.raises(ValueError, match="t: expected one timestep"):
        model(x, np.arange(7), np.zeros(7, int))


def recording(cls, prediction_type="epsilon"):
    """A scheduler of class cls that keeps, per step, (t, x_t, model_output, x_prev, history)."""
    class Recording(cls):
        def step(self, model_output, timestep, sample, *args, **options):
            out = super().step(model_output, timestep, sample, *args, **options)
            self.record.append((int(timestep), np.array(sample), np.array(model_output), out.prev_sample,
                                [None if h is None else h.copy() for h in getattr(self, "model_outputs", [])]))
            return out

    clip = {} if cls is DPMSolverMultistepScheduler else {"clip_sample": False}  # exact math, no clipping
    scheduler = Recording(prediction_type=prediction_type, **clip)
    scheduler.record = []
    return scheduler


LABELS = np.array([0, 1, 0, 1, 1, 0])


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("s", [0.0, 2.5])
def test_guided_output_equals_closed_form_for_each_prediction_type(prediction_type, s):
    scheduler = recording(DDIMScheduler, prediction_type)
    model = ExactClassModel(scheduler.alphas_cumprod, prediction_type)
    sample(model, scheduler, (len(LABELS), 2), np.random.default_rng(0), num_inference_steps=8,
           class_labels=LABELS, guidance_scale=s)
    assert len(scheduler.record) == 8
    for t, x, output, prev, _ in scheduler.record:
        a = scheduler.alphas_cumprod[t]
        expected = closed_form(x, a, LABELS, s, prediction_type)
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))
        # one DDIM step from the closed form lands where the sampler's step did
        fresh = DDIMScheduler(prediction_type=prediction_type, clip_sample=False)
        fresh.set_timesteps(8)
        step = fresh.step(expected, t, x, eta=0.0).prev_sample
        np.testing.assert_allclose(prev, step, rtol=1e-5, atol=1e-4)


def test_dpm_solver_history_holds_the_guided_output():
    scheduler = recording(DPMSolverMultistepScheduler)
    model = ExactClassModel(scheduler.alphas_cumprod, "epsilon")
    sample(model, scheduler, (len(LABELS), 2), np.random.default_rng(1), num_inference_steps=6,
           class_labels=LABELS, guidance_scale=3.0)
    for t, x, output, prev, history in scheduler.record:
        a = scheduler.alphas_cumprod[t]
        guided_x0 = forward.epsilon_to_x0(closed_form(x, a, LABELS, 3.0, "epsilon"), x.astype(np.float64), a)
        np.testing.assert_allclose(history[-1], guided_x0, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("s, batches", [(1.0, [4] * 5), (0.0, [8] * 5), (4.0, [8] * 5)])
def test_one_forward_per_step_of_b_without_guidance_and_2b_with(s, batches):
    scheduler = DDPMScheduler()
    model = ExactClassModel(scheduler.alphas_cumprod, "epsilon")
    sample(model, scheduler, (4, 2), np.random.default_rng(2), num_inference_steps=5, class_labels=1,
           guidance_scale=s)
    assert model.batches == batches


def test_scale_one_equals_the_conditional_model_and_zero_the_unconditional():
    scheduler = DDIMScheduler()
    model = ExactClassModel(scheduler.alphas_cumprod, "epsilon")
    x = lambda **kw: sample(model, scheduler, (5, 2), np.random.default_rng(3), num_inference_steps=4, **kw)
    np.testing.assert_array_equal(x(class_labels=1, guidance_scale=1.0), x(class_labels=1))
    np.testing.assert_allclose(x(class_labels=1, guidance_scale=0.0), x(class_labels=NULL), rtol=1e-6, atol=1e-6)


class UnconditionalModel:
    """model(x, t) -> the unconditional mixture's exact eps."""

    def __init__(self, exact):
        self.exact, self.config = exact, {"data_dim": 2}

    def eval(self):
        return self

    def __call__(self, x, t):
        return self.exact(x, t, np.full(len(x), NULL))


def numpy_rescale(guided, cond, phi):
    """Lin et al. 2023, eqs. 15-16, written per sample with loops."""
    out = np.empty_like(guided)
    for b in range(len(guided)):
        g, c = guided[b].ravel(), cond[b].ravel()
        sd = lambda v: np.sqrt(((v - v.mean()) ** 2).sum() / (v.size - 1))
        out[b] = (phi * g * sd(c) / sd(g) + (1 - phi) * g).reshape(guided[b].shape)
    return out


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.7, 1.0])
def test_rescale_matches_the_formula(phi):
    rng = np.random.default_rng(4)
    guided, cond = rng.standard_normal((3, 2, 5, 4)) * 3, rng.standard_normal((3, 2, 5, 4))
    np.testing.assert_allclose(rescale_noise_cfg(guided, cond, phi), numpy_rescale(guided, cond, phi), rtol=1e-12)
    if phi == 1.0:  # fully rescaled: the guided output now has the conditional one's std
        np.testing.assert_allclose(rescale_noise_cfg(guided, cond, 1.0).std(axis=(1, 2, 3), ddof=1),
                                   cond.std(axis=(1, 2, 3), ddof=1))


def test_guided_output_applies_rescale_to_the_guided_halves():
    rng = np.random.default_rng(5)
    cond_out, uncond_out = rng.standard_normal((2, 3, 6))

    def model_fn(x, t, labels):
        return np.where((labels == NULL)[:, None], uncond_out[np.arange(len(x)) % 3], cond_out[np.arange(len(x)) % 3])

    x = np.zeros((3, 6))
    got = guided_output(model_fn, x, 10, np.zeros(3, int), np.full(3, NULL), 5.0, 0.7)
    expected = numpy_rescale(uncond_out + 5.0 * (cond_out - uncond_out), cond_out, 0.7)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# diffusers 0.42.1's rescale_noise_cfg (diffusers.guiders.guider_utils, torch 2.13, float64) on
# the tensors of _rescale_inputs() at guidance_rescale=0.7: entries [0, 0, 0, :3] and [3, 2, 7, 5:].
DIFFUSERS_RESCALE_0_7 = ([1.5070221882585373, 2.542181902316427, -3.65379345742428],
                         [2.668410956254056, -0.3123652642066726, 2.2214291975997202])


def _rescale_inputs():
    rng = np.random.default_rng(6)
    return rng.standard_normal((4, 3, 8, 8)) * 2.5, rng.standard_normal((4, 3, 8, 8))


def test_rescale_matches_values_computed_with_diffusers():
    out = rescale_noise_cfg(*_rescale_inputs(), 0.7)
    np.testing.assert_allclose(out[0, 0, 0, :3], DIFFUSERS_RESCALE_0_7[0], rtol=1e-12)
    np.testing.assert_allclose(out[3, 2, 7, 5:], DIFFUSERS_RESCALE_0_7[1], rtol=1e-12)


def test_rescale_matches_diffusers():
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    try:
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg as reference
    except ImportError:  # that module needs transformers; diffusers keeps the same function here
        from diffusers.guiders.guider_utils import rescale_noise_cfg as reference
    guided, cond = _rescale_inputs()
    for phi in (0.0, 0.5, 0.7, 1.0):
        expected = reference(torch.from_numpy(guided), torch.from_numpy(cond), guidance_rescale=phi).numpy()
        np.testing.assert_allclose(rescale_noise_cfg(guided, cond, phi), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw, message", [
    (dict(guidance_scale=-0.5), "guidance_scale"),
    (dict(guidance_scale=float("nan")), "guidance_scale"),
    (dict(guidance_scale=float("inf")), "guidance_scale"),
    (dict(guidance_rescale=1.5), "guidance_rescale"),
    (dict(guidance_rescale=-0.1), "guidance_rescale"),
    (dict(guidance_rescale=float("nan")), "guidance_rescale"),
])
def test_bad_guidance_values_are_refused(kw, message):
    scheduler = DDIMScheduler()
    model = ExactClassModel(scheduler.alphas_cumprod, "epsilon")
    with pytest.raises(ValueError, match=message):
        sample(model, scheduler, (2, 2), np.random.default_rng(0), num_inference_steps=2, class_labels=0, **kw)


def test_guidance_needs_a_null_class_and_a_conditional_model():
    scheduler = DDIMScheduler()
    no_null = ExactClassModel(scheduler.alphas_cumprod, "epsilon", null_class=False)
    with pytest.raises(ValueError, match="guidance_scale.*null class"):
        sample(no_null, scheduler, (2, 2), np.random.default_rng(0), 2, class_labels=0, guidance_scale=2.0)
    model = UnconditionalModel(ExactClassModel(scheduler.alphas_cumprod, "epsilon"))
    with pytest.raises(ValueError, match="guidance_scale.*class-conditional"):
        sample(model, scheduler, (2, 2), np.random.default_rng(0), 2, guidance_scale=2.0)
    sample(model, scheduler, (2, 2), np.random.default_rng(0), 2, guidance_scale=1.0)  # s = 1 needs nothing


def test_a_unet_with_a_null_class_samples_with_guidance():
    from tinydiff.models import UNet2DModel

    model = UNet2DModel(rng=np.random.default_rng(0), sample_size=8, in_channels=1, out_channels=1,
                        block_out_channels=(4, 8), norm_num_groups=2, attention_head_dim=4, num_class_embeds=4,
                        class_embed_null_index=3)
    x = sample(model, DDIMScheduler(), (2, 1, 8, 8), np.random.default_rng(0), 2, class_labels=[0, 2],
               guidance_scale=3.0, guidance_rescale=0.7)
    assert x.shape == (2, 1, 8, 8) and x.dtype == np.float32 and np.isfinite(x).all()


class OvershootingModel:
    """A class-conditional "model" predicting x_0 (prediction_type "sample") as 1.5 x_t for the
    condition and 0.2 x_t for the null class, so that guidance at s > 1 extrapolates the x_0
    estimate past clip_sample's range for all but the smallest x_t."""

    config = {"num_class_embeds": 3, "class_embed_null_index": NULL, "data_dim": 2}

    def eval(self):
        return self

    def __call__(self, x, t, labels):
        return np.where((labels == NULL)[:, None], 0.2 * x, 1.5 * x)


def ddim_by_hand(model, scheduler, s, use_clipped, steps=4, n=3):
    """The DDIM loop written out, with guided_output and the given use_clipped_model_output:
    every x_t it passes through (the last step lands on the clipped x_0, whichever eps it used)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    scheduler.set_timesteps(steps)
    labels, null = np.zeros(n, dtype=int), np.full(n, NULL)
    path = []
    for t in scheduler.timesteps:
        path.append(x)
        out = guided_output(model, x, int(t), labels, null, s)
        x = scheduler.step(out, t, x, use_clipped_model_output=use_clipped).prev_sample.astype(np.float32)
    return np.stack(path + [x])


def test_guided_ddim_takes_eps_from_the_clipped_x0_when_extrapolating():
    scheduler = DDIMScheduler(prediction_type="sample", clip_sample=True)
    model = OvershootingModel()

    def run(s, **kw):
        x, trajectory = sample(model, scheduler, (3, 2), np.random.default_rng(5), num_inference_steps=4,
                               class_labels=0, guidance_scale=s, record=True, **kw)
        return np.stack([x_t for _, x_t, _ in trajectory] + [x])

    by_hand = {flag: ddim_by_hand(model, scheduler, 3.0, flag) for flag in (True, False)}
    assert not np.allclose(by_hand[True], by_hand[False])  # the overshoot makes the choice matter
    np.testing.assert_array_equal(run(3.0), by_hand[True])  # s > 1: eps from the clipped x_0
    np.testing.assert_array_equal(run(3.0, use_clipped_model_output=False), by_hand[False])
    np.testing.assert_array_equal(run(0.5), ddim_by_hand(model, scheduler, 0.5, False))  # s <= 1: as diffusers
    with pytest.raises(ValueError, match="use_clipped_model_output: only DDIMScheduler takes it"):
        sample(model, DDPMScheduler(prediction_type="sample"), (3, 2), np.random.default_rng(5), 4,
               class_labels=0, guidance_scale=3.0, use_clipped_model_output=True)
    with pytest.raises(TypeError, match="use_clipped_model_output: expected True, False or None"):
        run(3.0, use_clipped_model_output="yes")
