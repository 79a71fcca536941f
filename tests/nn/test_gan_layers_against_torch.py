"""ConvTranspose2d, BatchNorm2d, ReLU, LeakyReLU and Tanh against PyTorch autograd in float64 (outputs,
input and parameter gradients, running statistics), and the default initialisations against
torch's own draws. Skipped where torch is not installed (it is never a dependency)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ks_2samp

torch = pytest.importorskip("torch")
F = torch.nn.functional

from tinydiff.nn import BatchNorm2d, ConvTranspose2d, LeakyReLU, ReLU, Tanh  # noqa: E402

from tests.nn.test_against_torch import check  # noqa: E402

seeds = st.integers(0, 2**32 - 1)


@given(seed=seeds, batch=st.integers(1, 3), c_in=st.integers(1, 4), c_out=st.integers(1, 4),
       k=st.integers(1, 4), stride=st.integers(1, 3), size=st.integers(1, 5), bias=st.booleans(), data=st.data())
def test_conv_transpose2d(seed, batch, c_in, c_out, k, stride, size, bias, data):
    padding = data.draw(st.integers(0, (k - 1) // 2))
    output_padding = data.draw(st.integers(0, stride - 1))
    rng = np.random.default_rng(seed)
    layer = ConvTranspose2d(c_in, c_out, k, stride, padding, output_padding, bias=bias, rng=rng)
    fn = lambda p, x: F.conv_transpose2d(x, p["weight"], p.get("bias"), stride=stride, padding=padding,
                                         output_padding=output_padding)
    check(layer, fn, (rng.standard_normal((batch, c_in, size, size + 1)),), rng)


@given(seed=seeds, batch=st.integers(2, 4), c=st.integers(1, 4), size=st.integers(1, 4),
       momentum=st.sampled_from([0.1, 0.5, None]))
def test_batch_norm2d(seed, batch, c, size, momentum):
    rng = np.random.default_rng(seed)
    layer = BatchNorm2d(c, momentum=momentum)
    layer.weight.data[:] = rng.standard_normal(c)
    layer.bias.data[:] = rng.standard_normal(c)
    running_mean, running_var = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    x = rng.standard_normal((batch, c, size, size + 1)) * 3 + 1
    for step in range(1, 3):  # two batches: running statistics accumulate
        factor = 1.0 / step if momentum is None else momentum  # what torch.nn.BatchNorm2d passes on
        fn = lambda p, t_x: F.batch_norm(t_x, running_mean, running_var, p["weight"], p["bias"], training=True,
                                         momentum=factor, eps=1e-5)
        check(layer, fn, (x,), rng)
        x = x * 0.5 - 1
    np.testing.assert_allclose(layer.running_mean, running_mean.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.running_var, running_var.numpy(), rtol=1e-12, atol=1e-14)
    assert layer.num_batches_tracked == 2
    layer.eval()
    expected = F.batch_norm(torch.tensor(x), running_mean, running_var, torch.tensor(layer.weight.data),
                            torch.tensor(layer.bias.data), training=False, eps=1e-5)
    np.testing.assert_allclose(layer(x), expected.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("module, fn", [
    (ReLU(), lambda p, x: F.relu(x)),
    (LeakyReLU(), lambda p, x: F.leaky_relu(x)),
    (LeakyReLU(0.2), lambda p, x: F.leaky_relu(x, 0.2)),
    (Tanh(), lambda p, x: torch.tanh(x)),
], ids=["relu", "leaky_relu", "leaky_relu_0.2", "tanh"])
def test_elementwise(module, fn):
    rng = np.random.default_rng(0)
    check(module, fn, (3 * rng.standard_normal((4, 3, 5)),), rng)


@pytest.mark.parametrize("c_in, c_out, k", [(128, 64, 4), (8, 32, 3), (64, 1, 4)])
def test_conv_transpose2d_default_init_matches_torch(c_in, c_out, k):
    """tinydiff's draws and torch's own default ConvTranspose2d init come from the same law: a
    two-sample Kolmogorov-Smirnov test on the weights, and the bias bound. Seeds are fixed, so the
    p-value is too; a fan_in taken from C_in instead of C_out would be rejected at p < 1e-10."""
    ours = ConvTranspose2d(c_in, c_out, k, rng=np.random.default_rng(0))
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(c_in, c_out, k)
    w_theirs = theirs.weight.detach().numpy()
    assert ks_2samp(ours.weight.data.ravel(), w_theirs.ravel()).pvalue > 1e-3
    np.testing.assert_allclose(np.abs(ours.weight.data).max(), np.abs(w_theirs).max(), rtol=0.02)
    bound = np.abs(theirs.bias.detach().numpy()).max()
    assert np.abs(ours.bias.data).max() <= 1 / np.sqrt(c_out * k * k)
    assert bound <= 1 / np.sqrt(c_out * k * k)


def test_batch_norm2d_default_init_matches_torch():
    ours, theirs = BatchNorm2d(6), torch.nn.BatchNorm2d(6)
    for name in ("weight", "bias", "running_mean", "running_var"):
        mine = getattr(ours, name)
        mine = mine.data if hasattr(mine, "data") and not isinstance(mine, np.ndarray) else mine
        np.testing.assert_array_equal(mine, getattr(theirs, name).detach().numpy(), err_msg=name)
    assert (ours.eps, ours.momentum) == (theirs.eps, theirs.momentum)
