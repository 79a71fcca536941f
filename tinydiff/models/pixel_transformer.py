"""An autoregressive image model, token by token like a language model: a small causal
transformer over the pixels of an 8-bit image in raster order (the GPT-2 block of Radford et al.
2019, as iGPT, Chen et al. 2020, runs it on pixels).

    tokens    the N = C H W pixel values {0..255} in raster order; the input is [BOS, x_0..x_(N-2)]
              (BOS = 256, a 257th token) so that position i predicts pixel i from pixels < i
    model     token + position embeddings -> L pre-LN causal blocks -> LayerNorm -> Linear(D, 256)
    p(x)      prod_i softmax(logits_i)[x_i]: an exact NLL, in bits/dim on the same 8-bit data
    sampling  N steps, one token each; a KV cache keeps every layer's keys and values of the
              tokens so far, so step i costs one token's work (plus attending over i keys)

The blocks are the CLIP text transformer's (CLIPEncoderLayer: causal attention, pre-LN), the
attention is tinydiff.nn's ScaledDotProductAttention(causal=True) in training and its kernel
without a mask for the one-query cached step (the query is the newest token: it may see all keys).
"""

import numpy as np

from tinydiff import kernels
from tinydiff.diffusion.likelihood import bits_per_dim
from tinydiff.models.checks import check_divisible, check_model_size, config_int
from tinydiff.models.clip_text_blocks import CLIPEncoderLayer, normal_
from tinydiff.nn import Embedding, LayerNorm, Linear, Module, ModuleList
from tinydiff.nn.attention import merge_heads, split_heads
from tinydiff.nn.checks import describe
from tinydiff.nn.init import generator
from tinydiff.nn.loss import log_softmax

OWNER = "PixelTransformer"
LEVELS = 256  # 8-bit values; the begin-of-image token is LEVELS


class PixelTransformer(Module):
    """forward(pixels (B, N) ints in [0, 255]) -> logits (B, N, 256), position i predicting pixel
    i from pixels < i; backward(dlogits (B, N, 256)) -> None.

    Parameters
    ----------
    sample_size, in_channels : int, images (C, H, H); N = C H H tokens
    hidden_size, num_layers, num_heads, intermediate_size : int, the transformer (D, L, h, I)
    """

    def __init__(self, sample_size=16, in_channels=1, hidden_size=64, num_layers=3, num_heads=4,
                 intermediate_size=256, rng=None):
        super().__init__()
        self.config = {k: config_int(v, k, OWNER) for k, v in dict(
            sample_size=sample_size, in_channels=in_channels, hidden_size=hidden_size, num_layers=num_layers,
            num_heads=num_heads, intermediate_size=intermediate_size).items()}
        check_divisible([hidden_size], "hidden_size", num_heads, "num_heads", OWNER)
        N = in_channels * sample_size ** 2
        D = hidden_size
        check_model_size(OWNER, (LEVELS * 2 + N) * D + num_layers * (4 * D * D + 2 * D * intermediate_size),
                         "sample_size, hidden_size, num_layers, intermediate_size")
        rng = generator(rng)
        self.num_tokens, self.heads = N, num_heads
        self.token_embedding = Embedding(LEVELS + 1, D, rng=rng)
        self.position_embedding = Embedding(N, D, rng=rng)
        self.layers = ModuleList([CLIPEncoderLayer(D, intermediate_size, num_heads, "gelu", 1e-5, rng)
                                  for _ in range(num_layers)])
        self.final_layer_norm = LayerNorm(D, eps=1e-5)
        self.lm_head = Linear(D, LEVELS, rng=rng)
        for emb in (self.token_embedding, self.position_embedding):  # GPT-2's N(0, 0.02^2), not N(0, 1)
            normal_(emb.weight, 0.02, rng)

    def check_pixels(self, pixels):
        pixels = np.asarray(pixels)
        if not np.issubdtype(pixels.dtype, np.integer):
            raise TypeError(f"{OWNER}: pixels must be integers in [0, 255], got {describe(pixels)}")
        if pixels.ndim != 2 or pixels.shape[1] != self.num_tokens:
            raise ValueError(f"{OWNER}: pixels must be (B, N={self.num_tokens}), got shape {pixels.shape}")
        if pixels.size and (pixels.min() < 0 or pixels.max() >= LEVELS):
            raise ValueError(f"{OWNER}: pixels must lie in [0, 255], got [{pixels.min()}, {pixels.max()}]")
        return pixels.astype(np.int64)

    def forward(self, pixels):
        pixels = self.check_pixels(pixels)
        B, N = pixels.shape
        # 1. shift right: [BOS, x_0 .. x_(N-2)], so that no position sees its own pixel
        tokens = np.concatenate([np.full((B, 1), LEVELS), pixels[:, :-1]], axis=1)  # (B, N)
        x = self.token_embedding(tokens) + self.position_embedding(np.arange(N)[None])  # (B, N, D)
        # 2. causal blocks
        for layer in self.layers:
            x = layer(x)
        # 3. 256 logits per position
        return self.lm_head(self.final_layer_norm(x))  # (B, N, D) -> (B, N, 256)

    def backward(self, grad_out):
        g = self.final_layer_norm.backward(self.lm_head.backward(grad_out))
        for layer in reversed(list(self.layers)):
            g = layer.backward(g)
        self.token_embedding.backward(g)
        self.position_embedding.backward(g.sum(axis=0, keepdims=True))  # (B, N, D) -> (1, N, D)
        return None

    def loss(self, pixels):
        """Mean NLL per token in nats and its gradient w.r.t. the logits (B, N, 256)."""
        pixels = self.check_pixels(pixels)
        logits = self.forward(pixels)
        logp = log_softmax(logits.astype(np.float64))
        B, N = pixels.shape
        picked = np.take_along_axis(logp, pixels[:, :, None], axis=2)[:, :, 0]  # (B, N)
        dlogits = np.exp(logp)
        np.put_along_axis(dlogits, pixels[:, :, None], np.take_along_axis(dlogits, pixels[:, :, None], 2) - 1, 2)
        return float(-picked.mean()), (dlogits / (B * N)).astype(logits.dtype)

    def nll_bits_per_dim(self, pixels, batch_size=128):
        """The exact NLL of each image in bits/dim (B,): -sum_i log p(x_i | x_<i) / (N ln 2)."""
        self.eval()
        pixels = self.check_pixels(pixels)
        out = []
        for i in range(0, len(pixels), batch_size):
            chunk = pixels[i:i + batch_size]
            logp = log_softmax(self.forward(chunk).astype(np.float64))
            out.append(-np.take_along_axis(logp, chunk[:, :, None], axis=2)[:, :, 0].sum(axis=1))
        return bits_per_dim(np.concatenate(out), self.num_tokens)

    # ---- one token at a time, with a KV cache -----------------------------------------------
    def empty_cache(self, batch):
        """Per layer, keys and values (B, h, N, D/h) to be filled position by position."""
        D, dtype = self.config["hidden_size"], self.param_dtype()
        shape = (batch, self.heads, self.num_tokens, D // self.heads)
        return [(np.zeros(shape, dtype), np.zeros(shape, dtype)) for _ in self.layers]

    def step_logits(self, cache, token, position):
        """The logits (B, 256) of pixel `position` given the previous token (B,) ints (BOS at
        position 0), writing this position's keys and values into `cache`. Eval mode: the
        same layers as forward, on one token."""
        self.eval()
        x = self.token_embedding(np.asarray(token)[:, None]) + self.position_embedding(np.array([[position]]))
        attend = kernels.pick(kernels.attention_forward, kernels.attention_forward_ref)
        for layer, (keys, values) in zip(self.layers, cache):
            att = layer.self_attn
            h = layer.layer_norm1(x)  # (B, 1, D)
            q = split_heads(att.q_proj(h), self.heads)  # (B, 1, D) -> (B, h, 1, D/h)
            keys[:, :, position] = split_heads(att.k_proj(h), self.heads)[:, :, 0]
            values[:, :, position] = split_heads(att.v_proj(h), self.heads)[:, :, 0]
            # the newest token attends every key so far: no mask needed
            out, _ = attend(q, keys[:, :, :position + 1], values[:, :, :position + 1], causal=False)
            x = x + att.out_proj(merge_heads(out))  # (B, h, 1, D/h) -> (B, 1, D)
            x = x + layer.mlp(layer.layer_norm2(x))
        return self.lm_head(self.final_layer_norm(x))[:, 0]  # (B, 1, 256) -> (B, 256)

    def sample(self, num, rng, temperature=1.0):
        """Pixels (num, N) ints, drawn one token at a time from softmax(logits / temperature)."""
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {temperature!r}")
        cache = self.empty_cache(num)
        pixels = np.zeros((num, self.num_tokens), dtype=np.int64)
        token = np.full(num, LEVELS)
        for i in range(self.num_tokens):
            logits = self.step_logits(cache, token, i).astype(np.float64) / temperature
            p = np.exp(log_softmax(logits))  # (B, 256)
            u = rng.random((num, 1))
            # inverse CDF; min() guards the round-off of a last cumulative sum below u
            token = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), LEVELS - 1)
            pixels[:, i] = token
        return pixels

    def to_images(self, pixels):
        """(B, N) ints -> (B, C, H, W) in [-1, 1]."""
        c, s = self.config["in_channels"], self.config["sample_size"]
        return (np.asarray(pixels).reshape(-1, c, s, s) / 127.5 - 1.0).astype(np.float32)
