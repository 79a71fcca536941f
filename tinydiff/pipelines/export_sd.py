"""A tinydiff text-to-image pipeline as diffusers' StableDiffusionPipeline folder.

    model_index.json   _class_name StableDiffusionPipeline, no safety checker
    unet/              UNet2DConditionModel (config.json + float32 safetensors)
    vae/               AutoencoderKL with latents_mean/std folded into its 1x1 convs
    text_encoder/      transformers' CLIPTextModel (the projection dropped: Stable Diffusion
                       conditions on the last hidden state)
    tokenizer/         tokenizer.json for transformers' PreTrainedTokenizerFast
    scheduler/         scheduler_config.json (DDPMScheduler or DDIMScheduler)

Why the VAE changes. tinydiff's UNet denoises z = (x - mean) * scaling_factor / std, per latent
channel (tinydiff.pipelines.latent.scale_latents), and decodes decode(z * std / scaling_factor
+ mean). StableDiffusionPipeline only ever decodes vae.decode(z / scaling_factor). With
a = std per channel, post_quant_conv (a 1x1 conv, W (C, C), b (C,)) absorbs the rest:

    W (a * u + mean) + b = (W diag(a)) u + (b + W mean),     u = z / scaling_factor

and quant_conv, whose 2C outputs are [mean, logvar] of q(z|x) (diffusers' DiagonalGaussian-
Distribution), is changed so the exported encoder's posterior is that of (x - mean) / a:
mean rows (W, b) -> (W / a, (b - mean) / a), logvar bias b -> b - 2 log a. Then
vae.encode(x).latent_dist.sample() * scaling_factor is what tinydiff's UNet was trained on, and
latents_mean/std leave the exported config. (Both sides clamp logvar to [-30, 20]; the shift by
2 log a moves where that clamp bites, which matters only for an encoder that saturates it.)
a and mean are the float32 values tinydiff.pipelines.latent.unscale_latents uses, so the folded
decoder matches tinydiff's to round-off.
"""

from pathlib import Path

import numpy as np

import tinydiff
from tinydiff import files
from tinydiff.models.clip_text_folder import WEIGHTS_NAME as TEXT_WEIGHTS_NAME
from tinydiff.models.clip_text_folder import transformers_config
from tinydiff.models.vae import AutoencoderKL
from tinydiff.pipelines.checkpoint import CONFIG_NAME, WEIGHTS_NAME, model_config
from tinydiff.pipelines.latent import latent_shift_and_scale
from tinydiff.pipelines.sampling import scheduler_config

PIPELINE_CLASS = "StableDiffusionPipeline"
SCHEDULER_CLASSES = ("DDPMScheduler", "DDIMScheduler")
PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def fold_latent_normalization(vae):
    """A copy of `vae` (AutoencoderKL) without latents_mean/std whose decode(z / scaling_factor)
    is vae.decode(unscale_latents(vae, z)) and whose encoder's posterior is that of
    scale_latents(vae, .) / scaling_factor (see the module docstring). Same dtype as `vae`;
    a VAE without latents_mean comes back as an unchanged copy."""
    if not isinstance(vae, AutoencoderKL):
        raise TypeError(f"vae: expected an AutoencoderKL, got {type(vae).__name__}")
    config = dict(vae.config, latents_mean=None, latents_std=None)
    state = vae.state_dict()
    dtype = state["post_quant_conv.weight"].dtype
    shift, scale = latent_shift_and_scale(vae)  # float32 (C, 1, 1): what unscale_latents uses
    mean = shift[:, 0, 0].astype(np.float64)
    a = config["scaling_factor"] / scale[:, 0, 0].astype(np.float64)  # = latents_std, per channel
    C = len(a)

    W = state["post_quant_conv.weight"].astype(np.float64)  # (C, C, 1, 1): out, in
    b = state["post_quant_conv.bias"].astype(np.float64)
    state["post_quant_conv.bias"] = (b + W[:, :, 0, 0] @ mean).astype(dtype)
    state["post_quant_conv.weight"] = (W * a[None, :, None, None]).astype(dtype)

    Wq = state["quant_conv.weight"].astype(np.float64)  # (2C, 2C, 1, 1): rows [mean, logvar]
    bq = state["quant_conv.bias"].astype(np.float64)
    Wq[:C] /= a[:, None, None, None]
    bq[:C] = (bq[:C] - mean) / a
    bq[C:] -= 2.0 * np.log(a)
    state["quant_conv.weight"], state["quant_conv.bias"] = Wq.astype(dtype), bq.astype(dtype)

    folded = AutoencoderKL(**config, rng=np.random.default_rng(0)).to(dtype)
    folded.load_state_dict(state)
    return folded


def check_parts(pipeline):
    """The five parts, checked to fit together; returns them in PARTS order."""
    missing = [p for p in PARTS if not hasattr(pipeline, p)]
    if missing:
        raise TypeError(f"pipeline: expected attributes {list(PARTS)}; {type(pipeline).__name__} lacks {missing}")
    unet, vae, text_encoder, tokenizer, scheduler = (getattr(pipeline, p) for p in PARTS)
    if type(unet).__name__ != "UNet2DConditionModel":
        raise TypeError(f"pipeline.unet: expected a UNet2DConditionModel, got {type(unet).__name__}")
    if type(text_encoder).__name__ not in ("CLIPTextModel", "CLIPTextModelWithProjection"):
        raise TypeError(f"pipeline.text_encoder: expected a CLIPTextModel(WithProjection), "
                        f"got {type(text_encoder).__name__}")
    if type(scheduler).__name__ not in SCHEDULER_CLASSES:
        raise TypeError(f"pipeline.scheduler: expected one of {list(SCHEDULER_CLASSES)}, got {type(scheduler).__name__}")
    if unet.config["cross_attention_dim"] != text_encoder.config["hidden_size"]:
        raise ValueError(f"pipeline.unet: cross_attention_dim={unet.config['cross_attention_dim']}, but the text "
                         f"encoder's hidden_size is {text_encoder.config['hidden_size']}")
    if unet.config["in_channels"] != vae.config["latent_channels"]:
        raise ValueError(f"pipeline.unet: in_channels={unet.config['in_channels']}, but the VAE has "
                         f"latent_channels={vae.config['latent_channels']}")
    if tokenizer.model_max_length > text_encoder.config["max_position_embeddings"]:
        raise ValueError(f"pipeline.tokenizer: model_max_length={tokenizer.model_max_length} exceeds the text "
                         f"encoder's max_position_embeddings={text_encoder.config['max_position_embeddings']}")
    return unet, vae, text_encoder, tokenizer, scheduler


def write_model(folder, model, dtype=np.float32, drop=()):
    """config.json (model_config without the keys in `drop`) + diffusers' weights file."""
    folder.mkdir()
    config = {k: v for k, v in model_config(model).items() if k not in drop}
    files.write_json(folder / CONFIG_NAME, config)
    files.save_arrays(folder / WEIGHTS_NAME, model.state_dict(), dtype)


def write_clip_text_model(folder, text_encoder):
    """text_encoder as transformers' CLIPTextModel folder: text_projection (if any) dropped."""
    folder.mkdir()
    config = {**transformers_config(text_encoder), "architectures": ["CLIPTextModel"]}
    state = {k: v for k, v in text_encoder.state_dict().items() if not k.startswith("text_projection.")}
    files.write_json(folder / "config.json", config)
    files.save_arrays(folder / TEXT_WEIGHTS_NAME, state, np.float32)


def export_stable_diffusion(pipeline, folder):
    """Write `folder` atomically in StableDiffusionPipeline's layout (module docstring), weights
    float32; diffusers.StableDiffusionPipeline.from_pretrained(folder) loads it.

    Parameters
    ----------
    pipeline : a TextToImagePipeline (TextToImagePipeline.from_pretrained reads a tinydiff
        text-to-image folder), or any object with attributes unet (UNet2DConditionModel), vae (AutoencoderKL,
        latents_mean/std optional), text_encoder (CLIPTextModel or CLIPTextModelWithProjection),
        tokenizer (WordTokenizer) and scheduler (DDPMScheduler or DDIMScheduler)
    folder : str or Path (replaced whole if it exists; the caller decides whether it may)

    Returns
    -------
    Path of the folder
    """
    unet, vae, text_encoder, tokenizer, scheduler = check_parts(pipeline)
    scheduler_class = type(scheduler).__name__
    vae = fold_latent_normalization(vae)
    index = {"_class_name": PIPELINE_CLASS, "_tinydiff_version": tinydiff.__version__,
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "PreTrainedTokenizerFast"], "scheduler": ["diffusers", scheduler_class],
             "safety_checker": [None, None], "feature_extractor": [None, None], "image_encoder": [None, None],
             "requires_safety_checker": False}

    def write(tmp):
        write_model(tmp / "unet", unet)
        write_model(tmp / "vae", vae, drop=("latents_mean", "latents_std"))
        write_clip_text_model(tmp / "text_encoder", text_encoder)
        tokenizer.save(tmp / "tokenizer")
        (tmp / "scheduler").mkdir()
        files.write_json(tmp / "scheduler" / "scheduler_config.json",
                         {"_class_name": scheduler_class, **scheduler_config(scheduler)})
        files.write_json(tmp / "model_index.json", index)

    files.write_folder_atomically(folder, write)
    return Path(folder)
