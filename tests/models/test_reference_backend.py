"""The reference backend (tinydiff.kernels.use): a whole UNet and VAE run forward and backward on
the NumPy reference twins and agree with the fast kernels, in float64 to rounding and in float32
(where the fused group norm + SiLU and Winograd run) to float32 rounding; and on that backend no
fast kernel runs at all."""

import numpy as np
import pytest

from tinydiff import kernels
from tinydiff.models import UNet2DModel
from tinydiff.models.vae import AutoencoderKL

# Small, but every fast path is taken: 8 channels make the 3x3 convolutions Winograd's, the
# shortcuts 1x1 (pointwise), the downsamplers stride 2 (im2col), with attention, group norm +
# SiLU fused in float32, and nearest upsampling.
UNET = dict(sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4,
            attention_head_dim=4, layers_per_block=1)
VAE = dict(in_channels=2, out_channels=2, block_out_channels=(8, 16),
           down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
           latent_channels=2, norm_num_groups=4, sample_size=8, layers_per_block=1)
# float64: the two backends differ only by summation order; float32: by float32 rounding over
# sums of a few hundred terms, compounded through the network's layers
RTOL = {np.float64: 1e-10, np.float32: 2e-4}


def unet_step(model, x, t, labels, g):
    """The output, the input gradient and every parameter gradient for upstream gradient g."""
    model.zero_grad()
    y = model(x, t, labels)
    dx = model.backward(g)
    return y, dx, {name: p.grad.copy() for name, p in model.named_parameters()}


def assert_close(got, want, rtol, what, floor=1e-3):
    """max |got - want| <= rtol * max(max |want|, floor). The floor covers gradients that are zero
    up to rounding: to_k.bias's (softmax ignores a shift shared by every key)."""
    scale = max(float(np.max(np.abs(want))), floor)
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= rtol * scale, f"{what}: max abs error {err:.3e} > {rtol:.0e} * {scale:.3e}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_unet_forward_and_backward_agree_on_both_backends(dtype):
    rng = np.random.default_rng(0)
    model = UNet2DModel(rng=rng, num_class_embeds=3, **UNET).to(dtype).train()
    x = rng.standard_normal((2, 2, 8, 8)).astype(dtype)
    g = rng.standard_normal((2, 2, 8, 8)).astype(dtype)
    t, labels = np.array([3, 700]), np.array([0, 2])
    with kernels.use("fast"):
        fast = unet_step(model, x, t, labels, g)
    with kernels.use("reference"):
        reference = unet_step(model, x, t, labels, g)
    assert_close(fast[0], reference[0], RTOL[dtype], "output")
    assert_close(fast[1], reference[1], RTOL[dtype], "input gradient")
    assert fast[2].keys() == reference[2].keys() and len(fast[2]) == len(model.parameters())
    for name in fast[2]:
        assert_close(fast[2][name], reference[2][name], RTOL[dtype], name)


def test_a_vae_forward_and_backward_agree_on_both_backends():
    rng = np.random.default_rng(1)
    vae = AutoencoderKL(rng=rng, **VAE).to(np.float64).train()
    x = rng.standard_normal((2, 2, 8, 8))
    noise = rng.standard_normal((2, 2, 4, 4))
    g = rng.standard_normal((2, 2, 8, 8))
    runs = {}
    for backend in kernels.BACKENDS:
        with kernels.use(backend):
            vae.zero_grad()
            out = vae(x, noise)
            dx = vae.backward(g, np.ones(2))
            runs[backend] = [out, dx] + [p.grad.copy() for p in vae.parameters()]
    for got, want in zip(runs["fast"], runs["reference"]):
        assert_close(got, want, RTOL[np.float64], "VAE output or gradient")


def test_no_fast_kernel_runs_on_the_reference_backend(monkeypatch):
    fast_kernels = [name for name in kernels.__all__ if not name.endswith("_ref")
                    and name not in ("use", "current_backend", "pick", "BACKENDS")]
    assert "conv2d_forward" in fast_kernels and "group_norm_silu_forward" in fast_kernels

    def refuse(*args, **kwargs):
        raise AssertionError("a fast kernel ran on the reference backend")
    for name in fast_kernels:
        monkeypatch.setattr(kernels, name, refuse)
    monkeypatch.setattr(kernels.conv, "winograd_weights", refuse)
    rng = np.random.default_rng(2)
    model = UNet2DModel(rng=rng, **UNET).train()
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    with kernels.use("reference"):
        model.backward(model(x, np.array([10])))
    with pytest.raises(AssertionError, match="a fast kernel ran"):
        model(x, np.array([10]))


def test_use_switches_at_once_and_as_a_block_and_names_the_choices():
    assert kernels.current_backend() == "fast"
    choices = r"backend must be one of \('fast', 'reference'\), got 'slow'"
    with pytest.raises(ValueError, match=choices):
        kernels.use("slow")
    assert kernels.current_backend() == "fast"
    with pytest.raises(RuntimeError):
        with kernels.use("reference"):
            assert kernels.current_backend() == "reference"
            with kernels.use("fast"):
                assert kernels.current_backend() == "fast"
            assert kernels.current_backend() == "reference"
            raise RuntimeError("inside")
    assert kernels.current_backend() == "fast"  # restored, although the block raised
    kernels.use("reference")
    try:
        assert kernels.current_backend() == "reference"
        picked = kernels.pick(kernels.silu_forward, kernels.silu_forward_ref)
        assert picked is kernels.silu_forward_ref
    finally:
        kernels.use("fast")
    assert kernels.pick(kernels.silu_forward, kernels.silu_forward_ref) is kernels.silu_forward


def test_data_parallel_workers_run_on_the_calling_processs_backend():
    # the worker's slice of the batch equals, to the bit, that slice run here on the same backend
    # (both single-threaded), and the two backends' results differ in their last bits
    from tinydiff.parallel import DataParallel
    from tinydiff.parallel_worker import _single_threaded
    rng = np.random.default_rng(3)
    model = UNet2DModel(rng=rng, **UNET).eval()
    x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
    t = np.array([1, 200, 500, 900])
    worker_slice = {}
    with DataParallel(model, processes=2) as parallel:
        parallel.eval()
        for backend in kernels.BACKENDS:
            with kernels.use(backend):
                worker_slice[backend] = parallel(x, t)[2:]
                with _single_threaded():
                    here = model(x[2:], t[2:])
            np.testing.assert_array_equal(worker_slice[backend], here, err_msg=backend)
    assert not np.array_equal(worker_slice["fast"], worker_slice["reference"])
