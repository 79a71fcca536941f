"""The whole DCGAN generator and discriminator against PyTorch modules built as its DCGAN example
builds them (`self.main = nn.Sequential(...)`), in float64, with tinydiff's state dict loaded
by name (parameters and BatchNorm buffers): outputs, the input gradient, every parameter gradient
and the running statistics after the step. Skipped without torch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tinydiff.models.gan import DCGANDiscriminator, DCGANGenerator  # noqa: E402


class TorchGenerator(nn.Module):
    def __init__(self, latent, widths, out_channels):
        super().__init__()
        layers = [nn.ConvTranspose2d(latent, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        self.main = nn.Sequential(*layers, nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1, bias=False),
                                  nn.Tanh())

    def forward(self, z):
        return self.main(z[:, :, None, None])


class TorchDiscriminator(nn.Module):
    def __init__(self, in_channels, widths):
        super().__init__()
        layers = [nn.Conv2d(in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
        self.main = nn.Sequential(*layers, nn.Conv2d(widths[-1], 1, 4, 1, 0))

    def forward(self, x):
        return self.main(x)[:, 0, 0, 0]


def compare(ours, theirs, x, rng):
    """Load ours' state dict into theirs by name; forward, backward a random upstream gradient."""
    ours.to(np.float64).train()
    theirs.double().train()
    theirs.load_state_dict({k: torch.tensor(v) if "num_batches" not in k else torch.tensor(int(v))
                            for k, v in ours.state_dict().items()})
    t_x = torch.tensor(x, requires_grad=True)
    out, t_out = ours(x), theirs(t_x)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    ours.zero_grad()
    dx = ours.backward(g)
    t_out.backward(torch.tensor(g))
    errors = {"output": np.abs(out - t_out.detach().numpy()).max(), "input grad": np.abs(dx - t_x.grad.numpy()).max()}
    np.testing.assert_allclose(dx, t_x.grad.numpy(), rtol=1e-9, atol=1e-12)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
        errors[name] = np.abs(p.grad - t_params[name].grad.numpy()).max()
    t_buffers = dict(theirs.named_buffers())
    for name, value in ours.state_dict().items():
        if "running" in name:
            np.testing.assert_allclose(value, t_buffers[name].numpy(), rtol=1e-12, atol=1e-15, err_msg=name)
    print("max abs differences:", {k: f"{v:.1e}" for k, v in errors.items()})


@pytest.mark.parametrize("size", [8, 16])
def test_dcgan_generator_matches_torch(size):
    rng = np.random.default_rng(size)
    ours = DCGANGenerator(latent_dim=5, image_size=size, base_channels=3, rng=rng)
    widths = [3, 6][: size // 8][::-1]  # 8: [3], 16: [6, 3]
    compare(ours, TorchGenerator(5, widths, 1), rng.standard_normal((4, 5)), rng)


@pytest.mark.parametrize("size", [8, 16])
def test_dcgan_discriminator_matches_torch(size):
    rng = np.random.default_rng(size + 1)
    ours = DCGANDiscriminator(image_size=size, base_channels=3, rng=rng)
    widths = [3, 6][: size // 8]  # 8: [3], 16: [3, 6]
    compare(ours, TorchDiscriminator(1, widths), rng.standard_normal((4, 1, size, size)), rng)
