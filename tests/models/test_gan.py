"""The GAN models: shapes, whole-model gradients against finite differences (float64), the
DCGAN init, and state dicts with BatchNorm's running statistics."""

import numpy as np
import pytest

from tinydiff.models.gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from tinydiff.nn import BatchNorm2d, ConvTranspose2d
from tinydiff.nn.gradcheck import gradcheck


@pytest.mark.parametrize("size", [8, 16])
def test_dcgan_shapes_and_gradients(size):
    rng = np.random.default_rng(0)
    g = DCGANGenerator(latent_dim=3, image_size=size, base_channels=2, rng=rng)
    d = DCGANDiscriminator(image_size=size, base_channels=2, rng=rng)
    z = rng.standard_normal((3, 3))
    images = g.to(np.float64)(z)
    assert images.shape == (3, 1, size, size) and np.abs(images).max() <= 1
    assert d.to(np.float64)(images).shape == (3,)
    gradcheck(g, (z,), rng, max_elements=40)
    gradcheck(d, (rng.standard_normal((3, 1, size, size)),), rng, max_elements=40)


def test_mlp_gan_gradients():
    rng = np.random.default_rng(1)
    g, d = MLPGenerator(latent_dim=3, hidden=5, num_layers=2, rng=rng), MLPDiscriminator(hidden=5, num_layers=2, rng=rng)
    gradcheck(g, (rng.standard_normal((4, 3)),), rng)
    gradcheck(d, (rng.standard_normal((4, 2)),), rng)


def test_dcgan_init():
    """Radford et al. 2016, sec. 4: N(0, 0.02) weights, BatchNorm scales N(1, 0.02), biases 0."""
    g = DCGANGenerator(base_channels=32, rng=np.random.default_rng(0))
    weights = np.concatenate([m.weight.data.ravel() for m in g.modules() if isinstance(m, ConvTranspose2d)])
    assert abs(weights.std() - 0.02) < 0.0005 and abs(weights.mean()) < 0.0005
    scales = np.concatenate([m.weight.data for m in g.modules() if isinstance(m, BatchNorm2d)])
    assert abs(scales.mean() - 1) < 0.01 and 0.01 < scales.std() < 0.03
    default = DCGANGenerator(base_channels=32, weight_init="pytorch", rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(64 * 16)  # U(+-1/sqrt(fan_in)), fan_in = C_out * 4 * 4 = 64 * 16
    assert 0.99 * bound < np.abs(default.main[0].weight.data).max() <= bound


def test_state_dict_holds_running_statistics():
    rng = np.random.default_rng(2)
    g = DCGANGenerator(latent_dim=4, base_channels=4, rng=rng)
    g(g.sample_latents(8, rng))  # training mode: the running statistics move
    state = g.state_dict()
    assert {"main.1.running_mean", "main.1.running_var", "main.1.num_batches_tracked"} <= set(state)
    other = DCGANGenerator(latent_dim=4, base_channels=4, rng=np.random.default_rng(9))
    other.load_state_dict(state)
    z = g.sample_latents(5, rng)
    np.testing.assert_array_equal(g.eval()(z), other.eval()(z))
    with pytest.raises(ValueError, match="missing buffers"):
        other.load_state_dict({k: v for k, v in state.items() if "running_var" not in k})


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="image_size"):
        DCGANGenerator(image_size=24)
    with pytest.raises(ValueError, match="weight_init"):
        DCGANDiscriminator(weight_init="xavier")
    with pytest.raises(ValueError, match="latent_dim"):
        MLPGenerator(latent_dim=2)(np.zeros((2, 3), np.float32))
