"""The reverse process: start from Gaussian noise and call scheduler.step once per timestep.

The loop is the same for every scheduler (DDPM, DDIM, DPM-Solver++) and every denoiser; only
the update inside step() differs. Sampling runs the model in eval mode, which keeps no
activations, so memory stays at one forward pass.
"""

import inspect

import numpy as np
from tqdm.auto import tqdm

from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from tinydiff.pipelines.guidance import (check_guidance, check_guidance_interval, guided_output, null_class_label,
                                         scale_at)

SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}


def scheduler_from_config(name, config):
    """A scheduler of kind `name` (ddpm, ddim, dpm) built from another scheduler's config
    (a dict), keeping the keys it accepts, like diffusers' Scheduler.from_config."""
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler: expected one of {sorted(SCHEDULERS)}, got {name!r}")
    cls = SCHEDULERS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in config.items() if k in accepted})


def scheduler_config(scheduler):
    """A scheduler's arguments as a JSON-friendly dict."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(scheduler.config).items()}


def call_model(model, x, t, class_labels):
    """model(x, t) or model(x, t, condition) (class labels (B,), or a text model's encoder_hidden_states
    (B, N, D)); t an int array (B,) or one int for all."""
    t = np.broadcast_to(np.asarray(t), (x.shape[0],))
    if class_labels is None:
        return model(x, t)
    return model(x, t, class_labels)


def null_labels_for_guidance(model, guidance_scale, class_labels):
    """The null class labels (B,) guidance runs beside class_labels, or None when s = 1."""
    if guidance_scale == 1.0:
        return None
    if class_labels is None:
        raise ValueError(f"guidance_scale: {guidance_scale} needs a class-conditional model (classifier-free "
                         f"guidance mixes conditional and unconditional outputs); use guidance_scale=1")
    null = null_class_label(model)
    if null is None:
        raise ValueError(f"guidance_scale: {guidance_scale} needs a model trained with a null class (condition "
                         f"dropout; its config has no class_embed_null_index); use guidance_scale=1")
    return np.full_like(class_labels, null)


def check_shape(model, shape):
    """shape (B, C, H, W) for an image model, (B, C, F, H, W) for a video model (config
    motion_max_seq_length), (B, D) for points, matching the model's config."""
    if (not isinstance(shape, (tuple, list)) or len(shape) not in (2, 4, 5)
            or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape)):
        raise ValueError(f"shape: expected (B, C, H, W), (B, C, F, H, W) or (B, D) of positive integers, got {shape!r}")
    config = getattr(model, "config", {})
    if "motion_max_seq_length" in config:  # a video model (UNetMotionModel): F frames of H x W
        factor = 2 ** (len(config["block_out_channels"]) - 1)
        if (len(shape) != 5 or shape[1] != config["in_channels"] or shape[2] > config["motion_max_seq_length"]
                or shape[3] % factor or shape[4] % factor):
            raise ValueError(f"shape: the {type(model).__name__} takes (B, {config['in_channels']}, F, H, W) with F <= "
                             f"{config['motion_max_seq_length']} and H, W divisible by {factor}, got {tuple(shape)}")
    elif "in_channels" in config and "sample_size" in config:  # an image model (UNet2DModel)
        factor = 2 ** (len(config.get("block_out_channels", (0,))) - 1)
        if len(shape) != 4 or shape[1] != config["in_channels"] or shape[2] % factor or shape[3] % factor:
            raise ValueError(f"shape: the {type(model).__name__} takes (B, {config['in_channels']}, H, W) with H and "
                             f"W divisible by {factor} (it was trained at {config['sample_size']}), got {tuple(shape)}")
    elif "data_dim" in config and tuple(shape[1:]) != (config["data_dim"],):
        raise ValueError(f"shape: the {type(model).__name__} takes (B, {config['data_dim']}), got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def check_class_labels(model, class_labels, batch):
    """None for an unconditional model; else an int array (B,) of classes the model knows (a
    single int is one label for every sample)."""
    classes = getattr(model, "config", {}).get("num_class_embeds")
    if class_labels is None:
        if classes:
            raise ValueError(f"class_labels: the model is class-conditional ({classes} classes); pass "
                             f"class_labels, {batch} integers in [0, {classes})")
        return None
    if not classes:
        raise ValueError("class_labels: given, but the model is not class-conditional (num_class_embeds=None)")
    labels = np.asarray(class_labels)
    if labels.ndim == 0:
        labels = np.full(batch, labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"class_labels: expected integers, got dtype {labels.dtype}")
    if labels.shape != (batch,):
        raise ValueError(f"class_labels: expected one label per sample, {batch} (shape[0]), got "
                         f"{labels.shape[0] if labels.ndim == 1 else labels.shape} (shape {labels.shape})")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"class_labels: expected integers in [0, {classes}), got values from {labels.min()} "
                         f"to {labels.max()}")
    return labels.astype(np.int64)


def check_text_condition(model, encoder_hidden_states, negative_encoder_hidden_states, guidance_scale, batch,
                         class_labels):
    """(cond, null cond) for a text-conditional model (config cross_attention_dim): the prompts'
    encoder_hidden_states (B, N, D) and, when guidance_scale != 1, the unconditional branch's
    negative_encoder_hidden_states (B, N, D) (the empty prompt's, or a negative prompt's; one
    row (1, N, D) stands for every sample). (None, None) for any other model, which must not
    be given them."""
    width = getattr(model, "config", {}).get("cross_attention_dim")
    if width is None:
        if encoder_hidden_states is not None or negative_encoder_hidden_states is not None:
            raise ValueError(f"encoder_hidden_states: given, but the {type(model).__name__} is not text-conditional "
                             f"(no cross_attention_dim in its config)")
        return None, None
    if encoder_hidden_states is None:
        raise ValueError(f"encoder_hidden_states: the {type(model).__name__} is text-conditional; pass the prompts' "
                         f"encoder_hidden_states (B, N, {width}) (tinydiff.pipelines.text_encoding.encode_prompts)")
    if class_labels is not None:
        raise ValueError("class_labels: sample() conditions a text model on encoder_hidden_states alone")
    arrays = [("encoder_hidden_states", encoder_hidden_states)]
    if guidance_scale != 1.0:
        if negative_encoder_hidden_states is None:
            raise ValueError(f"negative_encoder_hidden_states: guidance_scale={guidance_scale} needs the "
                             f"unconditional branch's condition (the empty prompt's encoder_hidden_states, as "
                             f"Stable Diffusion, or a negative prompt's); use guidance_scale=1 without it")
        arrays.append(("negative_encoder_hidden_states", negative_encoder_hidden_states))
    checked = []
    for name, value in arrays:
        value = np.asarray(value)
        if value.dtype.kind != "f":
            raise TypeError(f"{name}: expected floats, got dtype {value.dtype}")
        if value.ndim != 3 or value.shape[2] != width or value.shape[0] not in (1, batch):
            raise ValueError(f"{name}: expected shape ({batch}, N, {width}) (or (1, N, {width}) for every sample), "
                             f"got {value.shape}")
        checked.append(np.broadcast_to(value, (batch,) + value.shape[1:]).astype(np.float32))
    if len(checked) == 2 and checked[0].shape != checked[1].shape:
        raise ValueError(f"negative_encoder_hidden_states: shape {checked[1].shape} differs from "
                         f"encoder_hidden_states' {checked[0].shape}; both branches run as one batch")
    return checked[0], (checked[1] if len(checked) == 2 else None)


def check_eta(eta, scheduler):
    """eta in [0, 1], and only for DDIM: sigma_t = eta * sqrt(beta tilde) (DDIM eq. 16) stays
    within the posterior's variance for eta <= 1; beyond, the step's direction term needs the
    square root of a negative number."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.integer, np.floating)) or not 0 <= eta <= 1:
        raise ValueError(f"eta: expected a number in [0, 1] (0 deterministic DDIM, 1 DDPM-like noise), got {eta!r}")
    if eta != 0.0 and not isinstance(scheduler, DDIMScheduler):
        raise ValueError(f"eta: only DDIMScheduler takes eta, got eta={eta} with {type(scheduler).__name__}")
    return float(eta)


def check_use_clipped(use_clipped_model_output, scheduler):
    """None (decided per step: True where guidance extrapolates, s > 1), or True/False, only for DDIM."""
    if use_clipped_model_output is None:
        return None
    if not isinstance(use_clipped_model_output, (bool, np.bool_)):
        raise TypeError(f"use_clipped_model_output: expected True, False or None, got {use_clipped_model_output!r}")
    if not isinstance(scheduler, DDIMScheduler):
        raise ValueError(f"use_clipped_model_output: only DDIMScheduler takes it, got {type(scheduler).__name__}")
    return bool(use_clipped_model_output)


def check_steps(num_inference_steps, scheduler):
    """1 <= num_inference_steps <= the scheduler's num_train_timesteps."""
    T = scheduler.config.num_train_timesteps
    if (isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer))
            or not 1 <= num_inference_steps <= T):
        raise ValueError(f"num_inference_steps: expected an integer in [1, {T}] (the scheduler's "
                         f"num_train_timesteps), got {num_inference_steps!r}")
    return int(num_inference_steps)


def sample(model, scheduler, shape, rng, num_inference_steps=50, class_labels=None, eta=0.0,
           record=False, progress=False, guidance_scale=1.0, guidance_rescale=0.0, use_clipped_model_output=None,
           guidance_interval=None, encoder_hidden_states=None, negative_encoder_hidden_states=None, latents=None):
    """Generate samples by running the reverse process from x_T ~ N(0, I).

    Parameters
    ----------
    model : Module
        Predicts what the scheduler's prediction_type says (epsilon, sample or v) from
        (x_t, t[, class_labels]), or, a text-conditional UNet2DConditionModel, from
        (x_t, t, encoder_hidden_states).
    scheduler : DDPMScheduler, DDIMScheduler or DPMSolverMultistepScheduler
    shape : tuple
        (B, C, H, W) for images, (B, C, F, H, W) for clips (a UNetMotionModel), (B, D) for points.
    rng : numpy.random.Generator
        Draws x_T and the noise of stochastic steps.
    num_inference_steps : int
    class_labels : int array (B,), optional
        Required by a class-conditional model (one label per sample, or one int for all).
    encoder_hidden_states : ndarray (B, N, D), optional
        Required by a text-conditional model (config cross_attention_dim = D): the prompts'
        text-encoder states (tinydiff.pipelines.text_encoding.encode_prompts); (1, N, D) is one
        prompt for every sample.
    negative_encoder_hidden_states : ndarray (B, N, D), optional
        A text model's unconditional branch, required when guidance_scale != 1: the empty
        prompt's states (Stable Diffusion's null condition, which TextToImagePipeline passes by
        default) or a negative prompt's, which guidance then steers away from.
    eta : float in [0, 1]
        DDIM only: 0 is deterministic DDIM, 1 matches DDPM's variance.
    guidance_scale : float >= 0
        Classifier-free guidance, diffusers' convention: guided = uncond + s * (cond - uncond),
        s = 1 + w of Ho & Salimans 2022, eq. 6 (their w = 0 is our s = 1). s = 1 is no guidance
        and costs one forward of B; s = 0 samples the unconditional model; any s != 1 runs the
        conditional and null-class halves as one forward of 2B. Needs a model with a null class
        (config class_embed_null_index), or a text model's negative_encoder_hidden_states. The
        schedulers, DPM-Solver++'s history included, only ever see the guided output.
    guidance_rescale : float in [0, 1]
        phi of Lin et al. 2023, sec. 3.4: the guided output's per-sample std is pulled back to
        the conditional output's, then mixed by phi. It acts on the model's output, so its effect
        depends on the scheduler's prediction_type (epsilon, v or sample), as in diffusers.
    guidance_interval : (t_low, t_high) or None
        Guidance only at the steps whose timestep t has t_low <= t <= t_high (training-timestep
        units, 0 <= t_low <= t_high < num_train_timesteps; Kynkaanniemi et al. 2024). Outside
        it the step takes the conditional output alone, and only ONE model evaluation of B is
        made there, the conditional one; inside it, the guided output from one forward of 2B.
        None (the default) guides every step. Works with every scheduler; DPM-Solver++'s
        history keeps whichever output each step used.
    use_clipped_model_output : bool or None
        DDIM only, and only with clip_sample in its config: recompute eps from the clipped x_0
        (diffusers' DDIMScheduler.step argument of that name). None (the default) means True
        at the steps where s > 1 is applied (inside guidance_interval, if any) and False
        otherwise. There guidance extrapolates, so the guided x_0 overshoots [-1, 1]; DDIM's
        step then pairs the clipped x_0 with an eps that still carries the overshoot, and the two no longer describe one x_t. On the shipped glyph
        model at s = 3 that kept 27% of DDIM samples of the digit asked (lesson 07: 200
        samples, 25 steps); with eps taken from the clipped x_0 it is 99.2%
        (benchmarks/bench_guidance.py: 3 x 200 samples, 50 steps). At s <= 1 the default keeps diffusers'
        DDIMPipeline behaviour, so s = 0 still samples exactly the unconditional model.
    latents : ndarray of `shape`, optional
        The initial noise x_T before the scheduler's init_noise_sigma scales it (diffusers'
        `latents` argument), to start two samplers from the same point; default drawn from rng.
    record : bool
        Also return the trajectory: a list of (t, x_t, predicted x_0), one per step.
    progress : bool
        Show a progress bar.

    Returns
    -------
    samples : ndarray of `shape`, float32; and the trajectory if record.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    shape = check_shape(model, shape)
    num_inference_steps = check_steps(num_inference_steps, scheduler)
    class_labels = check_class_labels(model, class_labels, shape[0])
    eta = check_eta(eta, scheduler)
    guidance_scale, guidance_rescale = check_guidance(guidance_scale, guidance_rescale)
    text, null_text = check_text_condition(model, encoder_hidden_states, negative_encoder_hidden_states,
                                           guidance_scale, shape[0], class_labels)
    if text is None:
        cond, null_cond = class_labels, null_labels_for_guidance(model, guidance_scale, class_labels)
    else:  # text: the condition is (B, N, D), its null the empty (or a negative) prompt's
        cond, null_cond = text, null_text
    use_clipped_model_output = check_use_clipped(use_clipped_model_output, scheduler)
    guidance_interval = check_guidance_interval(guidance_interval, scheduler.config.num_train_timesteps)

    def model_fn(x, t, labels):
        return call_model(model, x, t, labels)

    model.eval()
    scheduler.set_timesteps(num_inference_steps)
    if latents is None:
        latents = rng.standard_normal(shape)
    elif np.shape(latents) != shape or np.asarray(latents).dtype.kind != "f":
        raise ValueError(f"latents: expected floats of shape {shape}, got {np.asarray(latents).dtype} "
                         f"{np.shape(latents)}")
    x = (np.asarray(latents) * scheduler.init_noise_sigma).astype(np.float32)
    trajectory = []
    for t in tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False):
        s_t = scale_at(int(t), guidance_scale, guidance_interval)  # 1 outside the interval: one forward of B
        model_output = guided_output(model_fn, x, int(t), cond, null_cond, s_t, guidance_rescale)
        if isinstance(scheduler, DDIMScheduler):
            clipped = s_t > 1.0 if use_clipped_model_output is None else use_clipped_model_output
            out = scheduler.step(model_output, t, x, eta=eta, generator=rng, use_clipped_model_output=clipped)
        elif isinstance(scheduler, DDPMScheduler):
            out = scheduler.step(model_output, t, x, generator=rng)
        else:
            out = scheduler.step(model_output, t, x)
        if record:
            trajectory.append((int(t), x, out.pred_original_sample))
        x = out.prev_sample.astype(np.float32, copy=False)
    return (x, trajectory) if record else x
