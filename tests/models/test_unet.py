"""UNet2DModel: an end-to-end finite-difference check of the hand-written backward, and,
where diffusers is installed, the same outputs and gradients as diffusers' UNet2DModel with
the same weights loaded by name."""

import numpy as np
import pytest

from tinydiff.models import UNet2DModel
from tinydiff.nn.gradcheck import gradcheck

TINY = dict(sample_size=8, in_channels=2, out_channels=1, block_out_channels=(4, 8),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=2, attention_head_dim=4, layers_per_block=1)


@pytest.mark.usefixtures("each_backend")
def test_tiny_unet_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    model = UNet2DModel(rng=rng, num_class_embeds=3, **TINY)
    x = rng.standard_normal((2, 2, 8, 8))
    report = gradcheck(model, (x, np.array([3, 700]), np.array([0, 2])), rng, max_elements=8)
    assert len(report) == 1 + len(model.parameters())  # the input and every parameter


def test_unet_shapes_names_and_errors():
    model = UNet2DModel(**TINY)
    names = dict(model.named_parameters())
    for name in ("conv_in.weight", "time_embedding.linear_1.weight", "down_blocks.0.resnets.0.norm1.weight",
                 "down_blocks.0.downsamplers.0.conv.weight", "down_blocks.1.attentions.0.group_norm.weight",
                 "down_blocks.1.attentions.0.to_out.0.weight", "mid_block.attentions.0.to_q.weight",
                 "mid_block.resnets.1.conv2.weight", "up_blocks.0.resnets.1.conv_shortcut.weight",
                 "up_blocks.0.upsamplers.0.conv.weight", "conv_norm_out.weight", "conv_out.weight"):
        assert name in names, name
    y = model(np.zeros((3, 2, 8, 8), np.float32), 10)
    assert y.shape == (3, 1, 8, 8) and y.dtype == np.float32
    with pytest.raises(ValueError, match="sample must be"):
        model(np.zeros((1, 3, 8, 8), np.float32), 1)
    with pytest.raises(ValueError, match="class_labels"):
        model(np.zeros((1, 2, 8, 8), np.float32), 1, class_labels=np.array([1]))
    with pytest.raises(TypeError, match="block_channels"):
        UNet2DModel(block_channels=(4, 8))
    with pytest.raises(ValueError, match="same length"):
        UNet2DModel(**{**TINY, "block_out_channels": (4, 8, 8)})
    with pytest.raises(ValueError, match="divisible by norm_num_groups"):
        UNet2DModel(**{**TINY, "block_out_channels": (4, 7)})
    with pytest.raises(ValueError, match="levels with attention must be divisible by attention_head_dim=4"):
        UNet2DModel(**{**TINY, "block_out_channels": (4, 6)})
    with pytest.raises(ValueError, match="not supported"):
        UNet2DModel(**{**TINY, "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D")})


def test_same_outputs_and_gradients_as_diffusers():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    rng = np.random.default_rng(1)
    config = dict(TINY, num_class_embeds=4, add_attention=True)
    model = UNet2DModel(rng=rng, **config).to(np.float64)
    theirs = diffusers.UNet2DModel(**{k: v for k, v in model.config.items()}).double()
    missing, unexpected = theirs.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)

    x = rng.standard_normal((2, 2, 8, 8))
    t, labels = np.array([5, 900]), np.array([1, 3])
    y = model(x, t, labels)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx, torch.tensor(t), class_labels=torch.tensor(labels)).sample
    # diffusers computes the sinusoidal timestep features in float32 whatever the model's
    # dtype, so agreement is to float32 round-off in those features, not to float64's.
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-8)

    g = rng.standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=1e-8)
    their_grads = dict(theirs.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, their_grads[name].grad.numpy(), rtol=1e-6, atol=1e-8, err_msg=name)



def test_null_class_index_is_checked_and_kept_out_of_configs_without_one():
    assert "class_embed_null_index" not in UNet2DModel(rng=np.random.default_rng(0), num_class_embeds=3, **TINY).config
    model = UNet2DModel(rng=np.random.default_rng(0), num_class_embeds=4, class_embed_null_index=3, **TINY)
    assert model.config["class_embed_null_index"] == 3
    with pytest.raises(ValueError, match=r"class_embed_null_index: expected an index in \[0, 4\)"):
        UNet2DModel(num_class_embeds=4, class_embed_null_index=4, **TINY)
    with pytest.raises(ValueError, match="class_embed_null_index: given .*no class embedding"):
        UNet2DModel(class_embed_null_index=0, **TINY)
