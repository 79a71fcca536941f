"""Cross-attention maps: which pixels of the image look at which word of the prompt.

In every BasicTransformerBlock of a text-conditional UNet, attn2 lets each pixel (a query)
attend to the prompt's tokens (the keys), P = softmax(Q K^T / sqrt(d)) (Rombach et al. 2022,
sec. 3.3). Row p of P says how pixel p splits its attention over the tokens; column j of P,
laid out on the feature map, is the map of token j. Hertz et al. 2022 ("Prompt-to-Prompt",
sec. 3.1 and Fig. 4) average such maps over heads, layers and sampling steps, and find that a
word's map outlines the part of the image the word describes:

    maps[b, j] = mean over steps, over attn2 layers, over heads of  upsample(P[b, :, j] on h x w)

Each layer's map is on its own feature map (8x8, 4x4, ... for 8x8 latents) and is upsampled
bilinearly to the image before the average. Since every row of P sums to 1, so do the maps
over the tokens at every pixel. With guidance only the conditional half of each batch of 2B
(the prompt's, not the empty prompt's) is used.

The kernels never keep P, so the layers recompute it while recording is on
(MultiHeadAttention.record_probabilities); recording is switched off again afterwards.

    cross_attention_maps(pipeline, prompt, rng, ...) -> CrossAttentionMaps(images, maps, tokens)
"""

from typing import NamedTuple

import numpy as np

from tinydiff.models.transformer_2d import BasicTransformerBlock
from tinydiff.nn.checks import check_positive_int


class CrossAttentionMaps(NamedTuple):
    """images (B, 3, H, W) float32 in [-1, 1], as the pipeline returns them; maps (B, M, H, W)
    float64, image b's attention to token j, summing to 1 over j at every pixel; tokens, the M
    token strings of the prompt (<bos>, its words, <eos>, then <pad>s)."""

    images: np.ndarray
    maps: np.ndarray
    tokens: list

    def word(self, word):
        """(B, H, W): the maps of the prompt's first token equal to `word`."""
        if word not in self.tokens:
            raise ValueError(f"word: {word!r} is not a token of the prompt; its tokens are {self.tokens}")
        return self.maps[:, self.tokens.index(word)]


def cross_attention_layers(unet):
    """The attn2 (cross-attention) of every BasicTransformerBlock of `unet`, in module order."""
    layers = [m.attn2 for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    if not layers:
        raise ValueError(f"unet: expected a text-conditional UNet with cross-attention, got a {type(unet).__name__} "
                         f"without BasicTransformerBlocks")
    return layers


def bilinear_matrix(n_in, n_out):
    """(n_out, n_in) weights of bilinear resampling with half-pixel centres (align_corners=False,
    as torch's interpolate and diffusers): output i samples the input at (i + 0.5) n_in / n_out
    - 0.5, clamped to the edge. Every row sums to 1."""
    where = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(where).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = where - low
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), low), 1 - frac)
    np.add.at(weights, (np.arange(n_out), high), frac)
    return weights


def upsample_bilinear(maps, size):
    """maps (..., h, w) -> (..., size, size), bilinear with half-pixel centres."""
    h, w = maps.shape[-2:]
    rows, cols = bilinear_matrix(h, size), bilinear_matrix(w, size)
    return np.einsum("ih,...hw,jw->...ij", rows, maps, cols)


def layer_maps(probabilities, batch, size):
    """One layer's P (2B or B, heads, h*w, M) -> (B, M, size, size): the conditional half,
    averaged over heads, laid out on the feature map (tokens are pixels in row-major order, as
    transformer_2d.to_tokens makes them) and upsampled."""
    p = probabilities[:batch].astype(np.float64).mean(axis=1)  # (B, h*w, M)
    side = int(round(np.sqrt(p.shape[1])))
    if side * side != p.shape[1]:
        raise ValueError(f"cross_attention_maps: expected square feature maps, got {p.shape[1]} pixels")
    grid = p.transpose(0, 2, 1).reshape(batch, p.shape[2], side, side)  # (B, M, h, w)
    return upsample_bilinear(grid, size)


def cross_attention_maps(pipeline, prompt, rng, num_inference_steps=50, num_images=1, guidance_scale=None):
    """Sample `num_images` images of one prompt with `pipeline` (a TextToImagePipeline) and
    return them with the cross-attention map of every token, averaged over heads, attn2
    layers and steps (see the module docstring).

    Parameters
    ----------
    pipeline : TextToImagePipeline
    prompt : str
    rng : numpy.random.Generator
        As for pipeline(...): the images are the ones pipeline(prompt, ...) draws with it.
    num_inference_steps, num_images : int
    guidance_scale : float, optional
        Default: the pipeline's recommended one.

    Returns
    -------
    CrossAttentionMaps(images (B, 3, H, W), maps (B, M, H, W), tokens list of M str)
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected one prompt as a str, got {type(prompt).__name__}")
    num_images = check_positive_int(num_images, "num_images")
    layers = cross_attention_layers(pipeline.unet)
    try:
        for layer in layers:
            layer.record_probabilities(True)
        images = pipeline(prompt, num_images_per_prompt=num_images, guidance_scale=guidance_scale,
                          num_inference_steps=num_inference_steps, rng=rng)
        size = images.shape[-1]
        # Hertz et al. 2022, sec. 3.1: M = softmax(Q K^T / sqrt(d)), averaged over layers and steps
        total, count = 0.0, 0
        for layer in layers:
            for probabilities in layer.recorded_probabilities:  # one per step
                total = total + layer_maps(probabilities, num_images, size)
                count += 1
    finally:
        for layer in layers:
            layer.record_probabilities(False)
    ids = pipeline.tokenizer([prompt])[0]
    tokens = [pipeline.tokenizer.tokens[int(i)] for i in ids]
    return CrossAttentionMaps(images, total / count, tokens)
