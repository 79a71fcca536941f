"""Prompts to the condition a text-to-image UNet sees: tokens, then a frozen CLIP text encoder.

Stable Diffusion (Rombach et al. 2022, sec. 3.3) conditions its UNet on the text encoder's
LAST HIDDEN STATE, one vector per token (B, N, D), through cross-attention: not on the pooled,
projected embedding that CLIP's contrastive loss trains. Every token position is kept, the
padding included, as Stable Diffusion does.

The empty prompt "" (<bos> <eos> <pad> ...) is the null condition of classifier-free guidance:
training replaces a caption by it with probability cond_drop_prob, and sampling runs the
unconditional branch on it (or on a negative prompt).

The text encoder is frozen: it runs in eval mode, which caches nothing for a backward pass.

A folder with text_encoder/ (CLIPTextModelWithProjection.save_pretrained, or CLIPTextModel)
and tokenizer/ (WordTokenizer.save) is all load_text_encoder needs: a CLIP folder written by
`tinydiff train-clip`, or a text-to-image pipeline folder.
"""

import hashlib
from pathlib import Path

import numpy as np

from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.models.clip_text import CLIPTextModel, CLIPTextModelWithProjection
from tinydiff.models.clip_text_folder import WEIGHTS_NAME
from tinydiff.pipelines import checkpoint as ckpt

TEXT_ENCODER_CLASSES = {"CLIPTextModel": CLIPTextModel, "CLIPTextModelWithProjection": CLIPTextModelWithProjection}


def load_text_encoder(folder):
    """(text_encoder, tokenizer) from folder/text_encoder and folder/tokenizer.

    The class comes from text_encoder/config.json's "architectures" (CLIPTextModelWithProjection
    when it names none). The encoder is put in eval mode. A missing part is a FileNotFoundError
    naming what was expected."""
    folder = Path(folder)
    missing = [part for part, file in (("text_encoder", "config.json"), ("tokenizer", "tokenizer.json"))
               if not (folder / part / file).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a text encoder folder (no {', '.join(p + '/' for p in missing)}); "
                                f"expected a CLIP folder (`tinydiff train-clip`'s OUT/final) or a text-to-image "
                                f"pipeline folder, with text_encoder/ and tokenizer/")
    config_file = folder / "text_encoder" / "config.json"
    names = ckpt.read_json(config_file).get("architectures") or ["CLIPTextModelWithProjection"]
    cls = TEXT_ENCODER_CLASSES.get(names[0] if isinstance(names, list) and names else None)
    if cls is None:
        raise ValueError(f"{config_file}: architectures {names!r}; expected one of {sorted(TEXT_ENCODER_CLASSES)}")
    text_encoder = cls.from_pretrained(folder / "text_encoder")
    tokenizer = WordTokenizer.load(folder / "tokenizer")
    if tokenizer.vocab_size > text_encoder.config["vocab_size"]:
        raise ValueError(f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens, but the text encoder's "
                         f"vocab_size is {text_encoder.config['vocab_size']}")
    text_encoder.eval()
    return text_encoder, tokenizer


def text_encoder_sha256(folder):
    """The sha256 (hex) of folder/text_encoder/model.safetensors, or None without that file. A
    training run records it, so that --resume refuses a text encoder retrained in place (the
    same folder, other weights), whose hidden states the run's UNet never learnt to read."""
    path = Path(folder) / "text_encoder" / WEIGHTS_NAME
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encode_prompts(text_encoder, tokenizer, prompts, batch_size=256):
    """The text encoder's last hidden state for each prompt: what cross-attention attends to
    (tau(y) of Rombach et al. 2022, sec. 3.3, whose keys and values each UNet block projects).

    Parameters
    ----------
    text_encoder : CLIPTextModel or CLIPTextModelWithProjection (frozen: run in eval mode)
    tokenizer : WordTokenizer
    prompts : str or list of str, length B ("" is the null condition)
    batch_size : int
        Prompts per forward pass.

    Returns
    -------
    ndarray, shape (B, N, D), float32; N = tokenizer.model_max_length, D = hidden_size
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts: expected a str or a list of str, got {type(prompts).__name__}")
    text_encoder.eval()  # frozen: no caches for a backward pass that never comes
    ids = tokenizer(list(prompts))  # (B, N): <bos> words <eos> <pad> ...
    states = [text_encoder(ids[i:i + batch_size]).last_hidden_state for i in range(0, len(ids), batch_size)]
    if not states:
        D = text_encoder.config["hidden_size"]
        return np.zeros((0, ids.shape[1], D), dtype=np.float32)
    return np.concatenate(states).astype(np.float32, copy=False)  # (B, N, D)
