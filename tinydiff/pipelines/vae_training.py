"""Training the VAE (Kingma & Welling 2014; Rombach et al. 2022, sec. 3):

    repeat:  x ~ data,  eps ~ N(0, I)
             q(z|x) = N(mean, var) = encode(x);  z = mean + sqrt(var) eps   (reparameterisation)
             loss = reconstruction(decode(z), x) + beta * KL(q(z|x) || N(0, I)) / D

reconstruction is the mean absolute (L1) or squared (MSE) error per pixel; the KL is summed
over the latent and divided by D = C * H * W, the pixels of one image, so that beta weighs two
per-pixel quantities. A small beta (Stable Diffusion's VAE used 1e-6 on summed terms) keeps
reconstructions sharp and lets the latents' scale drift; the scaling factor 1 / std(z),
computed from data at the end and stored in the VAE's config, brings them back to unit
variance for the diffusion model.

Randomness is keyed by (seed, step) as in tinydiff.pipelines.train, so an interrupted and
resumed run ends with the same weights. VAETrainer reuses Trainer's loop, checkpoints and
resume; it replaces what one step does and what the run leaves behind.
"""

from dataclasses import dataclass

import numpy as np

from tinydiff.nn.checks import check_float_array
from tinydiff.optim import clip_grad_norm_, cosine_with_warmup
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.train import TrainConfig, Trainer
from tinydiff.pipelines.train_config import check_choice_field, check_float_field, check_int_field
from tinydiff.viz.tiles import save_labelled_grid

RECONSTRUCTION_LOSSES = ("l1", "mse")


def reconstruction_loss(pred, target, kind="l1"):
    """(loss, dpred): the mean |pred - target| (kind="l1") or (pred - target)^2 ("mse")."""
    check_float_array(pred, "pred")
    check_float_array(target, "target", dtype=pred.dtype)
    if pred.shape != target.shape:
        raise ValueError(f"reconstruction_loss: target must have pred's shape {pred.shape}, got {target.shape}")
    diff = pred - target
    if kind == "l1":
        loss, grad = np.abs(diff).mean(), np.sign(diff) / diff.size
    elif kind == "mse":
        loss, grad = (diff * diff).mean(), 2.0 * diff / diff.size
    else:
        raise ValueError(f"reconstruction: expected one of {RECONSTRUCTION_LOSSES}, got {kind!r}")
    if not np.isfinite(loss):
        raise FloatingPointError(f"reconstruction_loss: the loss is not finite ({loss})")
    return float(loss), grad.astype(pred.dtype, copy=False)


def psnr(x, y, data_range=2.0):
    """Peak signal-to-noise ratio in dB of the whole set: 10 log10(range^2 / MSE), one MSE
    over all pixels of all images (lower than the mean of per-image PSNRs, never higher).
    Images in [-1, 1] have range 2."""
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def in_batches(fn, x, batch_size=128):
    return np.concatenate([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def reconstruct(vae, images, batch_size=128):
    """decode(mean of q(z|x)), in eval mode: the VAE's deterministic reconstruction."""
    vae.eval()
    return in_batches(lambda x: vae.decode(vae.encode(x).mean), images, batch_size)


def sampled_latents(vae, images, rng, batch_size=128):
    """z ~ q(z|x) for every image, float64 (N, latent_channels, h, w)."""
    vae.eval()
    return in_batches(lambda x: vae.encode(x).sample(generator=rng), images, batch_size).astype(np.float64)


def latent_scaling_factor(vae, images, rng, batch_size=128):
    """1 / std of sampled latents z ~ q(z|x) over `images` (every element pooled), as
    Rombach et al. 2022 (sec. 4.3.2, 'rescale the latent') chose Stable Diffusion's 0.18215."""
    return float(1.0 / sampled_latents(vae, images, rng, batch_size).std())


def latent_channel_statistics(vae, images, rng, batch_size=128):
    """(latents_mean, latents_std): per latent channel, the mean and std of sampled latents
    z ~ q(z|x) over `images`, lists of floats for the VAE's config."""
    z = sampled_latents(vae, images, rng, batch_size)
    return z.mean(axis=(0, 2, 3)).tolist(), z.std(axis=(0, 2, 3)).tolist()


LATENT_NORMS = ("channel", "global")


@dataclass
class VAETrainConfig(TrainConfig):
    """TrainConfig's fields (its diffusion-only ones, min_snr_gamma and sample_steps, are
    unused) plus the VAE loss. num_samples is how many reconstructions the grids show."""

    lr: float = 2e-3
    ema_decay: float = 0.99
    beta: float = 1e-4
    reconstruction: str = "mse"
    scale_images: int = 1024  # images the latent scaling factor is measured on
    # "channel": latents_mean and latents_std per channel (scaling_factor 1); "global": one
    # scaling_factor (see tinydiff.pipelines.latent.scale_latents)
    latent_norm: str = "channel"

    def validate(self):
        super().validate()
        check_choice_field("reconstruction", self.reconstruction, RECONSTRUCTION_LOSSES)
        check_float_field("beta", self.beta, 0)
        check_choice_field("latent_norm", self.latent_norm, LATENT_NORMS)
        check_int_field("scale_images", self.scale_images, 2)


class VAETrainer(Trainer):
    """Train an AutoencoderKL on images from data(step) -> (x (B, C, H, W), labels or None).

    out_dir gets checkpoints/ (resumable), samples/ (reconstruction grids: originals on top)
    and final/: a model folder of the EMA weights whose config holds the measured
    scaling_factor (load it with tinydiff.pipelines.checkpoint.load_model).
    """

    def __init__(self, vae, data, config, out_dir, progress=True, settings=None):
        # no noise schedule, and one process: the loss reads the whole batch's posterior
        super().__init__(vae, None, data, config, out_dir, progress, settings)

    def batch(self, step):
        """(x, eps): the images and the reparameterisation noise of step `step`."""
        x, _ = self.data(step)
        shape = self.model.latent_shape(len(x), x.shape[2])
        noise = np.random.default_rng((self.config.seed, 5, step)).standard_normal(shape).astype(x.dtype)
        return x, noise

    def loss(self, x, noise):
        """(loss, d reconstruction, d KL per sample, parts) for one forward pass."""
        cfg = self.config
        out = self.model(x, noise)
        rec, drec = reconstruction_loss(out, x, cfg.reconstruction)
        kl = self.model.posterior.kl()  # (B,)
        pixels = x[0].size
        loss = rec + cfg.beta * float(kl.mean()) / pixels
        if not np.isfinite(loss):
            raise FloatingPointError(f"VAE loss is not finite (reconstruction {rec}, KL {kl.mean()})")
        dkl = np.full(len(x), cfg.beta / (len(x) * pixels), dtype=x.dtype)
        return loss, drec, dkl, {"reconstruction": rec, "kl": float(kl.mean())}

    def train_step(self, step):
        cfg = self.config
        x, noise = self.batch(step)
        self.model.train()
        loss, drec, dkl, _ = self.loss(x, noise)
        self.model.zero_grad()
        self.model.backward(drec, dkl)
        grad_norm = clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.lr = cosine_with_warmup(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr)
        self.optimizer.step()
        self.ema.update()
        return loss, grad_norm

    def evaluate(self, keys):
        """Mean loss over the batches of the given step keys, without training (the noise is
        drawn, so this is the training objective, not the reconstruction error)."""
        losses = []
        for key in keys:
            self.model.train()  # the forward pass caches for a backward that never comes
            losses.append(self.loss(*self.batch(key))[0])
        self.model.eval()
        return float(np.mean(losses))

    def held_out_images(self, count):
        """Images from step keys training never reaches (beyond config.steps)."""
        images, key = [], self.config.steps + 10**6
        while sum(len(x) for x in images) < count:
            images.append(self.data(key)[0])
            key += 1
        return np.concatenate(images)[:count]

    def save_final(self):
        """final/: the EMA weights, with the latent normalisation measured on held-out images."""
        cfg = self.config
        with self.ema.swap_in():
            images = self.held_out_images(cfg.scale_images)
            rng = np.random.default_rng((cfg.seed, 17))
            config = self.model.config
            if cfg.latent_norm == "channel":
                config["latents_mean"], config["latents_std"] = latent_channel_statistics(self.model, images, rng)
                config["scaling_factor"] = 1.0
            else:
                config["scaling_factor"] = latent_scaling_factor(self.model, images, rng)
                config["latents_mean"] = config["latents_std"] = None
            ckpt.save_model(self.model, self.out_dir / "final")

    def save_samples(self):
        """samples/step-N.png: held-out images (top rows) and their reconstructions (bottom)."""
        n = self.config.num_samples
        images = self.held_out_images(n)
        with self.ema.swap_in():
            rec = reconstruct(self.model, images)
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        return save_labelled_grid(folder / f"step-{self.step:07d}.png", np.concatenate([images, rec]),
                                  f"step {self.step}: held-out images above their reconstructions", ncols=min(n, 8))
