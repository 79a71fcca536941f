"""AutoencoderKL: the variational autoencoder whose latent space Stable Diffusion denoises in
(Rombach et al. 2022; the VAE of Kingma & Welling 2014), in diffusers' structure and names.

Notation:
    x         an image (B, C, H, W) in [-1, 1]
    moments   the encoder's output after quant_conv: [mean, logvar] stacked on channels
    q(z|x)    N(mean, diag(exp(logvar))), the posterior (a DiagonalGaussian)
    z         a latent (B, latent_channels, H / f, W / f), f = 2^(len(block_out_channels) - 1)
    eps       standard normal noise; z = mean + exp(logvar / 2) * eps is the
              reparameterisation trick (Kingma & Welling 2014, sec. 2.4)
    KL        KL(q(z|x) || N(0, I)) = 1/2 sum(mean^2 + var - 1 - logvar)  (their appendix B)

    encode(x) = DiagonalGaussian(quant_conv(encoder(x)))
    decode(z) = decoder(post_quant_conv(z))

Backward is by hand like every tinydiff model: decode_backward(dx) -> dz, then the posterior
turns dz (and the KL's weight) into d moments, and encode_backward(d moments) -> dx.
The diffusion model sees normalised latents (tinydiff.pipelines.latent.scale_latents):
    z * scaling_factor                                  Stable Diffusion 1.x: one number, 0.18215,
                                                        1 / std of its VAE's latents
    (z - latents_mean) * scaling_factor / latents_std   per channel, when the config has
                                                        latents_mean and latents_std (diffusers'
                                                        names; SDXL-era pipelines apply them so)
tinydiff measures them from data (tinydiff.pipelines.vae_training).
"""

import numpy as np

from tinydiff.models.checks import (check_divisible, check_model_size, check_sample_size, config_bool, config_floats,
                                    config_int, config_levels, config_number)
from tinydiff.models.vae_blocks import Decoder, Encoder
from tinydiff.nn import Conv2d, Module
from tinydiff.nn.checks import check_float_array, describe
from tinydiff.nn.init import generator

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0  # diffusers clamps logvar to this range


class DiagonalGaussian:
    """q(z|x) = N(mean, diag(var)) from moments (B, 2C, h, w) = [mean, logvar] on channels.

    Attributes mean, logvar (clamped to [-30, 20] like diffusers), std, var: (B, C, h, w).
    The backward methods return gradients w.r.t. `moments` (zero where the clamp was active).
    """

    def __init__(self, moments):
        check_float_array(moments, "moments", ndim=4)
        if moments.shape[1] % 2:
            raise ValueError(f"moments: expected an even channel count (mean and logvar), got shape {moments.shape}")
        C = moments.shape[1] // 2
        self.mean, raw_logvar = moments[:, :C], moments[:, C:]  # (B, 2C, h, w) -> 2 x (B, C, h, w)
        self.logvar = np.clip(raw_logvar, LOGVAR_MIN, LOGVAR_MAX)
        self.clamped = self.logvar != raw_logvar
        self.std = np.exp(0.5 * self.logvar)
        self.var = np.exp(self.logvar)

    def sample(self, noise=None, generator=None):
        """z = mean + std * noise (reparameterisation). Pass noise (B, C, h, w) to fix it, or a
        numpy Generator to draw it; the same noise must go to sample_backward."""
        if noise is None:
            if not isinstance(generator, np.random.Generator):
                raise TypeError(f"generator: expected a numpy.random.Generator (or pass noise), got {describe(generator)}")
            noise = generator.standard_normal(self.mean.shape).astype(self.mean.dtype)
        elif np.shape(noise) != self.mean.shape:
            raise ValueError(f"noise: expected shape {self.mean.shape}, got {describe(noise)}")
        return self.mean + self.std * noise

    def mode(self):
        return self.mean

    def kl(self):
        """KL(q || N(0, I)) per sample, summed over latent elements: shape (B,)."""
        return 0.5 * np.sum(self.mean**2 + self.var - 1.0 - self.logvar, axis=(1, 2, 3))

    def moments_grad(self, dmean, dlogvar):
        dlogvar = np.where(self.clamped, 0.0, dlogvar).astype(self.mean.dtype)  # the clamp passes no gradient
        return np.concatenate([dmean, dlogvar], axis=1)  # 2 x (B, C, h, w) -> (B, 2C, h, w)

    def sample_backward(self, dz, noise):
        """d moments from dL/dz for z = mean + exp(logvar / 2) * noise:
        dz/dmean = 1, dz/dlogvar = noise * std / 2."""
        return self.moments_grad(dz, dz * noise * 0.5 * self.std)

    def kl_backward(self, dkl):
        """d moments from dL/dKL (B,): dKL/dmean = mean, dKL/dlogvar = (var - 1) / 2."""
        w = np.asarray(dkl, dtype=self.mean.dtype).reshape(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)
        return self.moments_grad(w * self.mean, w * 0.5 * (self.var - 1.0))


OWNER = "AutoencoderKL"


def validate_config(c):
    """Check an AutoencoderKL config dict (types, ranges, consistency, size; see
    tinydiff.models.checks); lists become tuples, latents_mean/std lists of floats."""
    for key in ("in_channels", "out_channels", "layers_per_block", "latent_channels", "norm_num_groups",
                "sample_size"):
        c[key] = config_int(c[key], key, OWNER)
    channels = config_levels(c, OWNER, ("DownEncoderBlock2D",), ("UpDecoderBlock2D",))
    n = len(channels)
    check_divisible(channels, "every block_out_channels entry", c["norm_num_groups"], "norm_num_groups", OWNER)
    check_sample_size(c["sample_size"], n, OWNER)
    if c["act_fn"] != "silu":
        raise ValueError(f"{OWNER}: act_fn: expected 'silu' (the only activation tinydiff's VAE has), "
                         f"got {c['act_fn']!r}")
    for key in ("use_quant_conv", "use_post_quant_conv", "mid_block_add_attention"):
        c[key] = config_bool(c[key], key, OWNER)
    if not c["use_quant_conv"] or not c["use_post_quant_conv"]:
        raise ValueError(f"{OWNER}: use_quant_conv and use_post_quant_conv must be true in tinydiff")
    # the diffusion model sees (z - latents_mean) * scaling_factor / latents_std: a zero or
    # non-finite factor turns every latent into 0 or NaN
    c["scaling_factor"] = float(config_number(c["scaling_factor"], "scaling_factor", OWNER, positive=True))
    if (c["latents_mean"] is None) != (c["latents_std"] is None):
        raise ValueError(f"{OWNER}: give latents_mean and latents_std together, or neither")
    if c["latents_mean"] is not None:
        latent = c["latent_channels"]
        c["latents_mean"] = config_floats(c["latents_mean"], "latents_mean", OWNER, latent)
        c["latents_std"] = config_floats(c["latents_std"], "latents_std", OWNER, latent)
        if min(c["latents_std"]) <= 0:
            raise ValueError(f"{OWNER}: latents_std: expected {latent} positive numbers (one per latent channel), "
                             f"got {c['latents_std']}")
    check_model_size(OWNER, parameter_lower_bound(c), "block_out_channels and layers_per_block",
                     largest_activation(c), "sample_size and block_out_channels")
    return c


def parameter_lower_bound(c):
    """At least this many parameters: the 3x3 convolutions of the encoder's and decoder's
    resnets (two per resnet, each >= 9 C^2) and of both mid blocks; Python ints, no overflow."""
    channels, lpb = c["block_out_channels"], c["layers_per_block"]
    count = sum(9 * ch**2 * (2 * lpb + 2 * (lpb + 1)) for ch in channels)
    return count + 8 * 9 * channels[-1] ** 2


def largest_activation(c):
    """Numbers in one image's largest array: a feature map at full resolution, or the mid
    block's single-head attention matrix (HW, HW) at the lowest."""
    size, channels = c["sample_size"], c["block_out_channels"]
    largest = max(ch * (size // 2**i) ** 2 for i, ch in enumerate(channels))
    if c["mid_block_add_attention"]:
        largest = max(largest, (size // 2 ** (len(channels) - 1)) ** 4)
    return largest


class AutoencoderKL(Module):
    """encode(x (B, C_in, H, W)) -> DiagonalGaussian over z (B, latent_channels, H/f, W/f);
    decode(z) -> (B, C_out, H, W). The arguments are diffusers' AutoencoderKL's (same names and
    meaning); `config` holds them. rng draws the initial weights.

    forward(sample, noise) = decode(encode(sample).sample(noise)) and backward(dout, dkl=None)
    -> d sample trains the VAE in one call pair: dkl (B,) is the loss's weight on each
    sample's KL, whose gradient is added to the posterior's.
    """

    def __init__(self, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64),
                 layers_per_block=1, act_fn="silu", latent_channels=4, norm_num_groups=16, sample_size=32,
                 scaling_factor=1.0, latents_mean=None, latents_std=None, use_quant_conv=True,
                 use_post_quant_conv=True, mid_block_add_attention=True, rng=None):
        super().__init__()
        self.config = c = validate_config(dict(
            in_channels=in_channels, out_channels=out_channels, down_block_types=down_block_types,
            up_block_types=up_block_types, block_out_channels=block_out_channels,
            layers_per_block=layers_per_block, act_fn=act_fn, latent_channels=latent_channels,
            norm_num_groups=norm_num_groups, sample_size=sample_size, scaling_factor=scaling_factor,
            latents_mean=latents_mean, latents_std=latents_std,
            use_quant_conv=use_quant_conv, use_post_quant_conv=use_post_quant_conv,
            mid_block_add_attention=mid_block_add_attention))
        rng = generator(rng)
        groups, lpb = c["norm_num_groups"], c["layers_per_block"]
        latent, attention = c["latent_channels"], c["mid_block_add_attention"]
        self.encoder = Encoder(c["in_channels"], latent, c["block_out_channels"], lpb, groups, attention, rng=rng)
        self.decoder = Decoder(latent, c["out_channels"], c["block_out_channels"], lpb, groups, attention, rng=rng)
        self.quant_conv = Conv2d(2 * latent, 2 * latent, 1, rng=rng)
        self.post_quant_conv = Conv2d(latent, latent, 1, rng=rng)

    @property
    def downsample_factor(self):
        return 2 ** (len(self.config["block_out_channels"]) - 1)

    def latent_shape(self, batch, image_size=None):
        """(B, latent_channels, h, w) of the latents of images of side image_size (default sample_size)."""
        side = (image_size or self.config["sample_size"]) // self.downsample_factor
        return (batch, self.config["latent_channels"], side, side)

    def encode(self, x):
        c = self.config
        check_float_array(x, "x", ndim=4, dtype=self.quant_conv.weight.dtype)
        f = self.downsample_factor
        if x.shape[1] != c["in_channels"] or x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"AutoencoderKL.encode: x must be (B, {c['in_channels']}, H, W) with H and W "
                             f"divisible by {f}, got shape {x.shape}")
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def encode_backward(self, dmoments):
        """d moments (B, 2C, h, w) -> dx; adds the encoder's parameter gradients."""
        return self.encoder.backward(self.quant_conv.backward(dmoments))

    def decode(self, z):
        c = self.config
        check_float_array(z, "z", ndim=4, dtype=self.quant_conv.weight.dtype)
        if z.shape[1] != c["latent_channels"]:
            raise ValueError(f"AutoencoderKL.decode: z must be (B, {c['latent_channels']}, h, w), got shape {z.shape}")
        return self.decoder(self.post_quant_conv(z))

    def decode_backward(self, dx):
        """dx (B, C_out, H, W) -> dz; adds the decoder's parameter gradients."""
        return self.post_quant_conv.backward(self.decoder.backward(dx))

    def forward(self, sample, noise):
        posterior = self.encode(sample)
        out = self.decode(posterior.sample(noise))
        self.save_for_backward(posterior, noise)
        self.posterior = posterior  # the loss reads its KL
        return out

    def backward(self, grad_out, dkl=None):
        posterior, noise = self.saved()
        dmoments = posterior.sample_backward(self.decode_backward(grad_out), noise)
        if dkl is not None:
            dmoments = dmoments + posterior.kl_backward(dkl)
        return self.encode_backward(dmoments)
