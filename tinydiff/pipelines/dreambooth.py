"""DreamBooth (Ruiz et al. 2022): teach a trained text-to-image model a new subject from a few
images, bound to a rare word, with a LoRA adapter (Hu et al. 2021) or by fine-tuning the whole UNet.

Notation: x the instance images' latents, c the instance prompt's text states ("a sks shape"),
x_pr the class images' latents and c_pr the class prompt's ("a shape"), x^_theta the UNet's
prediction (here through v-prediction, as the shipped model), w_t the loss weight.

    before training   x_pr = the FROZEN model's own samples of the class prompt (num_class_images,
                      guidance as shipped, keyed by the seed): what it believes "a shape" is
    each step         loss = E w_t ||x^_theta(alpha_t x + sigma_t eps, c) - x||^2
                           + lambda E w_t' ||x^_theta(alpha_t' x_pr + sigma_t' eps', c_pr) - x_pr||^2
                                                        (Ruiz et al. 2022, eq. 2; lambda = prior_loss_weight)
                      the second term only --with-prior-preservation. It keeps the class prompt
                      (and what shares its words) meaning what it meant: without it, "a shape"
                      drifts towards the new subject (the paper's language drift).

Why the class images are the model's own: the prior term must hold the model to ITS prior, not
to the data set it was trained on (which a user fine-tuning a shared model does not have).
They are kept as latents (the sampler's z_0), so training needs no VAE encoder pass for them.

The identifier is a reserved rare word of the tokenizer (tinydiff.data.captions.RARE_WORDS): the
frozen text encoder gives it states the UNet never saw, and the UNet (its LoRA adapter) learns
what they mean. The adapter file is then all a user shares.

Every random draw is keyed by (seed, purpose, step): the LoRA init (seed, 53), the class images
(seed, 47, batch), the step's class batch (seed, 11, step), its posterior noise (seed, 13,
step), its timesteps and noise (seed, 3, step, as Trainer). Same seed, same adapter.
"""

from dataclasses import asdict, dataclass

import numpy as np

import tinydiff
from tinydiff.data.captions import RARE_WORDS, split_words
from tinydiff.optim import EMA, AdamW
from tinydiff.pipelines.latent import encode_images, latent_shift_and_scale
from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pipelines.train import Trainer
from tinydiff.viz.tiles import save_labelled_grid

LORA_FILE = "pytorch_lora_weights.safetensors"
SAMPLE_PROMPTS = ("a sks shape", "a blue sks shape at the bottom right", "a shape", "a red circle")


@dataclass
class DreamBoothConfig:
    """What DreamBooth adds to a TrainConfig.

    instance_prompt : str naming one of RARE_WORDS ("a sks shape")
    class_prompt : str, what the subject is an instance of ("a shape")
    with_prior_preservation : bool;  prior_loss_weight : float >= 0, lambda of eq. 2
    num_class_images : int >= 1, generated once before training
    class_batch_size : int >= 1, class images per step (the instance batch is all instance images)
    lora_rank : int >= 1, or None for full fine-tuning of the UNet
    lora_alpha : float or None (None: alpha = rank, scale 1)
    lora_target_modules : tuple of str, the module path suffixes adapted (add_lora's target_modules)
    class_steps : int, DDIM steps of the class images
    """

    instance_prompt: str = "a sks shape"
    class_prompt: str = "a shape"
    with_prior_preservation: bool = False
    prior_loss_weight: float = 1.0
    num_class_images: int = 200
    class_batch_size: int = 4
    lora_rank: int = 4
    lora_alpha: float = None
    lora_target_modules: tuple = ("to_q", "to_k", "to_v", "to_out.0")
    class_steps: int = 25

    def validate(self, tokenizer):
        words = split_words(self.instance_prompt) if isinstance(self.instance_prompt, str) else []
        if not any(w in RARE_WORDS for w in words):
            raise ValueError(f"instance_prompt: expected a prompt naming one of the reserved rare words "
                             f"{RARE_WORDS} (e.g. 'a sks shape'), got {self.instance_prompt!r}")
        for name in ("instance_prompt", "class_prompt"):
            try:
                tokenizer(getattr(self, name))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name}: {err}") from None
        for name in ("num_class_images", "class_batch_size", "class_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.lora_rank is not None and (isinstance(self.lora_rank, bool) or
                                           not isinstance(self.lora_rank, (int, np.integer)) or self.lora_rank < 1):
            raise ValueError(f"lora_rank: expected an integer >= 1 or None (full fine-tuning), got {self.lora_rank!r}")
        targets = self.lora_target_modules
        if isinstance(targets, str) or not isinstance(targets, (tuple, list)) or not targets or \
                not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"lora_target_modules: expected a non-empty tuple of module path suffixes "
                             f"(e.g. ('to_q', 'ff.net.2')), got {targets!r}")
        w = self.prior_loss_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ValueError(f"prior_loss_weight: expected a finite number >= 0, got {w!r}")
        if self.with_prior_preservation and self.class_batch_size > self.num_class_images:
            raise ValueError(f"class_batch_size: {self.class_batch_size} is more than num_class_images "
                             f"({self.num_class_images})")


def generate_class_images(pipe, prompt, count, seed, num_inference_steps=25, batch_size=50, progress=False):
    """The model's own samples of `prompt` (count of them): (latents z_0 (count, c, h, w),
    images (count, 3, H, W) in [-1, 1]). Batch k draws from np.random.default_rng((seed, 47, k)),
    so the set does not depend on anything but the seed and the batch size."""
    latents, images = [], []
    for k, start in enumerate(range(0, count, batch_size)):
        n = min(batch_size, count - start)
        x, z = pipe(prompt, num_images_per_prompt=n, num_inference_steps=num_inference_steps,
                    rng=np.random.default_rng((seed, 47, k)), return_latents=True, progress=progress)
        images.append(x)
        latents.append(z)
    return np.concatenate(latents).astype(np.float32), np.concatenate(images)


class DreamBoothData:
    """data(step) -> (z_0 (B, c, h, w), encoder_hidden_states (B, N, D)); data.weight (B,).

    B = the n instance images (each step all of them: a fresh draw of their VAE posterior) and,
    with class latents, m of them drawn without replacement. weight makes mean_b(w_b mse_b) equal
    eq. 2's mean instance MSE + lambda * mean class MSE: w = (n + m) / n on instances and
    lambda (n + m) / m on class images."""

    def __init__(self, mean, std, shift, scale, instance_states, seed, class_latents=None, class_states=None,
                 class_batch_size=4, prior_loss_weight=1.0, empty_states=None, cond_drop_prob=0.0):
        self.mean, self.std, self.shift, self.scale = mean, std, shift, scale
        self.instance_states, self.seed = instance_states, seed
        self.class_latents, self.class_states = class_latents, class_states
        self.m = 0 if class_latents is None else class_batch_size
        self.prior_loss_weight = prior_loss_weight
        self.empty_states, self.cond_drop_prob = empty_states, cond_drop_prob

    @property
    def weight(self):
        """(n + m,) float64: the per-sample loss weights, the same every step."""
        n, m = len(self.mean), self.m
        prior = np.full(m, self.prior_loss_weight * (n + m) / m) if m else np.zeros(0)
        return np.concatenate([np.full(n, (n + m) / n), prior])

    def __call__(self, step):
        n, m = len(self.mean), self.m
        eps = np.random.default_rng((self.seed, 13, step)).standard_normal(self.mean.shape)
        z = ((self.mean + self.std * eps - self.shift) * self.scale).astype(np.float32)  # (n, c, h, w)
        states = np.repeat(self.instance_states, n, axis=0)  # (1, N, D) -> (n, N, D)
        if m:
            pick = np.random.default_rng((self.seed, 11, step)).choice(len(self.class_latents), m, replace=False)
            z = np.concatenate([z, self.class_latents[pick]])
            states = np.concatenate([states, np.repeat(self.class_states, m, axis=0)])
        if self.cond_drop_prob > 0:  # the empty prompt, as the base model was trained (Ho & Salimans 2022):
            # guidance's unconditional branch is trained too, not left to drift with the adapter
            drop = np.random.default_rng((self.seed, 19, step)).random(len(z)) < self.cond_drop_prob
            states = np.where(drop[:, None, None], self.empty_states, states)
        return z, states


class DreamBoothTrainer(Trainer):
    """Fine-tune pipe.unet on the instance images (and, with prior preservation, the class images).

    Parameters
    ----------
    pipe : TextToImagePipeline (its unet is trained in place: LoRA-wrapped, or all of it)
    instance_images : ndarray (n, 3, H, W) in [-1, 1]
    db : DreamBoothConfig;  config : TrainConfig (steps, lr, seed, checkpoint_every, ...)
    out_dir : path; gets checkpoints/, samples/ and final/ (LoRA: final/
        pytorch_lora_weights.safetensors; full: a TextToImagePipeline folder)
    class_latents : ndarray (num_class_images, c, h, w), optional: reuse these (a resumed run's)
        instead of generating them
    """

    def __init__(self, pipe, instance_images, db, config, out_dir, progress=True, settings=None, class_latents=None):
        db.validate(pipe.tokenizer)
        self.pipe, self.db = pipe, db
        unet = pipe.unet
        if db.lora_rank is not None:
            from tinydiff.nn.lora_model import add_lora

            self.adapted = add_lora(unet, rank=db.lora_rank, alpha=db.lora_alpha, target_modules=db.lora_target_modules,
                                    rng=np.random.default_rng((config.seed, 53)))
        else:
            self.adapted = []
        super().__init__(unet, pipe.scheduler, None, config, out_dir, progress, settings)
        if db.lora_rank is not None:
            from tinydiff.nn.lora_model import lora_parameters

            self.params = lora_parameters(unet)
            self.optimizer = AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
            self.ema = EMA(self.params, decay=config.ema_decay)
        self.class_latents = class_latents
        if db.with_prior_preservation and class_latents is None:
            self.class_latents = self.make_class_images()
        mean, std = encode_images(pipe.vae, np.asarray(instance_images, dtype=np.float32))
        shift, scale = latent_shift_and_scale(pipe.vae)
        self.data = DreamBoothData(mean, std, shift, scale, pipe.encode([db.instance_prompt]), config.seed,
                                   self.class_latents if db.with_prior_preservation else None,
                                   pipe.encode([db.class_prompt]), db.class_batch_size, db.prior_loss_weight,
                                   pipe.encode([""]), config.cond_drop_prob)

    def make_class_images(self):
        """Generate the class images with the still untouched model (LoRA's B = 0); return their latents."""
        db = self.db
        if self.progress:
            print(f"generating {db.num_class_images} class images of {db.class_prompt!r} with the model itself")
        self.pipe.unet.eval()
        z, _ = generate_class_images(self.pipe, db.class_prompt, db.num_class_images, self.config.seed,
                                          db.class_steps, progress=False)
        return z

    def batch(self, step):
        """Trainer.batch (x_t, t, encoder_hidden_states, target, weight) with eq. 2's two terms
        weighted by the data's per-sample weights (times min-SNR's, if any)."""
        x_t, t, states, target, snr_weight = super().batch(step)
        weight = self.data.weight
        return x_t, t, states, target, weight if snr_weight is None else weight * snr_weight

    def check_finite_weights(self):
        super().check_finite_weights() if self.db.lora_rank is None else None
        for p, shadow in zip(self.params, self.ema.shadow):
            if not (np.all(np.isfinite(p.data)) and np.all(np.isfinite(shadow))):
                from tinydiff.pipelines.train import TrainingDiverged

                raise TrainingDiverged(f"training stopped at step {self.step}: the adapter holds NaN or inf, so it "
                                       f"was not saved; {self.where_to_resume()}. A lower learning rate "
                                       f"(now {self.config.lr}) usually helps.")

    def save_final(self):
        """final/: the adapter (LoRA) or the whole pipeline (full), written atomically."""
        from tinydiff.files import write_folder_atomically, write_json

        with self.ema.swap_in():
            if self.db.lora_rank is None:
                self.pipe.save_pretrained(self.out_dir / "final")
            else:
                from tinydiff.pipelines.lora_files import save_lora_weights

                def write(tmp):
                    save_lora_weights(tmp, unet=self.model)
                    write_json(tmp / "dreambooth.json", {"_tinydiff_version": tinydiff.__version__, **asdict(self.db),
                                                         "steps": self.step, "seed": self.config.seed})

                write_folder_atomically(self.out_dir / "final", write)

    def save_samples(self):
        """samples/step-N.png: SAMPLE_PROMPTS, one column each, 4 rows."""
        prompts = [SAMPLE_PROMPTS[i % len(SAMPLE_PROMPTS)] for i in range(16)]
        ddim = scheduler_from_config("ddim", scheduler_config(self.scheduler))
        pipe = TextToImagePipeline(self.model, self.pipe.vae, self.pipe.text_encoder, self.pipe.tokenizer, ddim,
                                   self.pipe.guidance_scale)
        with self.ema.swap_in():
            self.model.eval()
            x = pipe(prompts, num_inference_steps=self.config.sample_steps, rng=np.random.default_rng(self.config.seed))
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        title = f"step {self.step}; " + "; ".join(f"{i + 1}: {p}" for i, p in enumerate(SAMPLE_PROMPTS))
        return save_labelled_grid(folder / f"step-{self.step:07d}.png", x, title,
                                  [str(i + 1) for i in range(len(SAMPLE_PROMPTS))], len(SAMPLE_PROMPTS))


__all__ = ["DreamBoothConfig", "DreamBoothData", "DreamBoothTrainer",
           "generate_class_images", "LORA_FILE"]
