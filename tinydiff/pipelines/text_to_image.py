"""TextToImagePipeline: Stable Diffusion's sampling recipe (Rombach et al. 2022) in one object.

    prompt  --tokenizer-->  ids (B, N)  --frozen text encoder-->  last hidden state (B, N, D)
    z_T ~ N(0, I) (B, C, h, w)
    for t in the scheduler's timesteps:                                 (tinydiff.pipelines.sample)
        eps = uncond + s (cond - uncond)     one UNet forward of 2B: the prompt's states and the
                                             empty (or negative) prompt's (Ho & Salimans 2022, eq. 6)
        z_{t-1} = scheduler.step(eps, t, z_t)
    image = vae.decode(unscale_latents(z_0))  in [-1, 1]

The same five parts as diffusers' StableDiffusionPipeline, under the same attribute names (unet,
vae, text_encoder, tokenizer, scheduler), so `tinydiff export --diffusers` hands them over one by
one. The folder (save_pretrained) has their layout too, plus the recommended guidance scale.
"""

from pathlib import Path

import numpy as np

import tinydiff
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.nn import lora_model
from tinydiff.pipelines import lora_files
from tinydiff.pipelines.guidance import GUIDANCE_SCALE_KEY, check_guidance
from tinydiff.pipelines.latent import decode_latents, load_vae_folder
from tinydiff.pipelines.sampling import sample, scheduler_config, scheduler_from_config
from tinydiff.pipelines.text_encoding import encode_prompts, load_text_encoder

CLASS_NAME = "TextToImagePipeline"
DEFAULT_GUIDANCE_SCALE = 7.5  # Stable Diffusion's, when a folder recommends none
SCHEDULER_KINDS = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim", "DPMSolverMultistepScheduler": "dpm"}


def as_prompt_list(value, name, count=None):
    """A str (repeated `count` times, or once) or a list of str (of length `count` if given)."""
    if isinstance(value, str):
        return [value] * (count or 1)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(p, str) for p in value):
        raise TypeError(f"{name}: expected a str or a non-empty list of str, got {value!r}")
    if count is not None and len(value) != count:
        raise ValueError(f"{name}: expected one per prompt ({count}), got {len(value)}")
    return list(value)


class TextToImagePipeline:
    """Prompts to images with a text-conditional latent UNet.

    Parameters
    ----------
    unet : UNet2DConditionModel
        Denoises the VAE's scaled latents; cross_attention_dim = the text encoder's hidden_size.
    vae : AutoencoderKL
        Decodes latents (with latents_mean/std or scaling_factor in its config).
    text_encoder : CLIPTextModel or CLIPTextModelWithProjection (frozen)
    tokenizer : WordTokenizer
    scheduler : DDPMScheduler, DDIMScheduler or DPMSolverMultistepScheduler
    guidance_scale : float
        The recommended scale: __call__'s default, written to model_index.json.
    """

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, guidance_scale=DEFAULT_GUIDANCE_SCALE):
        width = unet.config.get("cross_attention_dim")
        if width is None:
            raise ValueError(f"unet: expected a text-conditional UNet2DConditionModel, got a {type(unet).__name__}")
        if width != text_encoder.config["hidden_size"]:
            raise ValueError(f"unet: cross_attention_dim={width}, but the text encoder's hidden_size is "
                             f"{text_encoder.config['hidden_size']}")
        if unet.config["in_channels"] != vae.config["latent_channels"]:
            raise ValueError(f"unet: in_channels={unet.config['in_channels']}, but the VAE has latent_channels="
                             f"{vae.config['latent_channels']}")
        self.unet, self.vae, self.text_encoder, self.tokenizer, self.scheduler = \
            unet, vae, text_encoder, tokenizer, scheduler
        self.guidance_scale, _ = check_guidance(guidance_scale, 0.0)
        self.text_encoder.eval()

    def encode(self, prompts):
        """The text encoder's last hidden state (B, N, D) float32 for a list of prompts."""
        return encode_prompts(self.text_encoder, self.tokenizer, prompts)

    def __call__(self, prompt, negative_prompt="", num_images_per_prompt=1, guidance_scale=None,
                 num_inference_steps=50, rng=None, latents=None, guidance_rescale=0.0, guidance_interval=None,
                 eta=0.0, progress=False, return_latents=False, cross_attention_kwargs=None):
        """Images for each prompt.

        Parameters
        ----------
        prompt : str or list of str, length P
        negative_prompt : str or list of str (one per prompt)
            The unconditional branch of guidance: "" (the null condition training learnt, as in
            Stable Diffusion) by default; guidance steers away from what it says.
        num_images_per_prompt : int
            Images per prompt; each prompt's images are consecutive (B = P * num_images_per_prompt).
        guidance_scale : float >= 0, optional
            s of uncond + s (cond - uncond) (= 1 + w of Ho & Salimans); default self.guidance_scale.
            1 runs the conditional model alone (one forward of B per step, no negative prompt).
        num_inference_steps, guidance_rescale, guidance_interval, eta : as tinydiff.pipelines.sample
        rng : numpy.random.Generator
            Draws z_T (unless latents are given) and the noise of stochastic steps.
        latents : ndarray (B, C, h, w), optional
            The initial latents z_T (before init_noise_sigma), e.g. to compare with diffusers.
        progress : bool
            A progress bar over the steps.
        return_latents : bool
            Also return the final latents z_0 (B, C, h, w).
        cross_attention_kwargs : dict, optional
            {"scale": s}: the LoRA scale, as diffusers names it; every unfused adapter of the UNet
            and the text encoder is multiplied by s for this call (0: the base model).

        Returns
        -------
        images : ndarray (B, 3, H, W) float32 in [-1, 1]; and the latents if return_latents
        """
        scale = lora_scale_of(cross_attention_kwargs)
        previous = [lora_model.set_lora_scale(part, scale) for part in (self.unet, self.text_encoder)]
        try:
            return self._call(prompt, negative_prompt, num_images_per_prompt, guidance_scale,
                              num_inference_steps, rng, latents, guidance_rescale, guidance_interval,
                              eta, progress, return_latents)
        finally:
            for part, value in zip((self.unet, self.text_encoder), previous):
                lora_model.set_lora_scale(part, value)

    def _call(self, prompt, negative_prompt, num_images_per_prompt, guidance_scale, num_inference_steps,
              rng, latents, guidance_rescale, guidance_interval, eta, progress, return_latents):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        if isinstance(num_images_per_prompt, bool) or not isinstance(num_images_per_prompt, (int, np.integer)) \
                or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt: expected an integer >= 1, got {num_images_per_prompt!r}")
        prompts = as_prompt_list(prompt, "prompt")
        negatives = as_prompt_list(negative_prompt, "negative_prompt", len(prompts))
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        scale, _ = check_guidance(scale, guidance_rescale)
        cond = np.repeat(self.encode(prompts), num_images_per_prompt, axis=0)  # (P, N, D) -> (B, N, D)
        uncond = None if scale == 1.0 else np.repeat(self.encode(negatives), num_images_per_prompt, axis=0)
        c, s = self.unet.config["in_channels"], self.unet.config["sample_size"]
        z = sample(self.unet, self.scheduler, (len(cond), c, s, s), rng, num_inference_steps, eta=eta,
                   progress=progress, guidance_scale=scale, guidance_rescale=guidance_rescale,
                   guidance_interval=guidance_interval, encoder_hidden_states=cond,
                   negative_encoder_hidden_states=uncond, latents=latents)
        images = np.clip(decode_latents(self.vae, z), -1.0, 1.0).astype(np.float32, copy=False)
        return (images, z) if return_latents else images

    # ---- LoRA adapters (diffusers' method names) ---------------------------------------------
    def adapted_parts(self):
        """(name, model) of the UNet and text encoder, for those that carry LoRA adapters."""
        return [(n, m) for n, m in (("unet", self.unet), ("text_encoder", self.text_encoder))
                if lora_model.lora_layers(m)]

    def get_list_adapters(self):
        """{"unet": [names], "text_encoder": [names]} of the parts with adapters."""
        return {n: lora_model.adapter_names(m) for n, m in self.adapted_parts()}

    def load_lora_weights(self, path, adapter_name=None):
        """Load a pytorch_lora_weights.safetensors (or its folder) onto the UNet and, if it has
        `text_encoder.` keys, the text encoder; returns the adapter's name (default
        "default_0", "default_1", ... as diffusers names them). As in diffusers, it becomes the only
        active adapter of the parts it adapts (set_adapters combines several)."""
        taken = {a for names in self.get_list_adapters().values() for a in names}
        if adapter_name is None:
            adapter_name = next(f"default_{i}" for i in range(len(taken) + 1) if f"default_{i}" not in taken)
        lora_files.load_lora_weights(self.unet, self.text_encoder, path, adapter_name)
        return adapter_name

    def save_lora_weights(self, folder, adapter_name="default"):
        """The adapter of the UNet (and of the text encoder, if it has one of that name)."""
        text = self.text_encoder if adapter_name in lora_model.adapter_names(self.text_encoder) else None
        return lora_files.save_lora_weights(folder, unet=self.unet, text_encoder=text, adapter_name=adapter_name)

    def set_adapters(self, adapter_names, adapter_weights=None):
        """Exactly these adapters active, adapter k at weight w_k (default 1), in both parts."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        weights = adapter_weights if isinstance(adapter_weights, (list, tuple)) else [adapter_weights] * len(names)
        if len(weights) != len(names):
            raise ValueError(f"adapter_weights: expected {len(names)} weights for adapters {names}, got {len(weights)}")
        known = self.get_list_adapters()
        unknown = [n for n in names if not any(n in v for v in known.values())]
        if unknown:
            raise ValueError(f"adapter_names: {unknown} are not loaded (adapters: {known})")
        for part, model in self.adapted_parts():
            pairs = [(n, 1.0 if w is None else w) for n, w in zip(names, weights) if n in known[part]]
            lora_model.set_adapters(model, [n for n, _ in pairs], [w for _, w in pairs])

    def fuse_lora(self, lora_scale=1.0, adapter_names=None):
        """Merge the (active, or the named) adapters into the weights of both parts."""
        parts = self.adapted_parts()
        if not parts:
            raise ValueError("fuse_lora: no LoRA adapters are loaded")
        for _, model in parts:
            lora_model.fuse_lora(model, lora_scale, adapter_names)

    def unfuse_lora(self):
        """Back to the weights before fuse_lora, exactly."""
        for _, model in self.adapted_parts():
            lora_model.unfuse_lora(model)

    def unload_lora_weights(self):
        """Remove every adapter (fused ones stay merged in the weights, as in diffusers)."""
        for _, model in self.adapted_parts():
            lora_model.unload_lora(model)

    # ---- the folder ------------------------------------------------------------------------
    def save_pretrained(self, path, dtype=np.float32, guidance_scale=None):
        """Write the pipeline folder atomically: model_index.json (with the recommended guidance
        scale, default self.guidance_scale), unet/, vae/ (tinydiff/diffusers model folders),
        text_encoder/ (a transformers folder), tokenizer/ and scheduler/scheduler_config.json.
        dtype=np.float16 halves the weights' size."""
        scale, _ = check_guidance(self.guidance_scale if guidance_scale is None else guidance_scale, 0.0)
        if self.adapted_parts():
            raise ValueError(f"save_pretrained: the {[n for n, _ in self.adapted_parts()]} carry LoRA adapters; "
                             f"save them with save_lora_weights, or fuse_lora() and unload_lora_weights() first")
        kind = type(self.scheduler).__name__
        if kind not in SCHEDULER_KINDS:
            raise TypeError(f"scheduler: expected one of {sorted(SCHEDULER_KINDS)}, got {kind}")

        def write(tmp):
            for part, model in (("unet", self.unet), ("vae", self.vae)):
                (tmp / part).mkdir()
                ckpt.write_json(tmp / part / ckpt.CONFIG_NAME, ckpt.model_config(model))
                ckpt.save_arrays(tmp / part / ckpt.WEIGHTS_NAME, model.state_dict(), dtype)
            self.text_encoder.save_pretrained(tmp / "text_encoder", dtype)
            self.tokenizer.save(tmp / "tokenizer")
            (tmp / "scheduler").mkdir()
            ckpt.write_json(tmp / "scheduler" / "scheduler_config.json",
                            {"_class_name": kind, **scheduler_config(self.scheduler)})
            ckpt.write_json(tmp / "model_index.json", {
                "_class_name": CLASS_NAME, "_tinydiff_version": tinydiff.__version__,
                "unet": ["diffusers", type(self.unet).__name__], "vae": ["diffusers", type(self.vae).__name__],
                "text_encoder": ["transformers", type(self.text_encoder).__name__],
                "tokenizer": ["transformers", "PreTrainedTokenizerFast"], "scheduler": ["diffusers", kind],
                GUIDANCE_SCALE_KEY: scale})

        ckpt.write_folder_atomically(path, write)

    @classmethod
    def from_pretrained(cls, path):
        """The pipeline a folder written by save_pretrained holds (weights as float32). A
        problem is one line naming the file: FileNotFoundError for a missing part, ValueError
        for a wrong one."""
        path = Path(path)
        ckpt.recover_folder(path)
        if not is_text_to_image_folder(path):
            raise FileNotFoundError(f"{path}: not a text-to-image pipeline folder (expected model_index.json with "
                                    f"_class_name {CLASS_NAME!r})")
        index = ckpt.check_pipeline_index(path)
        for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
            if part not in index or not (path / part).is_dir():
                raise FileNotFoundError(f"{path}: a {CLASS_NAME} folder needs {part}/ (and its entry in model_index.json)")
        unet = ckpt.load_model(path / "unet")
        if type(unet).__name__ != "UNet2DConditionModel":
            raise ValueError(f"{path / 'unet'}: holds a {type(unet).__name__}, expected a UNet2DConditionModel")
        vae = load_vae_folder(path / "vae")
        text_encoder, tokenizer = load_text_encoder(path)
        config_file = path / "scheduler" / "scheduler_config.json"
        config = ckpt.read_json(config_file)
        kind = SCHEDULER_KINDS.get(config.get("_class_name"), "ddpm")
        try:
            scheduler = scheduler_from_config(kind, {k: v for k, v in config.items() if not k.startswith("_")})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{config_file}: {err}") from None
        scale = index.get(GUIDANCE_SCALE_KEY, DEFAULT_GUIDANCE_SCALE)
        try:
            return cls(unet, vae, text_encoder, tokenizer, scheduler, guidance_scale=scale)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None


def lora_scale_of(cross_attention_kwargs):
    """s of cross_attention_kwargs={"scale": s} (1.0 without it); other keys are refused."""
    if cross_attention_kwargs is None:
        return 1.0
    if not isinstance(cross_attention_kwargs, dict):
        raise TypeError(f"cross_attention_kwargs: expected a dict such as {{'scale': 0.5}}, got "
                        f"{type(cross_attention_kwargs).__name__}")
    other = sorted(set(cross_attention_kwargs) - {"scale"})
    if other:
        raise ValueError(f"cross_attention_kwargs: tinydiff reads only 'scale' (the LoRA scale), got {other}")
    scale = cross_attention_kwargs.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) or not np.isfinite(scale):
        raise ValueError(f"cross_attention_kwargs: 'scale' must be a finite number, got {scale!r}")
    return float(scale)


def is_text_to_image_folder(path):
    """Whether `path` holds a model_index.json naming TextToImagePipeline."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return False
    try:
        return ckpt.read_json(index).get("_class_name") == CLASS_NAME
    except ValueError:
        return False
