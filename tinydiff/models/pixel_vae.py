"""A plain VAE on 8-bit images (Kingma & Welling 2014), whose ELBO is in bits per dimension.

    encoder   x (B, D) -> MLP -> [mean, logvar] (B, 2L)        q(z | x) = N(mean, diag(exp(logvar)))
    sample    z = mean + exp(logvar / 2) noise                  (Kingma & Welling 2014, sec. 2.4)
    decoder   z (B, L) -> MLP -> [mu, log_scale] (B, 2D)        p(x | z) per pixel: a Gaussian
              integrated over the pixel's 8-bit bin (Ho et al. 2020, eq. 13), so p(x | z) is a
              probability of the discrete data and -ELBO bounds its NLL, as for the other models
    ELBO      log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || N(0, I))   (Kingma & Welling 2014, eq. 3)

Images are flattened, D = C H W: the VAE is the plainest there is, two MLPs, so that what it
draws is what a VAE draws, not what a clever decoder adds. Wiring only: the layers are
tinydiff.nn's, q(z | x) is AutoencoderKL's DiagonalGaussian, the likelihood is
tinydiff.diffusion.likelihood's.
"""

import numpy as np

from tinydiff.diffusion.likelihood import (bits_per_dim, discretized_gaussian_backward,
                                           discretized_gaussian_log_likelihood)
from tinydiff.models.checks import check_model_size, config_int
from tinydiff.models.vae import DiagonalGaussian
from tinydiff.nn import Linear, Module, Sequential, SiLU
from tinydiff.nn.checks import check_float_array, describe
from tinydiff.nn.init import generator

OWNER = "PixelVAE"
LOG_SCALE_MIN = -7.0  # a pixel's decoder scale stays above exp(-7) = 0.0009, an eighth of a bin


def mlp(sizes, rng):
    """Linear, SiLU, ..., Linear through `sizes`."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng=rng))
        if i < len(sizes) - 2:
            layers.append(SiLU())
    return Sequential(layers)


class PixelVAE(Module):
    """forward(x (B, C, H, W) in [-1, 1] on the 8-bit grid, noise (B, L)) -> per-image negative
    ELBO in nats (B,); backward(grad (B,)) -> None (the data get no gradient).

    Parameters
    ----------
    sample_size : int, side H = W
    in_channels : int
    latent_dim : int, L
    hidden : int, width of both MLPs (two hidden layers each)
    """

    def __init__(self, sample_size=16, in_channels=1, latent_dim=16, hidden=512, rng=None):
        super().__init__()
        self.config = dict(sample_size=config_int(sample_size, "sample_size", OWNER),
                           in_channels=config_int(in_channels, "in_channels", OWNER),
                           latent_dim=config_int(latent_dim, "latent_dim", OWNER),
                           hidden=config_int(hidden, "hidden", OWNER))
        D = in_channels * sample_size ** 2
        check_model_size(OWNER, 3 * D * hidden + 2 * hidden * hidden, "sample_size, hidden")
        rng = generator(rng)
        self.dims, self.latent_dim = D, latent_dim
        self.encoder = mlp([D, hidden, hidden, 2 * latent_dim], rng)
        self.decoder = mlp([latent_dim, hidden, hidden, 2 * D], rng)

    def encode(self, x):
        """x (B, C, H, W) -> q(z | x) as a DiagonalGaussian over (B, L, 1, 1)."""
        x = self._check_images(x)
        moments = self.encoder(x.reshape(len(x), -1))  # (B, C, H, W) -> (B, D) -> (B, 2L)
        return DiagonalGaussian(moments[:, :, None, None])  # (B, 2L) -> (B, 2L, 1, 1)

    def decode(self, z):
        """z (B, L) -> (mean, log_scale) of p(x | z), each (B, C, H, W)."""
        mean, log_scale, _ = self._decode(z)
        return mean, log_scale

    def _decode(self, z):
        check_float_array(z, "z", ndim=2, dtype=self.param_dtype())
        out = self.decoder(z)  # (B, L) -> (B, 2D)
        shape = (len(z), self.config["in_channels"], self.config["sample_size"], self.config["sample_size"])
        raw_scale = out[:, self.dims:]
        # a soft floor, so that a confident pixel cannot take its likelihood to +inf
        log_scale = LOG_SCALE_MIN + np.logaddexp(0.0, raw_scale - LOG_SCALE_MIN)
        return out[:, :self.dims].reshape(shape), log_scale.reshape(shape), raw_scale

    def forward(self, x, noise):
        """-ELBO per image in nats (B,): -log p(x | z) at z = mean + std noise, plus the KL."""
        q = self.encode(x)
        noise = np.asarray(noise)
        if noise.shape != (len(x), self.latent_dim):
            raise ValueError(f"{OWNER}: noise must be (B, latent_dim) = ({len(x)}, {self.latent_dim}), "
                             f"got {describe(noise)}")
        z = q.sample(noise[:, :, None, None])[:, :, 0, 0]  # (B, L, 1, 1) -> (B, L)
        mean, log_scale, raw_scale = self._decode(z)
        logp = discretized_gaussian_log_likelihood(x, mean, log_scale)  # eq. 13, (B, C, H, W)
        self.save_for_backward(x, mean, log_scale, raw_scale, noise, q)
        return -logp.reshape(len(x), -1).sum(axis=1) + q.kl()  # Kingma & Welling 2014, eq. 3

    def backward(self, grad_out):
        x, mean, log_scale, raw_scale, noise, q = self.saved()
        B, dtype = len(x), self.param_dtype()
        g = np.asarray(grad_out, dtype=np.float64).reshape(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)
        # 1. the likelihood term -log p(x | z): gradients for the decoder's mean and log-scale
        dmean, dlog_scale = discretized_gaussian_backward(-g, x, mean, log_scale)
        draw = dlog_scale.reshape(B, -1) / (1.0 + np.exp(LOG_SCALE_MIN - raw_scale))  # through the softplus floor
        dout = np.concatenate([dmean.reshape(B, -1), draw], axis=1).astype(dtype)  # (B, 2D)
        # 2. decoder, then the reparameterised sample, plus the KL's own gradient
        dz = self.decoder.backward(dout)  # (B, L)
        dmoments = q.sample_backward(dz[:, :, None, None], noise[:, :, None, None])
        dmoments = dmoments + q.kl_backward(grad_out)
        # 3. encoder
        self.encoder.backward(dmoments[:, :, 0, 0].astype(dtype))
        return None

    def negative_elbo_bits_per_dim(self, x, rng, batch_size=256):
        """-ELBO of each image in bits/dim (B,), one z drawn per image (an unbiased estimate)."""
        self.eval()
        out = []
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size]
            noise = rng.standard_normal((len(chunk), self.latent_dim)).astype(self.param_dtype())
            out.append(self.forward(chunk, noise))
        return bits_per_dim(np.concatenate(out), self.dims)

    def sample(self, num, rng, mean_only=True):
        """Images (num, C, H, W): z ~ N(0, I) decoded. mean_only=True returns the decoder's mean
        (what VAE papers show); False draws every pixel from its discretised Gaussian as well."""
        self.eval()
        z = rng.standard_normal((num, self.latent_dim)).astype(self.param_dtype())
        mean, log_scale = self.decode(z)
        if not mean_only:
            mean = mean + np.exp(log_scale) * rng.standard_normal(mean.shape)
        return np.clip(mean, -1.0, 1.0).astype(self.param_dtype())

    def _check_images(self, x):
        c, s = self.config["in_channels"], self.config["sample_size"]
        check_float_array(x, "x", ndim=4, dtype=self.param_dtype())
        if x.shape[1:] != (c, s, s):
            raise ValueError(f"{OWNER}: x must be (B, {c}, {s}, {s}), got shape {x.shape}")
        return x
