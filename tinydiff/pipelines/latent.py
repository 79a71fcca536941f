"""Latent diffusion (Rombach et al. 2022): denoise in a VAE's latent space, not in pixels.

    train:   z = mean + std * eps,  q(z|x) = N(mean, std^2) = vae.encode(x)
             z_0 = scale_latents(vae, z), then the usual diffusion loss on z_0
             (tinydiff.pipelines.train.Trainer)
    sample:  z_0 ~ reverse process from N(0, I) in latent space;  x = vae.decode(unscale_latents(vae, z_0))

scale_latents normalises the latents to about zero mean and unit variance: z * scaling_factor
with one global factor (Stable Diffusion 1.x), or per channel (z - latents_mean) *
scaling_factor / latents_std when the VAE's config has those (as diffusers' SDXL pipelines
apply them). Per channel matters when the channels differ: the shipped Shapes VAE's latent
channels have means from -1.2 to +0.7 and stds from 0.4 to 1.1 after the global factor, so
with it alone some channels were drowned by noise much earlier in the forward process than
others, and sampled colours came out wrong.

The data set is encoded once (the encoder is frozen: encoding every step again would cost an
encoder pass per image for nothing); each step draws fresh eps keyed by (seed, step), so the
UNet still sees samples of q(z|x), not only its means, and a resumed run sees the same batches.
A 32x32x3 image becomes a 4x8x8 latent: 12x fewer numbers and 16x fewer positions per UNet
layer, which is where the cost saving comes from (measured in benchmarks/bench_latent.py).
"""

from pathlib import Path

import numpy as np

from tinydiff.models.vae import AutoencoderKL
from tinydiff.pipelines import checkpoint as ckpt
from tinydiff.pipelines.pipeline_folder import save_pipeline
from tinydiff.pipelines.sampling import sample, scheduler_config, scheduler_from_config
from tinydiff.pipelines.train import Trainer
from tinydiff.pipelines.vae_training import in_batches


def latent_shift_and_scale(vae):
    """(shift, scale), each (latent_channels, 1, 1) float32: scale_latents(z) = (z - shift) * scale."""
    c = vae.config
    channels = c["latent_channels"]
    if c.get("latents_mean") is None:
        shift, scale = np.zeros(channels), np.full(channels, c["scaling_factor"])
    else:
        shift = np.asarray(c["latents_mean"], dtype=np.float64)
        scale = c["scaling_factor"] / np.asarray(c["latents_std"], dtype=np.float64)
    return shift.astype(np.float32)[:, None, None], scale.astype(np.float32)[:, None, None]


def scale_latents(vae, z):
    """VAE latents -> what the diffusion model sees (about zero mean, unit variance)."""
    shift, scale = latent_shift_and_scale(vae)
    return (z - shift) * scale


def unscale_latents(vae, z):
    """The inverse of scale_latents: diffusion latents -> what vae.decode takes."""
    shift, scale = latent_shift_and_scale(vae)
    return z / scale + shift


def encode_images(vae, images, batch_size=128):
    """(mean, std) of q(z|x) for every image, float32 arrays (N, latent_channels, h, w)."""
    vae.eval()
    means, stds = [], []
    for i in range(0, len(images), batch_size):
        posterior = vae.encode(images[i:i + batch_size])
        means.append(posterior.mean)
        stds.append(posterior.std)
    return np.concatenate(means).astype(np.float32), np.concatenate(stds).astype(np.float32)


class LatentEpochs:
    """data(step) -> (z_0 (B, C, h, w), labels or None) over a fixed set of encoded images,
    reshuffled every epoch by (seed, epoch); z_0 = (mean + std * eps - shift) * scale, with
    eps drawn from (seed, 13, step) and (shift, scale) from latent_shift_and_scale (a float
    scale alone means shift 0)."""

    def __init__(self, mean, std, scale, batch_size, seed, labels=None, shift=0.0):
        if len(mean) < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the encoded data set ({len(mean)} latents)")
        self.mean, self.std, self.labels = mean, std, labels
        self.shift = np.asarray(shift, dtype=np.float32)  # a number, or (C, 1, 1) per channel
        self.scale = np.asarray(scale, dtype=np.float32)
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = len(mean) // batch_size

    def __call__(self, step):
        epoch, k = divmod(step, self.per_epoch)
        order = np.random.default_rng((self.seed, 11, epoch)).permutation(len(self.mean))
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        eps = np.random.default_rng((self.seed, 13, step)).standard_normal(self.mean[idx].shape)
        z = (self.mean[idx] + self.std[idx] * eps - self.shift) * self.scale
        return z.astype(np.float32), (None if self.labels is None else self.labels[idx])


def latent_source(vae, data, num_images, batch_size, seed, labelled=False):
    """Encode the first num_images images of a pixel data source (data(k) for k = 0, 1, ...)
    and return the LatentEpochs that trains on them."""
    images, labels, k = [], [], 0
    while sum(len(x) for x in images) < num_images:
        x, y = data(k)
        images.append(x)
        labels.append(y)
        k += 1
    images = np.concatenate(images)[:num_images]
    labels = np.concatenate(labels)[:num_images] if labelled and labels[0] is not None else None
    mean, std = encode_images(vae, images)
    shift, scale = latent_shift_and_scale(vae)
    return LatentEpochs(mean, std, scale, batch_size, seed, labels, shift=shift)


def decode_latents(vae, z, batch_size=128):
    """Images (B, C, H, W) from diffusion latents z (B, c, h, w): vae.decode(unscale_latents(vae, z))."""
    vae.eval()
    return in_batches(lambda batch: vae.decode(unscale_latents(vae, batch)), z, batch_size)


def sample_latent(model, scheduler, vae, num, rng, num_inference_steps=50, class_labels=None, eta=0.0,
                  record=False, progress=False, guidance_scale=1.0, guidance_rescale=0.0):
    """Sample `num` latents with tinydiff.pipelines.sample (guidance as there) and decode them.

    Returns images (num, C, H, W) float32, and with record=True also the latent trajectory
    (a list of (t, z_t, predicted z_0), see decode_trajectory)."""
    c, s = model.config["in_channels"], model.config["sample_size"]
    result = sample(model, scheduler, (num, c, s, s), rng, num_inference_steps, class_labels=class_labels,
                    eta=eta, record=record, progress=progress, guidance_scale=guidance_scale,
                    guidance_rescale=guidance_rescale)
    z, trajectory = result if record else (result, None)
    images = decode_latents(vae, z)
    return (images, trajectory) if record else images


def decode_trajectory(vae, trajectory, max_frames=30):
    """The latent trajectory decoded to pixels: [(t, decode(z_t), decode(z_0 pred))] for at
    most max_frames evenly spaced steps, the last always included (each frame costs two
    decoder passes over the batch)."""
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(max_frames, len(trajectory))).round().astype(int))
    return [(trajectory[i][0], decode_latents(vae, trajectory[i][1]), decode_latents(vae, trajectory[i][2]))
            for i in picks]


def load_vae_folder(path):
    """An AutoencoderKL from a model folder, or from `tinydiff train-vae`'s output (its final/),
    or the vae/ of a latent pipeline folder."""
    path = Path(path)
    if not (path / ckpt.CONFIG_NAME).is_file():
        for inner in (path / "final", path / "vae"):
            if (inner / ckpt.CONFIG_NAME).is_file():
                path = inner
                break
        else:
            if (path / "model_index.json").is_file() or (path / "final" / "model_index.json").is_file():
                raise FileNotFoundError(f"{path}: a diffusion pipeline without a VAE, not a VAE; pass the "
                                        f"output folder of `tinydiff train-vae`")
    vae = ckpt.load_model(path)
    if not isinstance(vae, AutoencoderKL):
        raise ValueError(f"{path}: holds a {type(vae).__name__}, not an AutoencoderKL (a `tinydiff train-vae` "
                         f"output folder)")
    return vae


def load_pipeline_vae(path):
    """The VAE of a latent pipeline folder (vae/), or of the training run a checkpoint folder
    belongs to (RUN/vae beside RUN/checkpoints); None for a pixel-space model."""
    path = Path(path)
    pipeline = (path / "model_index.json").is_file()
    if pipeline:
        ckpt.check_pipeline_index(path)  # a listed vae/ that is missing is an error, not pixels
    for folder in (path / "vae", path.parent.parent / "vae"):
        if (folder / ckpt.CONFIG_NAME).is_file() and (folder == path / "vae" or (path / "trainer_state.json").is_file()):
            vae = load_vae_folder(folder)
            unet_config = (path / "unet" if pipeline else path) / ckpt.CONFIG_NAME
            channels = ckpt.read_json(unet_config).get("in_channels")
            if channels != vae.config["latent_channels"]:
                raise ValueError(f"{unet_config}: in_channels={channels}, but the VAE in {folder} has latent_channels="
                                 f"{vae.config['latent_channels']}; the UNet must denoise that VAE's latents")
            return vae
    return None


def same_weights(vae, folder):
    """Whether `vae` has the config and float32 weights of the model folder `folder`."""
    stored = ckpt.read_json(Path(folder) / ckpt.CONFIG_NAME)
    mine = ckpt.model_config(vae)
    if {k: v for k, v in stored.items() if not k.startswith("_")} != \
            {k: v for k, v in mine.items() if not k.startswith("_")}:
        return False
    weights = ckpt.load_arrays(Path(folder) / ckpt.WEIGHTS_NAME)
    state = vae.state_dict()
    return weights.keys() == state.keys() and all(
        np.array_equal(weights[k], np.asarray(v, dtype=np.float32)) for k, v in state.items())


class LatentTrainer(Trainer):
    """Trainer for a UNet on VAE latents: data(step) must return scaled latents (LatentEpochs).
    out_dir also gets vae/ (a copy of the frozen VAE); final/ is a pipeline folder with vae/,
    and the sample grids are decoded to pixels."""

    def __init__(self, model, scheduler, vae, data, config, out_dir, progress=True, settings=None, parallel=None):
        super().__init__(model, scheduler, data, config, out_dir, progress, settings, parallel)
        self.vae = vae
        kept = self.out_dir / "vae"
        if not (kept / ckpt.CONFIG_NAME).is_file():
            ckpt.save_model(vae, kept)
        elif not same_weights(vae, kept):
            # a run's latents are this VAE's: resuming on another one (the --latent folder
            # retrained meanwhile) would train on other latents than its checkpoints decode with
            raise ValueError(f"--latent: this VAE differs from the one the run in {self.out_dir} was trained "
                             f"on (a copy is kept in {kept}); put that VAE back in the --latent folder, or "
                             f"start a new run")

    def save_final(self):
        with self.ema.swap_in():
            save_pipeline(self.out_dir / "final", self.model, self.scheduler, vae=self.vae)

    def save_samples(self):
        cfg = self.config
        ddim = scheduler_from_config("ddim", scheduler_config(self.scheduler))
        labels = self.sample_labels()
        with self.ema.swap_in():
            x = sample_latent(self.model, ddim, self.vae, cfg.num_samples, np.random.default_rng(cfg.seed),
                              cfg.sample_steps, class_labels=labels)
        return self.save_grid(x, labels)
