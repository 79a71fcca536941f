"""The reverse process: start from Gaussian noise and call scheduler.step once per timestep.

The loop is the same for every scheduler (DDPM, DDIM, DPM-Solver++) and every denoiser; only
the update inside step() differs. Sampling runs the model in eval mode, which keeps no
activations, so memory stays at one forward pass.
"""

import inspect

import numpy as np
from tqdm.auto import tqdm

from tinydiff.diffusion import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

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
    if class_labels is None:
        return model(x, np.full(x.shape[0], t))
    return model(x, np.full(x.shape[0], t), class_labels)


def sample(model, scheduler, shape, rng, num_inference_steps=50, class_labels=None, eta=0.0,
           record=False, progress=False):
    """Generate samples by running the reverse process from x_T ~ N(0, I).

    Parameters
    ----------
    model : Module
        Predicts what the scheduler's prediction_type says (epsilon, sample or v) from
        (x_t, t[, class_labels]).
    scheduler : DDPMScheduler, DDIMScheduler or DPMSolverMultistepScheduler
    shape : tuple
        (B, C, H, W) for images, (B, D) for points.
    rng : numpy.random.Generator
        Draws x_T and the noise of stochastic steps.
    num_inference_steps : int
    class_labels : int array (B,), optional
    eta : float
        DDIM only: 0 is deterministic DDIM, 1 matches DDPM's variance.
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
    if eta != 0.0 and not isinstance(scheduler, DDIMScheduler):
        raise ValueError(f"eta: only DDIMScheduler takes eta, got eta={eta} with {type(scheduler).__name__}")
    model.eval()
    scheduler.set_timesteps(num_inference_steps)
    x = (rng.standard_normal(shape) * scheduler.init_noise_sigma).astype(np.float32)
    trajectory = []
    for t in tqdm(scheduler.timesteps, desc="sampling", disable=not progress, leave=False):
        model_output = call_model(model, x, int(t), class_labels)
        if isinstance(scheduler, DDIMScheduler):
            out = scheduler.step(model_output, t, x, eta=eta, generator=rng)
        elif isinstance(scheduler, DDPMScheduler):
            out = scheduler.step(model_output, t, x, generator=rng)
        else:
            out = scheduler.step(model_output, t, x)
        if record:
            trajectory.append((int(t), x, out.pred_original_sample))
        x = out.prev_sample.astype(np.float32, copy=False)
    return (x, trajectory) if record else x
