"""Pipeline folders: a trained denoiser and its scheduler (and, for latent diffusion, its VAE)
in diffusers' DDPMPipeline layout, written atomically, and read back from such a folder or from
a training checkpoint."""

from pathlib import Path

import numpy as np

import tinydiff
from tinydiff import files
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.guidance import (GUIDANCE_INTERVAL_KEY, GUIDANCE_SCALE_KEY, check_guidance,
                                         check_guidance_interval)
from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config


def save_pipeline(path, model, scheduler, dtype=np.float32, vae=None, guidance_scale=None, guidance_interval=None):
    """A folder in diffusers' pipeline layout: model_index.json, unet/ (config + weights),
    scheduler/scheduler_config.json, and vae/ for a latent diffusion model (the UNet then
    denoises vae latents times vae.config["scaling_factor"]). Written atomically as a whole.
    `guidance_scale`, if given, is stored in model_index.json as the scale that `tinydiff
    sample` uses by default (GUIDANCE_SCALE_KEY; diffusers ignores keys starting with _), and
    `guidance_interval` (t_low, t_high), if given, as the timesteps that scale guides in
    (GUIDANCE_INTERVAL_KEY; sample()'s guidance_interval); it needs guidance_scale."""
    if guidance_scale is not None:
        guidance_scale, _ = check_guidance(guidance_scale, 0.0)
    if guidance_interval is not None and guidance_scale is None:
        raise ValueError(f"guidance_interval: {guidance_interval!r} is the interval a recommended guidance_scale "
                         f"guides in; pass guidance_scale too")
    guidance_interval = check_guidance_interval(guidance_interval, scheduler.config.num_train_timesteps)
    kind = {"DDPMScheduler": "DDPMScheduler", "DDIMScheduler": "DDIMScheduler"}.get(
        type(scheduler).__name__, "DDPMScheduler")

    def write(tmp):
        (tmp / "unet").mkdir()
        (tmp / "scheduler").mkdir()
        index = {"_class_name": "DDPMPipeline", "_tinydiff_version": tinydiff.__version__,
                 "unet": ["diffusers", type(model).__name__], "scheduler": ["diffusers", kind]}
        if guidance_scale is not None:
            index[GUIDANCE_SCALE_KEY] = guidance_scale
        if guidance_interval is not None:
            index[GUIDANCE_INTERVAL_KEY] = list(guidance_interval)
        if vae is not None:
            # diffusers has no unconditional pipeline with an AutoencoderKL; each part loads
            # with from_pretrained(DIR, subfolder=...)
            index["_class_name"] = "LatentDiffusionPipeline"
            index["vae"] = ["diffusers", type(vae).__name__]
            (tmp / "vae").mkdir()
            files.write_json(tmp / "vae" / ckpt.CONFIG_NAME, ckpt.model_config(vae))
            files.save_arrays(tmp / "vae" / ckpt.WEIGHTS_NAME, vae.state_dict(), dtype)
        files.write_json(tmp / "model_index.json", index)
        files.write_json(tmp / "unet" / ckpt.CONFIG_NAME, ckpt.model_config(model))
        files.save_arrays(tmp / "unet" / ckpt.WEIGHTS_NAME, model.state_dict(), dtype)
        files.write_json(tmp / "scheduler" / "scheduler_config.json",
                        {"_class_name": kind, **scheduler_config(scheduler)})

    files.write_folder_atomically(path, write)


def load_pipeline(path):
    """(model, scheduler config dict) from a pipeline folder (final/, a shipped model) or from
    a training checkpoint folder (whose EMA weights are used).

    A problem with the folder is one line naming the file: FileNotFoundError when `path` is not
    such a folder (saying what it is instead: a VAE, a training run's output folder, ...),
    ValueError when a file in it is corrupt."""
    path = Path(path)
    files.recover_folder(path)
    if (path / "model_index.json").is_file():
        ckpt.check_pipeline_index(path)
        model = ckpt.load_model(path / "unet")
        config_file = path / "scheduler" / "scheduler_config.json"
    elif (path / "trainer_state.json").is_file() and ckpt.class_name(path) != "AutoencoderKL":
        state_file = path / "trainer_state.json"
        ckpt.check_fields(files.read_json(state_file), ("step", "config"), state_file)
        model = ckpt.model_from_checkpoint(path)
        config_file = path / "scheduler_config.json"
    else:
        raise FileNotFoundError(ckpt.not_a_pipeline(path))
    if type(model).__name__ not in ("UNet2DModel", "MLPDenoiser"):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a denoiser (UNet2DModel or MLPDenoiser)")
    config = {k: v for k, v in files.read_json(config_file).items() if not k.startswith("_")}
    try:
        scheduler_from_config("ddpm", config)  # the values a sampler will be built from
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_file}: {err}") from None
    return model, config
