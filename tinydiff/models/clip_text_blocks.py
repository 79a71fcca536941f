"""The CLIP text transformer's parts (Radford et al. 2021, sec. 2.4; the GPT-2 block of Radford
et al. 2019), named as in transformers' modeling_clip so that state dicts match by name.

    CLIPTextEmbeddings   token_embedding, position_embedding: x = E_tok[ids] + E_pos[0..N-1]
    CLIPAttention        q_proj, k_proj, v_proj, out_proj around causal attention
    CLIPMLP              fc1 -> hidden_act -> fc2
    CLIPEncoderLayer     pre-LN: x + attn(LN1(x)), then x + mlp(LN2(x))

Wiring only: the arithmetic is in tinydiff.nn (Embedding, Linear, LayerNorm, QuickGELU/GELU,
ScaledDotProductAttention with causal=True). Shapes: B batch, N tokens, D hidden_size,
h heads, I intermediate_size.
"""

import numpy as np

from tinydiff.nn import (GELU, Embedding, LayerNorm, Linear, Module, ModuleList, QuickGELU,
                         ScaledDotProductAttention)
from tinydiff.nn.attention import merge_heads, split_heads

# transformers' ACT2FN names for the activations a CLIP text config may choose
ACTIVATIONS = {"quick_gelu": QuickGELU, "gelu": GELU}


def normal_(param, std, rng):
    """Redraw a Parameter from N(0, std^2), as transformers' _init_weights does (float32)."""
    param.data[...] = rng.normal(0.0, std, size=param.data.shape).astype(param.data.dtype)
    return param


class CLIPTextEmbeddings(Module):
    """forward(input_ids (B, N) ints) -> (B, N, D); backward(grad (B, N, D)) -> None
    (ids have no gradient). Position j gets row j of position_embedding (positions 0..N-1)."""

    def __init__(self, vocab_size, hidden_size, max_position_embeddings, rng):
        super().__init__()
        self.token_embedding = Embedding(vocab_size, hidden_size, rng=rng)
        self.position_embedding = Embedding(max_position_embeddings, hidden_size, rng=rng)

    def forward(self, input_ids):
        positions = np.arange(input_ids.shape[1])[None, :]  # (1, N)
        return self.token_embedding(input_ids) + self.position_embedding(positions)

    def backward(self, grad_out):
        self.token_embedding.backward(grad_out)
        self.position_embedding.backward(grad_out.sum(axis=0, keepdims=True))  # (1, N, D)
        return None


class CLIPAttention(Module):
    """Multi-head causal self-attention: forward(x (B, N, D)) -> (B, N, D); backward(grad) -> dx.
    Token i sees tokens 0..i only (the text transformer is a causal language model's)."""

    def __init__(self, hidden_size, num_heads, rng):
        super().__init__()
        self.heads = num_heads
        self.k_proj = Linear(hidden_size, hidden_size, rng=rng)
        self.v_proj = Linear(hidden_size, hidden_size, rng=rng)
        self.q_proj = Linear(hidden_size, hidden_size, rng=rng)
        self.out_proj = Linear(hidden_size, hidden_size, rng=rng)
        self.attention = ScaledDotProductAttention(causal=True)

    def forward(self, x):
        q = split_heads(self.q_proj(x), self.heads)  # (B, N, D) -> (B, h, N, D/h)
        k = split_heads(self.k_proj(x), self.heads)
        v = split_heads(self.v_proj(x), self.heads)
        return self.out_proj(merge_heads(self.attention(q, k, v)))  # (B, h, N, D/h) -> (B, N, D)

    def backward(self, grad_out):
        dout = split_heads(self.out_proj.backward(grad_out), self.heads)  # (B, N, D) -> (B, h, N, D/h)
        dq, dk, dv = self.attention.backward(dout)
        return (self.q_proj.backward(merge_heads(dq)) + self.k_proj.backward(merge_heads(dk))
                + self.v_proj.backward(merge_heads(dv)))


class CLIPMLP(Module):
    """forward(x (B, N, D)) -> fc2(act(fc1(x))) (B, N, D), through (B, N, I)."""

    def __init__(self, hidden_size, intermediate_size, hidden_act, rng):
        super().__init__()
        self.fc1 = Linear(hidden_size, intermediate_size, rng=rng)
        self.activation_fn = ACTIVATIONS[hidden_act]()
        self.fc2 = Linear(intermediate_size, hidden_size, rng=rng)

    def forward(self, x):
        return self.fc2(self.activation_fn(self.fc1(x)))

    def backward(self, grad_out):
        return self.fc1.backward(self.activation_fn.backward(self.fc2.backward(grad_out)))


class CLIPEncoderLayer(Module):
    """A pre-LN transformer block: h = x + attn(LN1(x)); y = h + mlp(LN2(h)).
    forward(x (B, N, D)) -> (B, N, D); backward(grad) -> dx."""

    def __init__(self, hidden_size, intermediate_size, num_heads, hidden_act, layer_norm_eps, rng):
        super().__init__()
        self.self_attn = CLIPAttention(hidden_size, num_heads, rng)
        self.layer_norm1 = LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = CLIPMLP(hidden_size, intermediate_size, hidden_act, rng)
        self.layer_norm2 = LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x):
        h = x + self.self_attn(self.layer_norm1(x))
        return h + self.mlp(self.layer_norm2(h))

    def backward(self, grad_out):
        dh = grad_out + self.layer_norm2.backward(self.mlp.backward(grad_out))
        return dh + self.layer_norm1.backward(self.self_attn.backward(dh))


class CLIPEncoder(Module):
    """num_hidden_layers CLIPEncoderLayers in sequence, named layers.0, layers.1, ..."""

    def __init__(self, layers):
        super().__init__()
        self.layers = ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_out):
        for layer in reversed(list(self.layers)):
            grad_out = layer.backward(grad_out)
        return grad_out


def init_like_transformers(text_model, num_hidden_layers, factor, rng):
    """Redraw the weights as transformers' CLIPPreTrainedModel._init_weights does: embeddings
    N(0, (0.02 f)^2); q/k/v std D^-1/2 (2L)^-1/2 f, out_proj D^-1/2 f; fc1 (2D)^-1/2 f, fc2
    D^-1/2 (2L)^-1/2 f; Linear biases 0 (LayerNorms start at weight 1, bias 0)."""
    emb = text_model.embeddings
    normal_(emb.token_embedding.weight, 0.02 * factor, rng)
    normal_(emb.position_embedding.weight, 0.02 * factor, rng)
    for layer in text_model.encoder.layers:
        d = layer.self_attn.q_proj.in_features
        in_std = d ** -0.5 * (2 * num_hidden_layers) ** -0.5 * factor
        for proj, std in ((layer.self_attn.q_proj, in_std), (layer.self_attn.k_proj, in_std),
                          (layer.self_attn.v_proj, in_std), (layer.self_attn.out_proj, d ** -0.5 * factor),
                          (layer.mlp.fc1, (2 * d) ** -0.5 * factor), (layer.mlp.fc2, in_std)):
            normal_(proj.weight, std, rng)
            proj.bias.data[...] = 0
