"""AutoencoderKL: an end-to-end finite-difference check (encode -> reparameterised sample with
fixed noise -> decode, loss with KL), the posterior's samples have the mean and variance it
states, and, where diffusers is installed, its AutoencoderKL with tinydiff's weights loaded by
name gives the same encode (mean, std) and decode."""

import numpy as np
import pytest

from tinydiff.models.vae import AutoencoderKL, DiagonalGaussian
from tinydiff.nn import Module
from tinydiff.nn.gradcheck import gradcheck

TINY = dict(in_channels=2, out_channels=2, block_out_channels=(4, 8), down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=2, norm_num_groups=2, sample_size=8,
            layers_per_block=1)


class VAELoss(Module):
    """L = sum(g_rec * decode(sample(encode(x), noise))) + beta * sum_b KL_b: the VAE training
    objective's two paths, with the noise held fixed so that L is a function of x and weights."""

    def __init__(self, vae, noise, beta):
        super().__init__()
        self.vae, self.noise, self.beta = vae, noise, beta

    def forward(self, x):
        out = self.vae(x, self.noise.astype(x.dtype))
        return out, self.beta * self.vae.posterior.kl()

    def backward(self, grads):
        g_rec, g_kl = grads
        return self.vae.backward(g_rec, self.beta * g_kl)


class Flat(Module):
    """Concatenate the reconstruction and the KL into one array for gradcheck."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out, kl = self.inner(x)
        self.save_for_backward(out.shape)
        return np.concatenate([out.reshape(-1), kl])

    def backward(self, g):
        (shape,) = self.saved()
        n = int(np.prod(shape))
        return self.inner.backward((g[:n].reshape(shape), g[n:]))


@pytest.mark.usefixtures("each_backend")
def test_tiny_vae_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    vae = AutoencoderKL(rng=rng, **TINY)
    noise = rng.standard_normal((2, 2, 4, 4))
    x = rng.standard_normal((2, 2, 8, 8))
    report = gradcheck(Flat(VAELoss(vae, noise, beta=0.7)), (x,), rng, max_elements=3)
    assert len(report) == 1 + len(vae.parameters())


def test_kl_gradient_alone_and_logvar_clamp():
    """The KL path alone (no reconstruction gradient) against finite differences of KL, and
    no gradient through a clamped log-variance."""
    rng = np.random.default_rng(3)
    moments = rng.standard_normal((2, 4, 3, 3))
    moments[0, 2, 0, 0] = -35.0  # logvar below the clamp
    post = DiagonalGaussian(moments)
    dkl = rng.standard_normal(2)
    analytic = post.kl_backward(dkl)
    numeric = np.zeros_like(moments)
    for idx in np.ndindex(moments.shape):
        m = moments.copy()
        m[idx] += 1e-6
        plus = DiagonalGaussian(m).kl() @ dkl
        m[idx] -= 2e-6
        numeric[idx] = (plus - DiagonalGaussian(m).kl() @ dkl) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)
    assert analytic[0, 2, 0, 0] == 0.0 and post.logvar[0, 0, 0, 0] == -30.0


def test_reparameterised_samples_have_the_stated_mean_and_variance():
    """A log-variance used as a log-std somewhere would give the right gradient shape but the
    wrong spread; count it from samples instead."""
    rng = np.random.default_rng(1)
    mean = rng.uniform(-2, 2, (1, 3, 2, 2))
    logvar = rng.uniform(-3, 2, (1, 3, 2, 2))
    post = DiagonalGaussian(np.concatenate([mean, logvar], axis=1))
    np.testing.assert_allclose(post.var, np.exp(logvar))
    draws = np.stack([post.sample(generator=rng)[0] for _ in range(20000)])  # (N, 3, 2, 2)
    se = np.sqrt(np.exp(logvar[0]) / len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - mean[0]) < 5 * se)
    # sample variance has relative std sqrt(2 / N) ~ 1%
    np.testing.assert_allclose(draws.var(axis=0), np.exp(logvar[0]), rtol=0.06)
    # KL against its Monte Carlo estimate E[log q(z) - log p(z)]
    z = draws.reshape(len(draws), -1)
    m, lv = mean.reshape(-1), logvar.reshape(-1)
    log_q = -0.5 * (((z - m) ** 2) / np.exp(lv) + lv).sum(axis=1)
    log_p = -0.5 * (z**2).sum(axis=1)
    assert abs((log_q - log_p).mean() - post.kl()[0]) < 0.1


def test_shapes_names_and_errors():
    vae = AutoencoderKL(**TINY)
    names = dict(vae.named_parameters())
    for name in ("encoder.conv_in.weight", "encoder.down_blocks.0.resnets.0.norm1.weight",
                 "encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                 "encoder.mid_block.attentions.0.to_q.weight", "encoder.mid_block.attentions.0.group_norm.weight",
                 "encoder.mid_block.resnets.1.conv2.weight", "encoder.conv_norm_out.weight", "encoder.conv_out.weight",
                 "quant_conv.weight", "post_quant_conv.weight", "decoder.conv_in.weight",
                 "decoder.up_blocks.0.resnets.1.conv1.weight", "decoder.up_blocks.0.upsamplers.0.conv.weight",
                 "decoder.up_blocks.1.resnets.0.conv_shortcut.weight", "decoder.conv_out.weight"):
        assert name in names, name
    assert not any("time_emb_proj" in n for n in names)
    assert len(vae.decoder.up_blocks[0].resnets) == 2 and len(vae.encoder.down_blocks[0].resnets) == 1
    post = vae.encode(np.zeros((3, 2, 8, 8), np.float32))
    assert post.mean.shape == (3, 2, 4, 4) and post.mean.dtype == np.float32
    assert vae.decode(post.mean).shape == (3, 2, 8, 8)
    with pytest.raises(ValueError, match="divisible by 2"):
        vae.encode(np.zeros((1, 2, 7, 7), np.float32))
    with pytest.raises(ValueError, match="z must be"):
        vae.decode(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="not supported"):
        AutoencoderKL(**{**TINY, "down_block_types": ("DownBlock2D", "DownEncoderBlock2D")})
    with pytest.raises(ValueError, match="noise"):
        post.sample(np.zeros((3, 2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="generator"):
        post.sample()


@pytest.mark.parametrize("attention", [True, False])
def test_same_encode_and_decode_as_diffusers(attention):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    rng = np.random.default_rng(2)
    config = dict(TINY, block_out_channels=(4, 8, 8), down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=2, mid_block_add_attention=attention)
    vae = AutoencoderKL(rng=rng, **config).to(np.float64)
    theirs = diffusers.AutoencoderKL(**vae.config).double()
    missing, unexpected = theirs.load_state_dict({k: torch.tensor(v) for k, v in vae.state_dict().items()}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    x = rng.standard_normal((2, 2, 8, 8))
    with torch.no_grad():
        dist = theirs.encode(torch.tensor(x)).latent_dist
        post = vae.encode(x)
        np.testing.assert_allclose(post.mean, dist.mean.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(post.std, dist.std.numpy(), rtol=1e-9, atol=1e-10)
        z = rng.standard_normal(post.mean.shape)
        np.testing.assert_allclose(vae.decode(z), theirs.decode(torch.tensor(z)).sample.numpy(), rtol=1e-9, atol=1e-10)
