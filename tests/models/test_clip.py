"""CLIPModel, the two towers and the learned temperature: gradients from CLIP's loss reach every
parameter of both towers and logit_scale (finite differences), with a tiny stand-in text tower
that has CLIPTextModelWithProjection's interface."""

import numpy as np
import pytest

from tinydiff.models import CLIPConvVisionModel, CLIPModel
from tinydiff.nn import Embedding, Linear, Module, clip_loss
from tinydiff.nn.contrastive import INIT_LOGIT_SCALE
from tinydiff.nn.gradcheck import gradcheck


class MeanPoolText(Module):
    """Stand-in text tower: Embedding -> (last_hidden_state) -> mean over tokens -> Linear."""

    def __init__(self, vocab_size, hidden_size, projection_dim, rng):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, hidden_size=hidden_size, projection_dim=projection_dim)
        self.token_embedding = Embedding(vocab_size, hidden_size, rng=rng)
        self.text_projection = Linear(hidden_size, projection_dim, bias=False, rng=rng)

    def forward(self, input_ids):
        hidden = self.token_embedding(input_ids)  # (B, N) -> (B, N, D)
        self.save_for_backward(hidden.shape)
        return hidden, self.text_projection(hidden.mean(axis=1))

    def backward(self, grad_last_hidden_state=None, grad_text_embeds=None):
        (shape,) = self.saved()
        g = np.zeros(shape) if grad_last_hidden_state is None else grad_last_hidden_state.copy()
        if grad_text_embeds is not None:
            g += self.text_projection.backward(grad_text_embeds)[:, None, :] / shape[1]
        return self.token_embedding.backward(g)


class LossOfCLIP(Module):
    """The training step's forward as one scalar, so that gradcheck covers the whole chain."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, images):
        text_embeds, image_embeds = self.clip(input_ids, images)
        return np.array([self.clip.contrastive_loss(text_embeds, image_embeds)])

    def backward(self, grad_out):
        d_text, d_image = self.clip.contrastive_loss_backward(grad_out[0])
        return self.clip.backward(d_text, d_image)


def tiny_clip(rng, projection_dim=3, logit_scale=INIT_LOGIT_SCALE):
    vision = CLIPConvVisionModel(block_out_channels=(2, 4), norm_num_groups=2, projection_dim=projection_dim, rng=rng)
    return CLIPModel(MeanPoolText(7, 5, 3, rng), vision, logit_scale)


def test_loss_gradients_reach_both_towers_and_logit_scale():
    rng = np.random.default_rng(0)
    clip = tiny_clip(rng, logit_scale=1.0)
    input_ids = rng.integers(0, 7, (3, 4))
    images = rng.uniform(-1, 1, (3, 3, 4, 4))
    report = gradcheck(LossOfCLIP(clip), (input_ids, images), rng, max_elements=10)
    names = [n for n, _ in clip.named_parameters()]
    assert names[0] == "logit_scale" and {"text_model.token_embedding.weight", "vision_model.conv_in.weight"} <= set(names)
    assert set(report) == {"input 1"} | {f"clip.{n}" for n in names}


def test_a_training_step_matches_the_functional_loss_and_lowers_it():
    rng = np.random.default_rng(1)
    clip = tiny_clip(rng)
    input_ids, images = rng.integers(0, 7, (4, 3)), rng.uniform(-1, 1, (4, 3, 4, 4)).astype(np.float32)
    text_embeds, image_embeds = clip(input_ids, images)
    assert clip.logit_scale.data.shape == () and clip.logit_scale.dtype == np.float32
    loss = clip.contrastive_loss(text_embeds, image_embeds)
    sims = clip.logits_per_text(text_embeds[:3], image_embeds)  # captions x images, any counts
    assert sims.shape == (3, 4)
    np.testing.assert_allclose(np.diag(sims), np.exp(INIT_LOGIT_SCALE) * np.sum(
        text_embeds[:3] * image_embeds[:3], axis=1) / np.linalg.norm(text_embeds[:3], axis=1)
        / np.linalg.norm(image_embeds[:3], axis=1), rtol=1e-5)
    assert loss == clip_loss(image_embeds, text_embeds, INIT_LOGIT_SCALE)[0]
    d_text, d_image = clip.contrastive_loss_backward()
    assert clip.backward(d_text, d_image)[0] is None
    for p in clip.parameters():  # one small gradient step on every parameter
        p.data -= 0.05 * p.grad
    assert clip.contrastive_loss(*clip(input_ids, images)) < loss


def test_errors_are_clear():
    rng = np.random.default_rng(2)
    vision = CLIPConvVisionModel(block_out_channels=(2,), norm_num_groups=2, projection_dim=4, rng=rng)
    with pytest.raises(ValueError, match="text_model's projection_dim is 3 and vision_model's 4"):
        CLIPModel(MeanPoolText(7, 5, 3, rng), vision)
    with pytest.raises(TypeError, match="text_model must be a Module with a config dict holding projection_dim"):
        CLIPModel(Embedding(3, 4), vision)
    clip = tiny_clip(rng)
    with pytest.raises(ValueError, match="one caption per image, got 2 rows of input_ids and 3 images"):
        clip(rng.integers(0, 7, (2, 3)), np.zeros((3, 3, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="no saved loss"):
        clip.contrastive_loss_backward()
    clip.eval()
    clip.contrastive_loss(*clip(rng.integers(0, 7, (2, 3)), np.ones((2, 3, 4, 4), np.float32)))
    with pytest.raises(RuntimeError, match="training mode"):
        clip.contrastive_loss_backward()
