"""A word-level tokenizer for captioned Shapes, saved as a folder that transformers'
PreTrainedTokenizerFast loads (tokenizer.json with a WordLevel model).

Vocabulary, in id order:

    0 <pad>  1 <bos>  2 <unk>  3 <eos>      special tokens
    4 .. 11                                 RARE_WORDS ("sks", ...), reserved for new concepts
    12 ..                                   CAPTION_WORDS, the caption grammar's words
    then                                    words added later (add_tokens), e.g. the motion
                                            words of tinydiff.data.moving_shapes

Why eos is not 2: transformers' CLIPTextModel pools the text at the eos token's position, but
when config.eos_token_id == 2 (the value of CLIP's legacy configs) it pools at the highest
token id in each row instead. With eos = 3 it pools where the eos token is, as CLIP meant.

Why the rare words come right after the special tokens: their ids stay the same if the caption
grammar gains words, so a fine-tuned concept bound to "sks" keeps its embedding row.

A prompt is lower-cased and split into words with punctuation split off (captions.split_words),
then written as <bos> words <eos> <pad> ... <pad>. An unknown word and a prompt longer than
max_length are errors, not <unk> and truncation: a text-to-image prompt that silently loses a
word draws the wrong picture.
"""

import difflib
import json
from pathlib import Path

import numpy as np

from tinydiff.data.captions import CAPTION_WORDS, RARE_WORDS, split_words
from tinydiff.data.checks import check_int
from tinydiff.files import write_folder_atomically, write_json

SPECIAL_TOKENS = ("<pad>", "<bos>", "<unk>", "<eos>")
PAD, BOS, UNK, EOS = SPECIAL_TOKENS
DEFAULT_MAX_LENGTH = 16  # the longest caption of the grammar is 12 tokens with <bos> and <eos>
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"


def default_vocabulary():
    """Tokens in id order: SPECIAL_TOKENS, RARE_WORDS, CAPTION_WORDS."""
    return SPECIAL_TOKENS + RARE_WORDS + CAPTION_WORDS


class WordTokenizer:
    """Words to ids and back.

    Parameters
    ----------
    vocabulary : sequence of str, optional
        Tokens in id order, starting with SPECIAL_TOKENS; default default_vocabulary().
    model_max_length : int
        The default max_length of __call__ (the text encoder's number of positions).
    """

    def __init__(self, vocabulary=None, model_max_length=DEFAULT_MAX_LENGTH):
        tokens = default_vocabulary() if vocabulary is None else tuple(vocabulary)
        if tokens[:len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary: expected it to start with {SPECIAL_TOKENS}, got {tokens[:4]}")
        if len(set(tokens)) != len(tokens) or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError("vocabulary: expected distinct non-empty strings")
        self.model_max_length = check_int(model_max_length, "model_max_length", minimum=2)
        self.tokens = tokens
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.pad_token_id, self.bos_token_id, self.unk_token_id, self.eos_token_id = range(4)

    @property
    def vocab_size(self):
        return len(self.tokens)

    def __len__(self):
        """The number of tokens, added ones included (transformers' len(tokenizer))."""
        return len(self.tokens)

    def add_tokens(self, new_tokens):
        """Append words to the vocabulary, as transformers' add_tokens: each new word gets the
        next id, so every existing id keeps its meaning (a trained text encoder's rows stay
        right; grow its table with resize_token_embeddings(len(tokenizer))). Words already known
        are skipped. A word must be one word of split_words (lower case, no spaces, no mixed
        punctuation), or prompts could never produce it. Returns how many were added."""
        if isinstance(new_tokens, str) or not isinstance(new_tokens, (list, tuple)):
            raise TypeError(f"new_tokens: expected a list of str, got {type(new_tokens).__name__}")
        added = 0
        for word in new_tokens:
            if not isinstance(word, str) or split_words(word) != [word]:
                raise ValueError(f"new_tokens: {word!r} is not one lower-case word as prompts are split")
            if word not in self.vocab:
                self.vocab[word] = len(self.tokens)
                self.tokens = self.tokens + (word,)
                added += 1
        return added

    def tokenize(self, prompt):
        """The prompt's words, checked: 'Top left: a circle' -> ['top', 'left', ':', 'a', 'circle']."""
        words = split_words(prompt)
        words_only = list(self.tokens[len(SPECIAL_TOKENS):])
        for word in words:
            if word not in self.vocab or word in SPECIAL_TOKENS:
                near = difflib.get_close_matches(word, words_only, n=3, cutoff=0.5)
                hint = (f"nearest known words: {', '.join(near)}" if near
                        else f"known words: {' '.join(words_only)}")
                raise ValueError(f"prompt: unknown word {word!r} in {prompt!r}; {hint}")
        return words

    def __call__(self, prompts, max_length=None):
        """Token ids, <bos> words <eos> then <pad> up to max_length.

        Parameters
        ----------
        prompts : str or list of str, length B
        max_length : int, optional
            Tokens per row, <bos> and <eos> included; default model_max_length.

        Returns
        -------
        ndarray, shape (B, max_length), int64
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"prompts: expected a str or a list of str, got {type(prompts).__name__}")
        max_length = self.model_max_length if max_length is None else check_int(max_length, "max_length", 2)
        ids = np.full((len(prompts), max_length), self.pad_token_id, dtype=np.int64)
        for b, prompt in enumerate(prompts):
            row = [self.bos_token_id] + [self.vocab[w] for w in self.tokenize(prompt)] + [self.eos_token_id]
            if len(row) > max_length:
                raise ValueError(f"prompt: {prompt!r} has {len(row)} tokens with <bos> and <eos>; "
                                 f"the limit is max_length={max_length}")
            ids[b, :len(row)] = row
        return ids

    def decode(self, ids):
        """One row of ids back to text, without the special tokens."""
        words = [self.tokens[int(i)] for i in np.asarray(ids).ravel() if int(i) >= len(SPECIAL_TOKENS)]
        return " ".join(words).replace(" ,", ",").replace(" :", ":")

    def to_json(self):
        """tokenizer.json as the Hugging Face tokenizers library writes it: a WordLevel model,
        a lower-casing normalizer, whitespace-then-punctuation pre-tokenizer (the same split
        as split_words) and a template adding <bos> and <eos>."""
        special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                    "normalized": False, "special": True} for i, t in enumerate(SPECIAL_TOKENS)]

        def piece(kind, name):
            return {kind: {"id": name, "type_id": 0}}

        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": special,
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"}]},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [piece("SpecialToken", BOS), piece("Sequence", "A"), piece("SpecialToken", EOS)],
                "pair": [piece("SpecialToken", BOS), piece("Sequence", "A"), piece("SpecialToken", EOS),
                         piece("Sequence", "B"), piece("SpecialToken", EOS)],
                "special_tokens": {t: {"id": t, "ids": [self.vocab[t]], "tokens": [t]} for t in (BOS, EOS)},
            },
            "decoder": None,
            "model": {"type": "WordLevel", "vocab": dict(self.vocab), "unk_token": UNK},
        }

    def save(self, folder):
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json as the folder
        `folder`, atomically (tinydiff.files.write_folder_atomically): a tokenizer folder already
        there is replaced whole; a folder holding anything else is refused (FileExistsError),
        never emptied. Returns the folder as a Path."""
        folder = Path(folder)
        names = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD}
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **names,
                  "model_max_length": self.model_max_length, "padding_side": "right",
                  "clean_up_tokenization_spaces": False}
        files = {TOKENIZER_FILE: self.to_json(), CONFIG_FILE: config, SPECIAL_MAP_FILE: names}
        if folder.is_dir():
            others = sorted(p.name for p in folder.iterdir() if p.name not in files)
            if others:
                raise FileExistsError(f"folder: {folder} holds {others[:4]}, not only a tokenizer's files; "
                                      f"not replacing it")

        def write(tmp):
            for name, data in files.items():
                write_json(tmp / name, data)

        write_folder_atomically(folder, write)
        return folder

    @classmethod
    def load(cls, folder):
        """Read a folder written by save (or any WordLevel tokenizer.json with these special
        tokens at ids 0..3)."""
        folder = Path(folder)
        try:
            data = json.loads((folder / TOKENIZER_FILE).read_text(encoding="utf-8"))
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise FileNotFoundError(f"folder: {folder} is not a tokenizer folder "
                                    f"({err.filename} is missing)") from None
        model = data.get("model", {})
        if model.get("type") != "WordLevel":
            raise ValueError(f"folder: {folder / TOKENIZER_FILE} holds a {model.get('type')!r} model, "
                             f"expected WordLevel")
        vocab = model["vocab"]
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError(f"folder: the vocabulary in {folder / TOKENIZER_FILE} does not have ids "
                             f"0 .. {len(vocab) - 1}")
        tokens = sorted(vocab, key=vocab.get)
        return cls(tokens, model_max_length=config.get("model_max_length", DEFAULT_MAX_LENGTH))

    def __repr__(self):
        return f"WordTokenizer(vocab_size={self.vocab_size}, model_max_length={self.model_max_length})"
