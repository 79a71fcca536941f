"""Text-conditioned motion modules (MotionAdapter's motion_cross_attention_dim, a tinydiff
extension): attn2 of every temporal block attends to the clip's text states. Finite-difference
checks of the new path in float64 (inputs, text states, parameters; the module and the whole
video UNet), the inflated image UNet still starting exactly at its per-frame output, the key
through save/load, and the module against diffusers' AnimateDiffTransformer3D(cross_attention_dim=D,
double_self_attention=False) in float64 (skipped without torch and diffusers)."""

import numpy as np
import pytest
from test_motion import ADAPTER, TOKENS, UNET, AtTimesteps, randomise_proj_out
from test_unet_condition import check_gradients

from tinydiff.models import UNet2DConditionModel
from tinydiff.models.motion import MotionAdapter, UNetMotionModel
from tinydiff.models.motion_blocks import AnimateDiffTransformer3D, sinusoidal_positions
from tinydiff.nn import Module
from tinydiff.nn.gradcheck import gradcheck
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pretrained import text2image_dir


class FramesAndText(Module):
    """A text-reading motion module seen by gradcheck: forward(x, encoder_hidden_states)."""

    def __init__(self, module, num_frames):
        super().__init__()
        self.module, self.num_frames = module, num_frames

    def forward(self, x, encoder_hidden_states):
        return self.module(x, self.num_frames, encoder_hidden_states)

    def backward(self, grad_out):
        return self.module.backward(grad_out)


def text_module(rng, layers=2):
    module = AnimateDiffTransformer3D(2, 4, num_layers=layers, norm_num_groups=2, max_seq_length=4,
                                      cross_attention_dim=5, rng=rng)
    return randomise_proj_out(module, rng)


def test_text_motion_module_gradients_to_input_text_states_and_every_parameter():
    rng = np.random.default_rng(0)
    module = text_module(rng)
    x, text = rng.standard_normal((2 * 3, 4, 2, 3)), rng.standard_normal((2, TOKENS, 5))
    report = gradcheck(FramesAndText(module, 3), (x, text), rng, max_elements=12)
    assert len(report) == 2 + len(module.parameters())
    assert module.transformer_blocks[0].attn2.to_k.weight.shape == (4, 5)  # keys from the text


def test_video_unet_with_text_motion_gradients_of_every_parameter_sample_and_text_states():
    rng = np.random.default_rng(1)
    unet = UNet2DConditionModel(rng=rng, **UNET)
    adapter = MotionAdapter(motion_cross_attention_dim=6, rng=rng, **ADAPTER)
    model = randomise_proj_out(UNetMotionModel.from_unet2d(unet, adapter), rng)
    assert model.config["motion_cross_attention_dim"] == 6
    x, context = rng.standard_normal((2, 3, 3, 8, 8)), rng.standard_normal((2, TOKENS, 6))
    assert check_gradients(AtTimesteps(model, np.array([5, 800])), (x, context), rng, max_elements=10) == len(
        model.parameters())
    # the text now reaches the motion modules: with the 2-D cross-attention's keys and values zero,
    # the output still depends on the text, through them alone
    for name, p in model.named_parameters():
        if ".attentions." in name and ".attn2.to_" in name and name.endswith(("to_k.weight", "to_v.weight")):
            p.data[...] = 0.0
    y = model(x, np.array([5, 800]), context)
    assert np.abs(model(x, np.array([5, 800]), context + 1.0) - y).max() > 1e-4


def test_inflated_shipped_unet_with_text_motion_starts_as_the_image_unet_on_every_frame():
    """Guo et al. 2023, sec. 4.2: proj_out zero makes every motion module the identity, text or not."""
    unet = load_model(text2image_dir() / "unet").to(np.float64).eval()
    adapter = MotionAdapter(block_out_channels=(64, 64), motion_num_attention_heads=4, motion_norm_num_groups=8,
                            motion_max_seq_length=32, use_motion_mid_block=False, motion_cross_attention_dim=64,
                            rng=np.random.default_rng(2))
    video = UNetMotionModel.from_unet2d(unet, adapter).eval()
    rng = np.random.default_rng(3)
    clips, context, t = rng.standard_normal((1, 4, 3, 8, 8)), rng.standard_normal((1, 5, 64)), np.array([600])
    frames = np.stack([unet(clips[:, :, f], t, context) for f in range(3)], axis=2)
    np.testing.assert_allclose(video(clips, t, context), frames, rtol=0, atol=1e-12)


def test_the_key_is_saved_loaded_and_checked(tmp_path):
    rng = np.random.default_rng(4)
    adapter = MotionAdapter(motion_cross_attention_dim=6, rng=rng, **ADAPTER)
    adapter.save_pretrained(tmp_path / "a")
    loaded = MotionAdapter.from_pretrained(tmp_path / "a")
    assert loaded.config["motion_cross_attention_dim"] == 6
    for (name, p), (_, q) in zip(adapter.named_parameters(), loaded.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    unet = UNet2DConditionModel(rng=rng, **UNET)
    video = UNetMotionModel.from_unet2d(unet, loaded)
    assert video.motion_adapter().config == adapter.config
    with pytest.raises(ValueError, match="motion_cross_attention_dim=7"):
        UNetMotionModel.from_unet2d(unet, MotionAdapter(motion_cross_attention_dim=7, **ADAPTER))
    module = text_module(rng, 1)
    with pytest.raises(ValueError, match="encoder_hidden_states exactly"):
        module(np.zeros((6, 4, 2, 3), np.float32), 3)
    with pytest.raises(ValueError, match="one per clip"):
        module(np.zeros((6, 4, 2, 3), np.float32), 3, np.zeros((6, TOKENS, 5), np.float32))


def test_text_motion_module_against_diffusers_cross_attention_transformer_3d():
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D as Theirs

    rng = np.random.default_rng(5)
    ours = text_module(rng).to(np.float64)
    theirs = Theirs(num_attention_heads=2, attention_head_dim=2, in_channels=4, num_layers=2, norm_num_groups=2,
                    cross_attention_dim=5, double_self_attention=False, positional_embeddings="sinusoidal",
                    num_positional_embeddings=4).double()
    assert diffusers.__version__
    state = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}
    for i in range(2):
        state[f"transformer_blocks.{i}.pos_embed.pe"] = torch.from_numpy(sinusoidal_positions(4, 4)[None])
    theirs.load_state_dict(state, strict=True)  # every name the same, none missing or left over
    x, text = rng.standard_normal((2 * 3, 4, 2, 3)), rng.standard_normal((2, TOKENS, 5))
    y = ours(x, 3, text)
    tx = torch.from_numpy(x).requires_grad_(True)
    ttext = torch.from_numpy(text).requires_grad_(True)
    # diffusers wants the states of every pixel's frame sequence: (B H W, M, D), clip-major
    out = theirs(tx, torch.repeat_interleave(ttext, 2 * 3, dim=0), num_frames=3)
    out = out.sample if hasattr(out, "sample") else out
    g = rng.standard_normal(y.shape)
    dx, dtext = ours.backward(g)
    out.backward(torch.from_numpy(g))
    diffs = [np.abs(y - out.detach().numpy()).max(), np.abs(dx - tx.grad.numpy()).max(),
             np.abs(dtext - ttext.grad.numpy()).max()]
    named = dict(theirs.named_parameters())
    diffs += [np.abs(p.grad - named[n].grad.numpy()).max() for n, p in ours.named_parameters()]
    print("max abs diff (output, dx, d text, parameters):", max(diffs))
    assert max(diffs) < 1e-10, diffs
