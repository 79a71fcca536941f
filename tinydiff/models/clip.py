"""CLIP: a text tower and an image tower trained so that a caption and its image land close
together in one embedding space (Radford et al. 2021), named like transformers' CLIPModel
(text_model, vision_model, logit_scale).

A training step, every stage visible:

    text_embeds, image_embeds = clip(input_ids, images)          # 1. both towers
    loss = clip.contrastive_loss(text_embeds, image_embeds)      # 2. symmetric cross-entropy
    d_text, d_image = clip.contrastive_loss_backward()           # 3. into logit_scale.grad too
    clip.backward(d_text, d_image)                               # 4. into both towers

The text tower is any Module with transformers' CLIPTextModelWithProjection interface:
forward(input_ids (B, N) int64) -> (last_hidden_state (B, N, D), text_embeds (B, P)),
backward(grad_last_hidden_state=None, grad_text_embeds=None), and config["projection_dim"].
The image tower is any Module with forward(images (B, C, H, W)) -> image_embeds (B, P),
backward(grad) -> d_images and config["projection_dim"] (tinydiff.models.clip_vision).
"""

import numpy as np

from tinydiff.nn import Module, Parameter
from tinydiff.nn.checks import describe
from tinydiff.nn.contrastive import INIT_LOGIT_SCALE, clip_logits, clip_loss, clip_loss_backward


def projection_dim(tower, name):
    config = getattr(tower, "config", None)
    if not isinstance(tower, Module) or not isinstance(config, dict) or "projection_dim" not in config:
        raise TypeError(f"CLIPModel: {name} must be a Module with a config dict holding projection_dim, "
                        f"got {describe(tower)}")
    return config["projection_dim"]


class CLIPModel(Module):
    """forward(input_ids (B, N) int64, images (B, C, H, W)) -> (text_embeds (B, P), image_embeds (B, P)),
    unnormalised, ready for contrastive_loss; backward(grad_text_embeds, grad_image_embeds) ->
    (None, d_images): None for the integer ids, as Embedding returns.

    Parameters
    ----------
    text_model, vision_model : Module
        The two towers (see the module docstring), with one projection_dim P.
    logit_scale_init_value : float
        The log inverse temperature at start; CLIP's log(1 / 0.07) = 2.6593 (sec. 2.5).
    """

    def __init__(self, text_model, vision_model, logit_scale_init_value=INIT_LOGIT_SCALE):
        super().__init__()
        p_text, p_vision = projection_dim(text_model, "text_model"), projection_dim(vision_model, "vision_model")
        if p_text != p_vision:
            raise ValueError(f"CLIPModel: the towers must embed into one space, but text_model's projection_dim is "
                             f"{p_text} and vision_model's {p_vision}")
        self.text_model = text_model
        self.vision_model = vision_model
        dtype = vision_model.param_dtype() or np.float32
        self.logit_scale = Parameter(np.array(float(logit_scale_init_value), dtype=dtype))  # 0-d, as in transformers
        self._loss_cache = None

    def forward(self, input_ids, images):
        _, text_embeds = self.text_model(input_ids)  # (B, N) -> (B, P); last_hidden_state unused here
        image_embeds = self.vision_model(images)  # (B, C, H, W) -> (B, P)
        if len(text_embeds) != len(image_embeds):
            raise ValueError(f"CLIPModel: expected one caption per image, got {len(text_embeds)} rows of input_ids "
                             f"and {len(image_embeds)} images")
        return text_embeds, image_embeds

    def backward(self, grad_text_embeds, grad_image_embeds):
        d_images = self.vision_model.backward(grad_image_embeds)
        self.text_model.backward(grad_last_hidden_state=None, grad_text_embeds=grad_text_embeds)
        return None, d_images

    def contrastive_loss(self, text_embeds, image_embeds):
        """CLIP's loss on B matched pairs (row i of each from one pair), at this model's
        logit_scale (Radford et al. 2021, sec. 2.3; tinydiff.nn.contrastive). In training mode it
        keeps what contrastive_loss_backward needs."""
        loss, cache = clip_loss(image_embeds, text_embeds, self.logit_scale.data)
        self._loss_cache = cache if self.training else None
        return loss

    def contrastive_loss_backward(self, grad_loss=1.0):
        """-> (d_text_embeds (B, P), d_image_embeds (B, P)); adds d logit_scale into its .grad."""
        if self._loss_cache is None:
            raise RuntimeError("CLIPModel.contrastive_loss_backward: no saved loss. Call contrastive_loss in "
                               "training mode (model.train()) right before it; each loss is released by its backward.")
        cache, self._loss_cache = self._loss_cache, None
        d_image, d_text, d_logit_scale = clip_loss_backward(cache, grad_loss)
        if self.logit_scale.requires_grad:
            self.logit_scale.grad += d_logit_scale
        return d_text, d_image

    def logits_per_text(self, text_embeds, image_embeds):
        """The scaled cosine similarities, captions x images (N_text, N_image), for retrieval
        (tinydiff.metrics.retrieval) and for showing the similarity matrix; caches nothing."""
        return clip_logits(image_embeds, text_embeds, self.logit_scale.data).T  # (N_image, N_text) -> transposed

    def train(self, mode=True):
        self._loss_cache = None
        return super().train(mode)
