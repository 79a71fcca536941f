"""The benchmarked UNets (benchmarks/train_cases.py) against diffusers' UNet2DModel holding the
same weights, in float64: the output, the input gradient and every parameter's gradient (the
whole hand-written backward at once). Skipped where torch or diffusers is not installed."""

import numpy as np
import pytest

from tinydiff.models import UNet2DModel
from tinydiff.pretrained.train_glyphs import GLYPH_UNET

# the benchmarks' reference architecture (benchmarks/train_cases.py, REFERENCE), at 8x8
REFERENCE = dict(
    sample_size=8, in_channels=3, out_channels=3, block_out_channels=(32, 64, 128), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    attention_head_dim=8, norm_num_groups=32,
)
# diffusers computes the sinusoidal timestep features in float32 even in a float64 model, so
# the two agree to float32 round-off there (relative errors ~1e-6), not to float64's.
AGREEMENT = 1e-4


def relative_error(ours, theirs, floor=1e-300):
    """max|ours - theirs| / max|theirs|, the denominator at least `floor`."""
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), floor))


@pytest.mark.parametrize("config", [REFERENCE, GLYPH_UNET], ids=["reference", "glyph UNet"])
def test_outputs_and_every_gradient_match_diffusers_in_float64(config):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    ours = UNet2DModel(rng=np.random.default_rng(1), **config).to(np.float64)
    # class_embed_null_index is tinydiff's own key (which class row guidance uses as null);
    # diffusers' from_pretrained ignores it, its constructor refuses it
    theirs = diffusers.UNet2DModel(**{k: v for k, v in config.items() if k != "class_embed_null_index"}).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    rng = np.random.default_rng(3)
    s, c = config["sample_size"], config["in_channels"]
    x = rng.standard_normal((2, c, s, s))
    t = rng.integers(0, 1000, size=2)
    labels = rng.integers(0, config["num_class_embeds"], size=2) if config.get("num_class_embeds") else None
    ours.train()
    theirs.train()
    y = ours(x, t) if labels is None else ours(x, t, labels)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx, torch.tensor(t), class_labels=None if labels is None else torch.tensor(labels)).sample
    assert relative_error(y, ty.detach().numpy()) < AGREEMENT

    g = rng.standard_normal(y.shape)
    ours.zero_grad()
    dx = ours.backward(g)
    ty.backward(torch.tensor(g))
    assert relative_error(dx, tx.grad.numpy()) < AGREEMENT
    their_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    # Some gradients are zero in exact arithmetic (attention's key bias: adding the same q.b to
    # every score of a query leaves the softmax unchanged), so both sides hold round-off; such
    # tensors are measured against 1e-6 of the largest gradient of the network instead.
    floor = 1e-6 * max(np.max(np.abs(grad)) for grad in their_grads.values())
    errors = {name: relative_error(p.grad, their_grads[name], floor) for name, p in ours.named_parameters()}
    assert len(errors) == len(their_grads)
    worst = max(errors, key=errors.get)
    assert errors[worst] < AGREEMENT, f"{worst}: relative error {errors[worst]:.1e}"
