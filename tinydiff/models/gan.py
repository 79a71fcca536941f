"""The rival generators of lesson 11: a DCGAN for glyphs and an MLP GAN for 2-D toys.

A GAN (Goodfellow et al. 2014) is two networks: a generator G maps a latent z ~ N(0, I) to a
sample in ONE forward pass, a discriminator D maps a sample to a logit, the log-odds that it is
real. Training (tinydiff.pipelines.gan_training) plays them against each other.

DCGAN (Radford et al. 2016, sec. 3, "architecture guidelines for stable deep convolutional
GANs"), for images of side 4 * 2^k:
- no pooling: G grows the image with strided ConvTranspose2d, D shrinks it with strided Conv2d;
- BatchNorm2d in both, except G's output layer and D's input layer;
- ReLU in G, Tanh at G's output (images in [-1, 1]); LeakyReLU(0.2) everywhere in D;
- weights from N(0, 0.02) (sec. 4), BatchNorm scales from N(1, 0.02) (PyTorch's DCGAN example).

For 1x16x16 glyphs with base_channels=64, latent_dim=64:

    G: z (B, 64) -> (B, 64, 1, 1)
       ConvT 4x4 s1 p0 -> (B, 128, 4, 4), BN, ReLU
       ConvT 4x4 s2 p1 -> (B, 64, 8, 8),  BN, ReLU
       ConvT 4x4 s2 p1 -> (B, 1, 16, 16), Tanh
    D: x (B, 1, 16, 16)
       Conv 4x4 s2 p1 -> (B, 64, 8, 8), LeakyReLU(0.2)
       Conv 4x4 s2 p1 -> (B, 128, 4, 4), BN, LeakyReLU(0.2)
       Conv 4x4 s1 p0 -> (B, 1, 1, 1) -> logits (B,)

The layers sit in a Sequential called `main`, as in PyTorch's DCGAN example, so the state dict's
names (main.0.weight, main.1.running_mean, ...) are the ones a torch nn.Sequential of the same
layers has; the tests load one into the other. state_dict() includes BatchNorm's running
statistics (buffers), which sampling in eval mode uses.
"""

import numpy as np

from tinydiff.models.checks import check_model_size, config_int
from tinydiff.nn import (BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, Linear, Module, ReLU, Sequential,
                         Tanh)
from tinydiff.nn.batch_norm import buffers_state, load_buffers_state
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator

DCGAN_STD = 0.02  # Radford et al. 2016, sec. 4
DISCRIMINATOR_SLOPE = 0.2  # Radford et al. 2016, sec. 3: LeakyReLU slope in D
WEIGHT_INITS = ("dcgan", "pytorch")


def dcgan_init(model, rng):
    """Radford et al. 2016, sec. 4: every (transposed) convolution and linear weight from
    N(0, 0.02), biases 0; BatchNorm2d's weight from N(1, 0.02), bias 0 (as PyTorch's DCGAN
    example's weights_init). In place; returns the model."""
    for _, module in model.named_modules():
        if isinstance(module, (Conv2d, ConvTranspose2d, Linear)):
            module.weight.data[...] = rng.normal(0.0, DCGAN_STD, module.weight.shape)
            if module.bias is not None:
                module.bias.data[...] = 0
        elif isinstance(module, BatchNorm2d) and module.affine:
            module.weight.data[...] = rng.normal(1.0, DCGAN_STD, module.weight.shape)
            module.bias.data[...] = 0
    return model


def check_weight_init(value, owner):
    if value not in WEIGHT_INITS:
        raise ValueError(f"{owner}: weight_init must be one of {WEIGHT_INITS}, got {value!r}")
    return value


def levels_for(image_size, owner):
    """k with image_size = 4 * 2^k, k >= 1."""
    size = config_int(image_size, "image_size", owner, minimum=8)
    k = int(np.log2(size // 4))
    if 4 * 2**k != size:
        raise ValueError(f"{owner}: image_size must be 4 * 2^k (8, 16, 32, 64), got {image_size}")
    return k


class GANModule(Module):
    """A Module whose state_dict also holds its BatchNorm2d running statistics (PyTorch's names)."""

    def state_dict(self):
        state = super().state_dict()
        state.update(buffers_state(self))
        return state

    def load_state_dict(self, state, strict=True):
        buffers = set(buffers_state(self))
        params = {k: v for k, v in state.items() if k not in buffers}
        missing, unexpected = super().load_state_dict(params, strict=strict)
        missing_buffers = load_buffers_state(self, state)
        if strict and missing_buffers:
            raise ValueError(f"load_state_dict ({type(self).__name__}): missing buffers {missing_buffers}")
        return missing + missing_buffers, unexpected


class LatentGenerator(GANModule):
    """What both generators share: latents z ~ N(0, I) of config["latent_dim"] and their check."""

    def sample_latents(self, n, rng):
        """z ~ N(0, I), (n, latent_dim), in the model's dtype."""
        return rng.standard_normal((n, self.config["latent_dim"])).astype(self.param_dtype())

    def check_latents(self, z):
        check_float_array(z, "z", ndim=2, dtype=self.param_dtype())
        if z.shape[1] != self.config["latent_dim"]:
            raise ValueError(f"{type(self).__name__}: z must be (B, latent_dim={self.config['latent_dim']}), "
                             f"got {z.shape}")
        return z


class DCGANGenerator(LatentGenerator):
    """forward(z (B, latent_dim)) -> images (B, out_channels, image_size, image_size) in [-1, 1];
    backward(d images) -> dz. See the module docstring for the layers.

    Parameters
    ----------
    latent_dim : int
    image_size : int, 4 * 2^k
    out_channels : int
    base_channels : int
        Channels of the last hidden layer; each layer toward z doubles them.
    weight_init : "dcgan" (N(0, 0.02)) or "pytorch" (the layers' defaults)
    """

    def __init__(self, latent_dim=64, image_size=16, out_channels=1, base_channels=64, weight_init="dcgan",
                 rng=None):
        super().__init__()
        owner = "DCGANGenerator"
        k = levels_for(image_size, owner)
        self.config = dict(latent_dim=config_int(latent_dim, "latent_dim", owner), image_size=image_size,
                           out_channels=config_int(out_channels, "out_channels", owner),
                           base_channels=config_int(base_channels, "base_channels", owner),
                           weight_init=check_weight_init(weight_init, owner))
        widths = [base_channels * 2 ** (k - 1 - i) for i in range(k)]  # e.g. k=2: [128, 64]
        check_model_size(owner, 16 * (latent_dim * widths[0] + sum(a * b for a, b in zip(widths, widths[1:]))),
                         "base_channels")
        rng = generator(rng)
        layers = [ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False, rng=rng),  # 1x1 -> 4x4
                  BatchNorm2d(widths[0]), ReLU()]
        for c_in, c_out in zip(widths, widths[1:]):  # each doubles the side
            layers += [ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False, rng=rng), BatchNorm2d(c_out), ReLU()]
        layers += [ConvTranspose2d(widths[-1], out_channels, 4, 2, 1, bias=False, rng=rng), Tanh()]
        self.main = Sequential(layers)
        if weight_init == "dcgan":
            dcgan_init(self, rng)

    def forward(self, z):
        return self.main(self.check_latents(z)[:, :, None, None])  # (B, Z) -> (B, Z, 1, 1) -> (B, C, S, S)

    def backward(self, grad_out):
        return self.main.backward(grad_out)[:, :, 0, 0]  # (B, Z, 1, 1) -> (B, Z)


class DCGANDiscriminator(GANModule):
    """forward(images (B, in_channels, image_size, image_size)) -> logits (B,);
    backward(d logits) -> d images: the gradient the generator trains on.

    Parameters
    ----------
    image_size : int, 4 * 2^k
    in_channels : int
    base_channels : int
        Channels of the first layer; each layer after doubles them.
    weight_init : "dcgan" or "pytorch"
    """

    def __init__(self, image_size=16, in_channels=1, base_channels=64, weight_init="dcgan", rng=None):
        super().__init__()
        owner = "DCGANDiscriminator"
        k = levels_for(image_size, owner)
        self.config = dict(image_size=image_size, in_channels=config_int(in_channels, "in_channels", owner),
                           base_channels=config_int(base_channels, "base_channels", owner),
                           weight_init=check_weight_init(weight_init, owner))
        widths = [base_channels * 2**i for i in range(k)]  # e.g. k=2: [64, 128]
        check_model_size(owner, 16 * (in_channels * widths[0] + sum(a * b for a, b in zip(widths, widths[1:]))),
                         "base_channels")
        rng = generator(rng)
        layers = [Conv2d(in_channels, widths[0], 4, stride=2, padding=1, rng=rng),  # no BN on D's input layer
                  LeakyReLU(DISCRIMINATOR_SLOPE)]
        for c_in, c_out in zip(widths, widths[1:]):  # each halves the side
            layers += [Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False, rng=rng), BatchNorm2d(c_out),
                       LeakyReLU(DISCRIMINATOR_SLOPE)]
        layers += [Conv2d(widths[-1], 1, 4, stride=1, padding=0, rng=rng)]  # 4x4 -> 1x1: one logit
        self.main = Sequential(layers)
        if weight_init == "dcgan":
            dcgan_init(self, rng)

    def forward(self, x):
        size, channels = self.config["image_size"], self.config["in_channels"]
        check_float_array(x, "x", ndim=4, dtype=self.param_dtype())
        if x.shape[1:] != (channels, size, size):
            raise ValueError(f"DCGANDiscriminator: x must be (B, {channels}, {size}, {size}), got {x.shape}")
        return self.main(x)[:, 0, 0, 0]  # (B, 1, 1, 1) -> (B,)

    def backward(self, grad_out):
        return self.main.backward(grad_out[:, None, None, None])  # (B,) -> (B, 1, 1, 1) -> (B, C, S, S)


def mlp_layers(d_in, hidden, num_layers, d_out, make_activation, rng):
    """Linear, act, ..., Linear: num_layers hidden layers of `hidden` units."""
    layers, width = [], d_in
    for _ in range(num_layers):
        layers += [Linear(width, hidden, rng=rng), make_activation()]
        width = hidden
    return layers + [Linear(width, d_out, rng=rng)]


def check_mlp_config(owner, **values):
    config = {k: config_int(v, k, owner) for k, v in values.items()}
    check_model_size(owner, config["hidden"] ** 2 * config["num_layers"], "hidden and num_layers")
    return config


class MLPGenerator(LatentGenerator):
    """The ring GAN's generator: z (B, latent_dim) -> points (B, data_dim), an MLP with ReLU.

    Parameters
    ----------
    latent_dim, data_dim, hidden, num_layers : int
    """

    def __init__(self, latent_dim=8, data_dim=2, hidden=128, num_layers=3, rng=None):
        super().__init__()
        self.config = check_mlp_config("MLPGenerator", latent_dim=latent_dim, data_dim=data_dim, hidden=hidden,
                                       num_layers=num_layers)
        self.main = Sequential(mlp_layers(latent_dim, hidden, num_layers, data_dim, ReLU, generator(rng)))

    def forward(self, z):
        return self.main(self.check_latents(z))

    def backward(self, grad_out):
        return self.main.backward(grad_out)


class MLPDiscriminator(Module):
    """The ring GAN's discriminator: points (B, data_dim) -> logits (B,), an MLP with
    LeakyReLU(0.2).

    Parameters
    ----------
    data_dim, hidden, num_layers : int
    """

    def __init__(self, data_dim=2, hidden=128, num_layers=3, rng=None):
        super().__init__()
        self.config = check_mlp_config("MLPDiscriminator", data_dim=data_dim, hidden=hidden, num_layers=num_layers)
        self.main = Sequential(mlp_layers(data_dim, hidden, num_layers, 1, lambda: LeakyReLU(DISCRIMINATOR_SLOPE),
                                          generator(rng)))

    def forward(self, x):
        check_float_array(x, "x", ndim=2, dtype=self.param_dtype())
        if x.shape[1] != self.config["data_dim"]:
            raise ValueError(f"MLPDiscriminator: x must be (B, data_dim={self.config['data_dim']}), got {x.shape}")
        return self.main(x)[:, 0]  # (B, 1) -> (B,)

    def backward(self, grad_out):
        return self.main.backward(grad_out[:, None])  # (B,) -> (B, 1) -> (B, D)
