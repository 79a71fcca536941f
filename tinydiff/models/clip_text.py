"""CLIP's text encoder (Radford et al. 2021, sec. 2.4): transformers' CLIPTextModel and
CLIPTextModelWithProjection, by name, config and arithmetic, with a hand-written backward.

    ids (B, N) -> embeddings (B, N, D) -> L pre-LN causal blocks -> final_layer_norm
               -> last_hidden_state (B, N, D)
    pooled (B, D) = last_hidden_state at each row's first eos_token_id
    text_embeds (B, P) = text_projection(pooled)           (WithProjection only, no bias)

Pooling: transformers takes the first position where input_ids == eos_token_id, except for
eos_token_id == 2, where it keeps a legacy rule (the highest token id); tinydiff refuses
eos_token_id 2 so that both always pool the same token.

Folders: save_pretrained(path) writes config.json (CLIPTextConfig's fields, model_type
"clip_text_model", architectures) and model.safetensors; transformers' from_pretrained
loads them, and so does tinydiff's from_pretrained.
"""

from typing import NamedTuple

import numpy as np

from tinydiff.models.checks import check_divisible, check_model_size, config_int, config_number
from tinydiff.models.clip_text_blocks import (ACTIVATIONS, CLIPEncoder, CLIPEncoderLayer, CLIPTextEmbeddings,
                                              init_like_transformers, normal_)
from tinydiff.nn import LayerNorm, Linear, Module, Parameter
from tinydiff.nn.checks import describe
from tinydiff.nn.init import generator

INT_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "projection_dim", "num_hidden_layers",
              "num_attention_heads", "max_position_embeddings")
TOKEN_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")


def validate_config(c, owner):
    """Check a CLIP text config dict (CLIPTextConfig's field names); returns it, normalised."""
    for key in INT_FIELDS:
        c[key] = config_int(c[key], key, owner)
    for key in TOKEN_FIELDS:
        c[key] = config_int(c[key], key, owner, minimum=0)
        if c[key] >= c["vocab_size"]:
            raise ValueError(f"{owner}: {key}={c[key]} must be < vocab_size={c['vocab_size']}")
    if c["eos_token_id"] == 2:
        raise ValueError(f"{owner}: eos_token_id=2 is refused: transformers then pools at the highest "
                         f"token id (a legacy rule) instead of the first eos; use another id")
    if c["hidden_act"] not in ACTIVATIONS:
        raise ValueError(f"{owner}: hidden_act must be one of {sorted(ACTIVATIONS)}, got {c['hidden_act']!r}")
    c["layer_norm_eps"] = float(config_number(c["layer_norm_eps"], "layer_norm_eps", owner, positive=True))
    c["initializer_factor"] = float(config_number(c["initializer_factor"], "initializer_factor", owner,
                                                  positive=True))
    check_divisible([c["hidden_size"]], "hidden_size", c["num_attention_heads"], "num_attention_heads", owner)
    d, i = c["hidden_size"], c["intermediate_size"]
    params = (c["vocab_size"] + c["max_position_embeddings"]) * d + c["num_hidden_layers"] * (4 * d * d + 2 * d * i)
    check_model_size(owner, params, "vocab_size, hidden_size, intermediate_size, num_hidden_layers")
    return c


class CLIPTextTransformer(Module):
    """embeddings -> encoder -> final_layer_norm, and the pooled eos state.
    forward(input_ids (B, N)) -> (last_hidden_state (B, N, D), pooled (B, D));
    backward(grad_last (B, N, D) or None, grad_pooled (B, D) or None) -> None."""

    def __init__(self, c, rng):
        super().__init__()
        d = c["hidden_size"]
        self.eos_token_id = c["eos_token_id"]
        self.embeddings = CLIPTextEmbeddings(c["vocab_size"], d, c["max_position_embeddings"], rng)
        self.encoder = CLIPEncoder([
            CLIPEncoderLayer(d, c["intermediate_size"], c["num_attention_heads"], c["hidden_act"],
                             c["layer_norm_eps"], rng) for _ in range(c["num_hidden_layers"])])
        self.final_layer_norm = LayerNorm(d, eps=c["layer_norm_eps"])

    def forward(self, input_ids):
        # 1. token + position embeddings: (B, N) -> (B, N, D)
        x = self.embeddings(input_ids)
        # 2. the causal pre-LN blocks, then the final LayerNorm
        last = self.final_layer_norm(self.encoder(x))
        # 3. pool each row at its first eos (argmax of a bool row is its first True)
        eos = np.argmax(input_ids == self.eos_token_id, axis=1)  # (B,)
        self.save_for_backward(last.shape, eos)
        return last, last[np.arange(len(eos)), eos]  # (B, D)

    def backward(self, grad_last=None, grad_pooled=None):
        shape, eos = self.saved()
        dtype = self.final_layer_norm.weight.dtype
        dlast = np.zeros(shape, dtype) if grad_last is None else np.array(grad_last, dtype=dtype)
        if grad_pooled is not None:
            dlast[np.arange(len(eos)), eos] += grad_pooled  # 3. the pooled rows' gradient
        dx = self.encoder.backward(self.final_layer_norm.backward(dlast))  # 2.
        return self.embeddings.backward(dx)  # 1. None: ids have no gradient


class CLIPTextModelOutput(NamedTuple):
    """CLIPTextModel's outputs, named as transformers' BaseModelOutputWithPooling."""
    last_hidden_state: np.ndarray  # (B, N, D)
    pooler_output: np.ndarray  # (B, D)


class CLIPTextModelWithProjectionOutput(NamedTuple):
    """CLIPTextModelWithProjection's outputs, named as transformers' CLIPTextModelOutput."""
    last_hidden_state: np.ndarray  # (B, N, D)
    text_embeds: np.ndarray  # (B, P)


class CLIPTextModel(Module):
    """transformers' CLIPTextModel: forward(input_ids (B, N) ints) -> CLIPTextModelOutput
    (last_hidden_state (B, N, D), pooler_output (B, D)), a NamedTuple (unpacks as a pair);
    backward(grad_last_hidden_state=None, grad_pooler_output=None) -> None, adding into every
    parameter's .grad.

    Arguments are CLIPTextConfig's fields (defaults: transformers' openai/clip-vit-base-patch32
    text config, except that projection_dim only matters WithProjection); rng draws the initial
    weights as transformers' _init_weights does. input_ids: values in [0, vocab_size),
    N <= max_position_embeddings, and every row must hold eos_token_id (it is pooled).
    """

    projected = False

    def __init__(self, vocab_size=49408, hidden_size=512, intermediate_size=2048, projection_dim=512,
                 num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=49406,
                 eos_token_id=49407, initializer_factor=1.0, rng=None):
        super().__init__()
        owner = type(self).__name__
        self.config = c = validate_config(dict(
            vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
            projection_dim=projection_dim, num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads, max_position_embeddings=max_position_embeddings,
            hidden_act=hidden_act, layer_norm_eps=layer_norm_eps, pad_token_id=pad_token_id,
            bos_token_id=bos_token_id, eos_token_id=eos_token_id, initializer_factor=initializer_factor,
        ), owner)
        rng = generator(rng)
        self.text_model = CLIPTextTransformer(c, rng)
        init_like_transformers(self.text_model, c["num_hidden_layers"], c["initializer_factor"], rng)
        if self.projected:
            self.text_projection = Linear(c["hidden_size"], c["projection_dim"], bias=False, rng=rng)
            normal_(self.text_projection.weight, c["hidden_size"] ** -0.5 * c["initializer_factor"], rng)

    def check_input_ids(self, input_ids):
        """(B, N) integers in range, N <= max_position_embeddings, an eos in every row."""
        c, owner = self.config, type(self).__name__
        ids = np.asarray(input_ids)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 2 or ids.shape[1] == 0:
            raise TypeError(f"{owner}: input_ids must be a (B, N) integer array with N >= 1, got {describe(ids)}")
        if ids.shape[1] > c["max_position_embeddings"]:
            raise ValueError(f"{owner}: input_ids has N={ids.shape[1]} tokens; at most "
                             f"max_position_embeddings={c['max_position_embeddings']}")
        if ids.min() < 0 or ids.max() >= c["vocab_size"]:
            raise ValueError(f"{owner}: input_ids must lie in [0, vocab_size={c['vocab_size']}), got values "
                             f"in [{ids.min()}, {ids.max()}]")
        missing = np.flatnonzero(~np.any(ids == c["eos_token_id"], axis=1))
        if missing.size:
            raise ValueError(f"{owner}: input_ids row(s) {missing[:8].tolist()} hold no eos_token_id="
                             f"{c['eos_token_id']}; every row's first eos is pooled")
        return ids

    def forward(self, input_ids):
        last, pooled = self.text_model(self.check_input_ids(input_ids))
        return CLIPTextModelOutput(last, pooled)

    def backward(self, grad_last_hidden_state=None, grad_pooler_output=None):
        return self.text_model.backward(grad_last_hidden_state, grad_pooler_output)

    def resize_token_embeddings(self, new_num_tokens, rng=None):
        """Grow (or shrink) the token embedding table to new_num_tokens rows, as transformers'
        PreTrainedModel.resize_token_embeddings, after WordTokenizer.add_tokens appended words.

        Rows kept keep their values; a new row starts at the mean of the old rows (transformers'
        mean_resizing: a new word then reads as an "average" word, not as a random vector far
        from every trained one), plus N(0, 1e-9 cov) noise drawn from rng when given (as
        transformers does; None adds none). config["vocab_size"] follows. Call it before
        building an optimizer: the table becomes a new Parameter. Returns the new table.
        """
        table = self.text_model.embeddings.token_embedding
        new_num_tokens = config_int(new_num_tokens, "new_num_tokens", type(self).__name__)
        special = max(self.config[k] for k in TOKEN_FIELDS)
        if new_num_tokens <= special:
            raise ValueError(f"new_num_tokens: {new_num_tokens} would drop the special token id {special}")
        old = table.weight.data
        rows = old[:new_num_tokens]
        if new_num_tokens > len(old):
            mean = old.astype(np.float64).mean(axis=0)
            grown = np.repeat(mean[None, :], new_num_tokens - len(old), axis=0)  # (K, D)
            if rng is not None:
                cov = np.cov(old.astype(np.float64), rowvar=False) * 1e-9
                grown = grown + generator(rng).multivariate_normal(np.zeros(len(mean)), cov, size=len(grown))
            rows = np.concatenate([old, grown.astype(old.dtype)])
        table.weight = Parameter(np.ascontiguousarray(rows))
        table.num_embeddings = new_num_tokens
        self.config["vocab_size"] = new_num_tokens
        return table

    def save_pretrained(self, path, dtype=np.float32):
        """Write config.json + model.safetensors, a folder transformers' from_pretrained loads."""
        from tinydiff.models.clip_text_folder import save_clip_text

        save_clip_text(self, path, dtype)

    @classmethod
    def from_pretrained(cls, path):
        """The model a folder (save_pretrained's, or transformers') describes, weights float32."""
        from tinydiff.models.clip_text_folder import load_clip_text

        return load_clip_text(cls, path)


class CLIPTextModelWithProjection(CLIPTextModel):
    """transformers' CLIPTextModelWithProjection: CLIPTextModel plus text_projection (Linear
    D -> projection_dim, no bias) of the pooled state.

    forward(input_ids (B, N)) -> CLIPTextModelWithProjectionOutput(last_hidden_state (B, N, D),
    text_embeds (B, P)); backward(grad_last_hidden_state=None, grad_text_embeds=None) -> None.
    """

    projected = True

    def forward(self, input_ids):
        last, pooled = self.text_model(self.check_input_ids(input_ids))
        return CLIPTextModelWithProjectionOutput(last, self.text_projection(pooled))

    def backward(self, grad_last_hidden_state=None, grad_text_embeds=None):
        grad_pooled = None if grad_text_embeds is None else self.text_projection.backward(grad_text_embeds)
        return self.text_model.backward(grad_last_hidden_state, grad_pooled)
