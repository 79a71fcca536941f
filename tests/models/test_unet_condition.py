"""UNet2DConditionModel and its parts (GEGLU, FeedForward, BasicTransformerBlock,
Transformer2DModel): finite-difference checks of every hand-written backward, including the
gradient to encoder_hidden_states; names; errors; eval mode caching nothing; the reference
backend agreeing with the fast one."""

import numpy as np
import pytest

from tinydiff import kernels
from tinydiff.models import Transformer2DModel, UNet2DConditionModel
from tinydiff.nn import Module, ModuleList
from tinydiff.nn.feedforward import GEGLU, FeedForward
from tinydiff.models.unet_condition_blocks import CrossAttnDownBlock2D, CrossAttnUpBlock2D, UNetMidBlock2DCrossAttn
from tinydiff.nn.gradcheck import gradcheck, numerical_gradient

TINY = dict(sample_size=8, in_channels=3, out_channels=2, block_out_channels=(8, 16), norm_num_groups=4,
            cross_attention_dim=6, attention_head_dim=2, layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
TOKENS = 3


class BlockWithSkips(Module):
    """A down block seen by gradcheck: out = h_out + sum(skip_i * w_i), the fixed weights w_i
    standing for what the up path does with each skip (None: a skip it does not use)."""

    def __init__(self, block, weights):
        super().__init__()
        self.block, self.weights = block, weights

    def forward(self, h, temb, context):
        h, skips = self.block(h, temb, context)
        self.save_for_backward(h.shape)
        return h + sum((s * w).sum() for s, w in zip(skips, self.weights) if w is not None)

    def backward(self, grad_out):
        self.saved()
        scale = grad_out.sum()  # the skips entered the output through a sum over every element
        return self.block.backward(grad_out, [None if w is None else w * scale for w in self.weights])


class Conditioned(Module):
    """The UNet with its timesteps and labels fixed: forward(sample, encoder_hidden_states)."""

    def __init__(self, model, timestep, class_labels):
        super().__init__()
        self.model, self.timestep, self.class_labels = model, timestep, class_labels

    def forward(self, sample, encoder_hidden_states):
        return self.model(sample, self.timestep, encoder_hidden_states, self.class_labels)

    def backward(self, grad_out):
        return self.model.backward(grad_out)

    def named_children(self):
        return self.model.named_children()


class UpBlock(Module):
    """An up block seen by gradcheck: forward(h, skip_0, skip_1, temb, context)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, h, skip_0, skip_1, temb, context):
        return self.block(h, [skip_0, skip_1], temb, context)

    def backward(self, grad_out):
        dh, (dskip_0, dskip_1), dtemb, dcontext = self.block.backward(grad_out)
        return dh, dskip_0, dskip_1, dtemb, dcontext


@pytest.mark.usefixtures("each_backend")
def test_geglu_and_feed_forward_gradients():
    rng = np.random.default_rng(0)
    gradcheck(GEGLU(4, 3, rng=rng), (rng.standard_normal((2, 5, 4)),), rng)
    ff = FeedForward(4, mult=2, rng=rng)
    assert [name for name, _ in ff.named_parameters()] == [
        "net.0.proj.weight", "net.0.proj.bias", "net.2.weight", "net.2.bias"]
    gradcheck(ff, (rng.standard_normal((2, 5, 4)),), rng)


@pytest.mark.usefixtures("each_backend")
@pytest.mark.parametrize("linear", [False, True], ids=["conv projections", "linear projections"])
def test_transformer_2d_gradients_to_every_parameter_and_the_context(linear):
    rng = np.random.default_rng(1)
    model = Transformer2DModel(2, 4, 8, num_layers=2, norm_num_groups=4, cross_attention_dim=6,
                               use_linear_projection=linear, rng=rng)
    x, context = rng.standard_normal((2, 8, 3, 2)), rng.standard_normal((2, TOKENS, 6))
    report = gradcheck(model, (x, context), rng, max_elements=8)
    assert len(report) == 2 + len(model.parameters())


def parameter_groups(module):
    """(name, parameters) of each child, a ModuleList's elements each on their own."""
    for name, child in module.named_children():
        parts = list(child.named_children()) if isinstance(child, ModuleList) else [("", child)]
        for part, sub in parts:
            if sub.parameters():
                yield f"{name}.{part}" if part else name, sub.parameters()


def check_gradients(module, inputs, rng, max_elements=6, eps=1e-6, rtol=1e-5):
    """A cheaper gradcheck for a whole network: central differences element by element for
    each float input (at most max_elements each), and for the parameters one directional
    derivative per child (parameter_groups) along a random direction over all its parameters.
    A wrong gradient of any tensor shows in its child's: random directions do not cancel it.
    Returns how many parameter tensors were checked."""
    module.to(np.float64).train()
    g = rng.standard_normal(np.shape(module(*inputs)))
    module.zero_grad()
    grads = module.backward(g)
    grads = grads if isinstance(grads, tuple) else (grads,)

    def loss():
        return float(np.sum(g * module(*inputs)))

    for k, (array, analytic) in enumerate(zip(inputs, grads)):
        idx = rng.choice(array.size, min(max_elements, array.size), replace=False)
        numeric = numerical_gradient(loss, array, idx, eps)
        np.testing.assert_allclose(analytic.reshape(-1)[idx], numeric, rtol=rtol, atol=1e-8, err_msg=f"input {k}")
    checked = 0
    for name, params in parameter_groups(module):
        directions = [rng.standard_normal(p.shape) for p in params]
        analytic = sum(float(np.sum(p.grad * d)) for p, d in zip(params, directions))
        originals = [p.data.copy() for p in params]
        values = []
        for step in (eps, -eps):
            for p, d, original in zip(params, directions, originals):
                p.data[...] = original + step * d
            values.append(loss())
        for p, original in zip(params, originals):
            p.data[...] = original
        numeric = (values[0] - values[1]) / (2 * eps)
        assert abs(analytic - numeric) <= rtol * max(1.0, abs(numeric)), (name, analytic, numeric)
        checked += len(params)
    return checked


@pytest.mark.usefixtures("each_backend")
def test_cross_attention_blocks_gradients_to_every_parameter_input_and_the_context():
    rng = np.random.default_rng(2)
    heads = dict(num_attention_heads=2, cross_attention_dim=6, groups=4)
    h, temb, context = rng.standard_normal((2, 4, 4, 4)), rng.standard_normal((2, 5)), rng.standard_normal((2, 3, 6))
    down = CrossAttnDownBlock2D(4, 8, 5, num_layers=2, rng=rng, **heads)
    skips = [rng.standard_normal((2, 8, 4, 4)), None, rng.standard_normal((2, 8, 2, 2))]  # one unused
    assert check_gradients(BlockWithSkips(down, skips), (h, temb, context), rng) == len(down.parameters())
    up = CrossAttnUpBlock2D(4, 8, 8, 5, num_layers=2, use_linear_projection=True, rng=rng, **heads)
    inputs = (rng.standard_normal((2, 8, 4, 4)), rng.standard_normal((2, 4, 4, 4)),
              rng.standard_normal((2, 8, 4, 4)), temb, context)
    assert check_gradients(UpBlock(up), inputs, rng) == len(up.parameters())
    mid = UNetMidBlock2DCrossAttn(8, 5, transformer_layers_per_block=2, output_scale_factor=2.0, rng=rng, **heads)
    assert check_gradients(mid, (rng.standard_normal((2, 8, 2, 2)), temb, context), rng) == len(mid.parameters())


@pytest.mark.usefixtures("each_backend")
def test_tiny_unet_gradients_of_every_parameter_sample_and_context():
    """The whole network (every element of every tensor is also compared with diffusers' in
    test_unet_condition_against_diffusers.py, where diffusers is installed)."""
    rng = np.random.default_rng(3)
    model = UNet2DConditionModel(rng=rng, num_class_embeds=3, **TINY)
    x, context = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((2, TOKENS, 6))
    wrapped = Conditioned(model, np.array([3, 700]), np.array([0, 2]))
    assert check_gradients(wrapped, (x, context), rng, max_elements=12) == len(model.parameters())


def test_names_shapes_and_eval_mode():
    model = UNet2DConditionModel(**TINY)
    names = dict(model.named_parameters())
    for name in ("conv_in.weight", "time_embedding.linear_2.bias", "down_blocks.0.resnets.0.norm1.weight",
                 "down_blocks.0.attentions.0.norm.weight", "down_blocks.0.attentions.0.proj_in.weight",
                 "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                 "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                 "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.bias",
                 "down_blocks.0.attentions.0.transformer_blocks.0.norm3.bias",
                 "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
                 "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight",
                 "down_blocks.0.downsamplers.0.conv.weight", "mid_block.attentions.0.proj_out.weight",
                 "mid_block.resnets.1.conv2.weight", "up_blocks.0.upsamplers.0.conv.weight",
                 "up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_v.weight", "conv_out.bias"):
        assert name in names, name
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.bias" not in names  # attention_bias=False
    assert names["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape == (8, 6)
    model.eval()
    y = model(np.zeros((3, 3, 8, 8), np.float32), 10, np.ones((3, TOKENS, 6), np.float32))
    assert y.shape == (3, 2, 8, 8) and y.dtype == np.float32
    assert all(m._cache is None for m in model.modules())  # eval mode caches nothing
    with pytest.raises(RuntimeError, match="no saved forward pass"):
        model.backward(np.ones_like(y))


def test_errors_name_the_argument():
    model = UNet2DConditionModel(**TINY)
    x, context = np.zeros((2, 3, 8, 8), np.float32), np.zeros((2, TOKENS, 6), np.float32)
    with pytest.raises(ValueError, match="cross_attention_dim=6"):
        model(x, 1, np.zeros((2, TOKENS, 5), np.float32))
    with pytest.raises(ValueError, match="encoder_hidden_states must be"):
        model(x, 1, np.zeros((1, TOKENS, 6), np.float32))
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model(x, 1, np.zeros((2, 6), np.float32))
    with pytest.raises(TypeError, match="encoder_hidden_states"):
        model(x, 1, context.astype(np.float64))
    with pytest.raises(ValueError, match="sample must be"):
        model(np.zeros((2, 3, 7, 7), np.float32), 1, context)
    with pytest.raises(ValueError, match="class_labels given"):
        model(x, 1, context, np.array([0, 1]))
    with pytest.raises(ValueError, match="class_labels .* required"):
        UNet2DConditionModel(num_class_embeds=2, **TINY)(x, 1, context)
    with pytest.raises(ValueError, match="divisible by their number of heads"):
        UNet2DConditionModel(**{**TINY, "attention_head_dim": 3})
    with pytest.raises(ValueError, match="attention_head_dim: expected 2 entries"):
        UNet2DConditionModel(**{**TINY, "attention_head_dim": (2, 2, 2)})
    with pytest.raises(ValueError, match="mid_block_type"):
        UNet2DConditionModel(**{**TINY, "mid_block_type": "UNetMidBlock2D"})
    with pytest.raises(ValueError, match="not supported"):
        UNet2DConditionModel(**{**TINY, "down_block_types": ("AttnDownBlock2D", "DownBlock2D")})
    with pytest.raises(TypeError, match="use_linear_projection"):
        UNet2DConditionModel(**{**TINY, "use_linear_projection": 1})
    with pytest.raises(TypeError, match="cross_attention_dim"):
        UNet2DConditionModel(**{**TINY, "cross_attention_dim": "6"})


def test_reference_backend_agrees_with_the_fast_one():
    rng = np.random.default_rng(4)
    config = dict(TINY, attention_head_dim=(2, 4), use_linear_projection=True, transformer_layers_per_block=2)
    model = UNet2DConditionModel(rng=rng, **config).to(np.float64)
    x, context = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((2, TOKENS, 6))
    g = rng.standard_normal((2, 2, 8, 8))
    results = {}
    for backend in kernels.BACKENDS:
        with kernels.use(backend):
            model.zero_grad()
            y = model(x, np.array([1, 999]), context)
            dx, dcontext = model.backward(g)
            results[backend] = [y, dx, dcontext] + [p.grad.copy() for p in model.parameters()]
    fast, reference = results.values()
    for got, want in zip(fast, reference):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(want).max()))
