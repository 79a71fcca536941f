"""Training a text-to-image latent UNet, Stable Diffusion's recipe (Rombach et al. 2022) on
captioned Shapes:

    once:       z = vae.encode(image) for N images, their attributes kept   (a frozen VAE)
    each step:  the batch's images (reshuffled each epoch, as LatentEpochs)
                FRESH captions of those images' attributes: a random template and a random
                subset of the attributes (partial captions), so one image is described in
                many ways over the epochs
                caption <- "" with probability cond_drop_prob  (Ho & Salimans 2022, Algorithm 1,
                line 3, with the null condition = the empty prompt, as Stable Diffusion)
                encoder_hidden_states = frozen text encoder's last hidden state (B, N, D)
                the usual diffusion loss on z_0, with the UNet called as unet(z_t, t, states)

Everything random is keyed by (seed, step) (captions 23, dropout 19, as the class labels'
dropout), so a resumed run sees the same captions, and the same dropped ones, as one that ran
through.

Why captions are drawn per step rather than once per image: with one fixed caption an image is
only ever called, say, "a red shape", and the model never learns that "a small red circle at
the top" describes it too. Partial captions teach what a left-out attribute means: anything.
"""

from pathlib import Path

import numpy as np

from tinydiff.data.captions import CaptionedShapes, _caption_for
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.latent import (LatentEpochs, LatentTrainer, decode_latents, encode_images,
                                       latent_shift_and_scale, load_pipeline_vae)
from tinydiff.pipelines.run_settings import TEXT_ENCODER_SHA256
from tinydiff.pipelines.sampling import sample, scheduler_config, scheduler_from_config
from tinydiff.pipelines.text_encoding import encode_prompts, load_text_encoder, text_encoder_sha256
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.viz.tiles import save_labelled_grid

# the prompts of the sample grids drawn during training, one column each (parse_caption reads
# every one; none names a held-out colour and shape pair)
SAMPLE_PROMPTS = ("a red circle", "a large blue square at the top left", "a small green triangle on the right",
                  "a shape at the bottom")
# the guidance scale a trained run's final/ recommends (and its sample grids use)
TRAINED_GUIDANCE_SCALE = 4.0


def draw_captions(attributes, rng, p_full=0.5):
    """One caption per image from its attributes, by CaptionedShapes' own policy (write_caption
    naming all four with probability p_full, else a uniformly drawn proper subset of them,
    possibly none: "a shape"; a uniform template), but drawn from `rng`, not from the image's
    fixed key: each epoch describes an image anew.

    Parameters
    ----------
    attributes : int array (B, 5), each row (shape, colour, size, row, col) as ShapeLabels
    rng : numpy.random.Generator

    Returns
    -------
    list of B str
    """
    return [_caption_for(row, rng, p_full) for row in np.asarray(attributes).tolist()]


def drop_captions(captions, prob, key):
    """Condition dropout for text (Ho & Salimans 2022, Algorithm 1, line 3, with the null
    condition = the empty prompt): each caption becomes "" with probability prob, drawn from
    np.random.default_rng(key) (as guidance.drop_condition for class labels)."""
    if prob == 0:
        return list(captions)
    drop = np.random.default_rng(key).random(len(captions)) < prob  # (B,) bool
    return ["" if d else c for c, d in zip(captions, drop)]


class CaptionedLatents:
    """data(step) -> (z_0 (B, C, h, w) scaled latents, encoder_hidden_states (B, N, D) float32).

    Parameters
    ----------
    latents : LatentEpochs
        Over the encoded images, with labels = their attributes (N, 5) (shape, colour, size,
        row, col).
    text_encoder, tokenizer : the frozen text encoder (CLIPTextModel[WithProjection]) and its WordTokenizer
    cond_drop_prob : float in [0, 1), the share of captions replaced by ""
    seed : int
    p_full : float, the share of captions naming all four attributes
    """

    def __init__(self, latents, text_encoder, tokenizer, cond_drop_prob, seed, p_full=0.5):
        if latents.labels is None or np.ndim(latents.labels) != 2 or np.shape(latents.labels)[1] != 5:
            raise ValueError("latents: expected LatentEpochs whose labels are the images' attributes (N, 5)")
        self.latents, self.text_encoder, self.tokenizer = latents, text_encoder, tokenizer
        self.cond_drop_prob, self.seed, self.p_full = float(cond_drop_prob), seed, p_full
        self.num_classes = None

    def captions(self, step):
        """The batch's captions of step `step`, after dropout ("" where dropped)."""
        _, attributes = self.latents(step)
        captions = draw_captions(attributes, np.random.default_rng((self.seed, 23, step)), self.p_full)
        return drop_captions(captions, self.cond_drop_prob, (self.seed, 19, step))

    def __call__(self, step):
        z, _ = self.latents(step)
        return z, encode_prompts(self.text_encoder, self.tokenizer, self.captions(step))  # (B, N, D)


def captioned_latent_source(vae, text_encoder, tokenizer, num_images, batch_size, seed, cond_drop_prob,
                            image_size=32, p_full=0.5):
    """Encode the first num_images images of CaptionedShapes(size=image_size, seed=seed) (the
    train split: no held-out pair) with the VAE once, and return the CaptionedLatents over them."""
    images, _, labels = CaptionedShapes(size=image_size, seed=seed).get(np.arange(num_images))
    attributes = np.stack([labels.shape, labels.colour, labels.size, labels.row, labels.col], axis=1)  # (N, 5)
    mean, std = encode_images(vae, images)
    shift, scale = latent_shift_and_scale(vae)
    latents = LatentEpochs(mean, std, scale, batch_size, seed, labels=attributes, shift=shift)
    return CaptionedLatents(latents, text_encoder, tokenizer, cond_drop_prob, seed, p_full)


class TextToImageTrainer(LatentTrainer):
    """LatentTrainer for a UNet2DConditionModel on CaptionedLatents: the condition is the
    captions' encoder_hidden_states, dropped to the empty prompt's by the data source (which
    must use config.cond_drop_prob). final/ is a TextToImagePipeline folder (DDIM scheduler,
    recommended guidance_scale); the sample grids show sample_prompts, one column each."""

    def __init__(self, model, scheduler, vae, text_encoder, tokenizer, data, config, out_dir, progress=True,
                 settings=None, parallel=None, guidance_scale=TRAINED_GUIDANCE_SCALE, sample_prompts=SAMPLE_PROMPTS):
        if model.config.get("cross_attention_dim") is None:
            raise ValueError(f"model: expected a text-conditional UNet2DConditionModel, got a {type(model).__name__}")
        if getattr(data, "cond_drop_prob", None) != config.cond_drop_prob:
            raise ValueError(f"data: drops captions with probability {getattr(data, 'cond_drop_prob', None)}, but "
                             f"config.cond_drop_prob is {config.cond_drop_prob}; build the source with the config's")
        super().__init__(model, scheduler, vae, data, config, out_dir, progress, settings, parallel)
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.guidance_scale, self.sample_prompts = guidance_scale, tuple(sample_prompts)

    def pipeline(self):
        """The TextToImagePipeline of the current (or, inside ema.swap_in, the EMA) weights."""
        ddim = scheduler_from_config("ddim", scheduler_config(self.scheduler))
        return TextToImagePipeline(self.model, self.vae, self.text_encoder, self.tokenizer, ddim, self.guidance_scale)

    def save_final(self):
        with self.ema.swap_in():
            self.pipeline().save_pretrained(self.out_dir / "final")

    def save_samples(self):
        """samples/step-N.png: config.num_samples images, the prompts cycling over the columns."""
        cfg, k = self.config, len(self.sample_prompts)
        prompts = [self.sample_prompts[i % k] for i in range(cfg.num_samples)]
        cond = encode_prompts(self.text_encoder, self.tokenizer, prompts)
        c, s = self.model.config["in_channels"], self.model.config["sample_size"]
        ddim = scheduler_from_config("ddim", scheduler_config(self.scheduler))
        with self.ema.swap_in():
            z = sample(self.model, ddim, (cfg.num_samples, c, s, s), np.random.default_rng(cfg.seed), cfg.sample_steps,
                       guidance_scale=self.guidance_scale, encoder_hidden_states=cond,
                       negative_encoder_hidden_states=encode_prompts(self.text_encoder, self.tokenizer, [""]))
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        title = f"step {self.step}, guidance {self.guidance_scale:g}; " + "; ".join(
            f"{i + 1}: {p}" for i, p in enumerate(self.sample_prompts))
        return save_labelled_grid(folder / f"step-{self.step:07d}.png", decode_latents(self.vae, z), title,
                                  [str(i + 1) for i in range(min(k, cfg.num_samples))], min(k, cfg.num_samples))


def text_run_settings(path):
    """The run settings of a text-to-image run's checkpoint folder (its trainer_state.json's
    run_settings, which name --text-encoder), or None for any other folder."""
    state_file = Path(path) / "trainer_state.json"
    try:
        settings = ckpt.read_json(state_file).get("run_settings") if state_file.is_file() else None
    except (ValueError, AttributeError):
        return None  # pipeline_from_checkpoint's callers then report the folder as not a pipeline
    return settings if isinstance(settings, dict) and settings.get("text_encoder") else None


def pipeline_from_checkpoint(path):
    """The TextToImagePipeline of a text-to-image run's checkpoint folder (RUN/checkpoints/step-N),
    to sample a run while it trains: the checkpoint's EMA UNet, the run's VAE (RUN/vae), the
    text encoder its --text-encoder names (refused if its weights are not the ones the run
    recorded), DDIM and TRAINED_GUIDANCE_SCALE. FileNotFoundError / ValueError name the file."""
    path = Path(path)
    settings = text_run_settings(path)
    if settings is None:
        raise FileNotFoundError(f"{path}: not a checkpoint of a text-to-image run (its trainer_state.json names no "
                                f"--text-encoder)")
    folder, recorded = Path(settings["text_encoder"]), settings.get(TEXT_ENCODER_SHA256)
    if recorded is not None and text_encoder_sha256(folder) not in (None, recorded):
        raise ValueError(f"{folder}: its text_encoder/model.safetensors is not the one the run of {path} was trained "
                         f"with (sha256 {recorded[:12]}... then); put the run's text encoder back")
    unet = ckpt.model_from_checkpoint(path)
    if unet.config.get("cross_attention_dim") is None:
        raise ValueError(f"{path}: holds a {type(unet).__name__}, expected a text-conditional UNet2DConditionModel")
    vae = load_pipeline_vae(path)
    if vae is None:
        raise FileNotFoundError(f"{path}: the run's VAE ({path.parent.parent / 'vae'}) is missing")
    text_encoder, tokenizer = load_text_encoder(folder)
    config_file = path / "scheduler_config.json"
    config = {k: v for k, v in ckpt.read_json(config_file).items() if not k.startswith("_")}
    try:
        return TextToImagePipeline(unet, vae, text_encoder, tokenizer, scheduler_from_config("ddim", config),
                                   guidance_scale=TRAINED_GUIDANCE_SCALE)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
