"""WordTokenizer: ids laid out as documented, clear errors, a save/load round trip, and the same
ids as transformers' PreTrainedTokenizerFast reading the saved folder."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.data import CaptionedShapes, WordTokenizer, random_full_caption
from tinydiff.data.captions import CAPTION_WORDS, RARE_WORDS
from tinydiff.data.tokenizer import SPECIAL_TOKENS

PROMPTS = ["a small red circle at the top left", "Top left: a SMALL red circle",
           "a red circle, small, at the top left", "", "a sks shape", "centre:a  shape",
           "at the bottom right, a large white triangle"]


def test_special_ids_and_eos_is_not_2():
    tok = WordTokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.unk_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert tok.tokens[:4] == SPECIAL_TOKENS and tok.eos_token_id != 2
    assert tok.vocab_size == 4 + len(RARE_WORDS) + len(CAPTION_WORDS)
    assert [tok.vocab[w] for w in RARE_WORDS] == list(range(4, 4 + len(RARE_WORDS)))


@given(seed=st.integers(0, 2**32), max_length=st.integers(12, 20))
def test_layout_bos_words_eos_pad(seed, max_length):
    tok = WordTokenizer()
    rng = np.random.default_rng(seed)
    prompts = [random_full_caption(rng) for _ in range(4)] + CaptionedShapes(seed=seed)[0:4][1]
    ids = tok(prompts, max_length=max_length)
    assert ids.shape == (8, max_length) and ids.dtype == np.int64
    for row, prompt in zip(ids, prompts):
        words = prompt.replace(",", " ,").replace(":", " :").split()
        n = len(words)
        assert row[0] == tok.bos_token_id and row[n + 1] == tok.eos_token_id
        assert [tok.tokens[i] for i in row[1:n + 1]] == words
        assert (row[n + 2:] == tok.pad_token_id).all()
        assert tok.decode(row) == prompt


def test_lower_case_and_punctuation_split():
    tok = WordTokenizer()
    assert tok.tokenize("Top left:a  CIRCLE,") == ["top", "left", ":", "a", "circle", ","]
    assert np.array_equal(tok("A Red Circle"), tok(["a red circle"]))
    assert tok("").tolist()[0][:3] == [1, 3, 0]


def test_unknown_word_lists_nearest_words():
    tok = WordTokenizer()
    with pytest.raises(ValueError, match=r"unknown word 'circel'.*nearest known words: circle"):
        tok(["a red circle", "a red circel"])
    with pytest.raises(ValueError, match=r"unknown word 'center'.*centre"):
        tok("in the center")
    with pytest.raises(ValueError, match=r"unknown word 'qqqq'.*known words: .*triangle"):
        tok("qqqq")
    with pytest.raises(ValueError, match="unknown word '<'"):
        tok("<eos>")  # special tokens are not words of a prompt


def test_too_long_prompt_says_how_long():
    tok = WordTokenizer()
    with pytest.raises(ValueError, match=r"has 10 tokens with <bos> and <eos>; the limit is max_length=9"):
        tok("a small red circle at the top left", max_length=9)
    assert tok("a small red circle at the top left", max_length=10).shape == (1, 10)
    with pytest.raises(TypeError, match="prompts"):
        tok(3)
    with pytest.raises(ValueError, match="vocabulary"):
        WordTokenizer(["a", "b"])


def test_save_load_round_trip(tmp_path):
    tok = WordTokenizer(model_max_length=14)
    folder = tok.save(tmp_path / "tokenizer")
    assert sorted(p.name for p in folder.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    back = WordTokenizer.load(folder)
    assert back.tokens == tok.tokens and back.model_max_length == 14
    assert np.array_equal(back(PROMPTS), tok(PROMPTS))
    # saving again replaces the files whole (no temporary files left behind)
    tok.save(folder)
    assert len(list(folder.iterdir())) == 3
    data = json.loads((folder / "tokenizer.json").read_text())
    assert data["model"]["type"] == "WordLevel" and data["model"]["vocab"]["<eos>"] == 3
    with pytest.raises(FileNotFoundError, match="not a tokenizer folder"):
        WordTokenizer.load(tmp_path)
    # the folder is written whole, so one holding anything else is refused, not emptied
    (folder / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(FileExistsError, match="not only a tokenizer's files"):
        tok.save(folder)
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_transformers_reads_the_same_ids(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = WordTokenizer()
    folder = tok.save(tmp_path / "tokenizer")
    fast = transformers.PreTrainedTokenizerFast.from_pretrained(folder)
    prompts = PROMPTS + CaptionedShapes(seed=1)[0:32][1]
    ours = tok(prompts, max_length=16)
    theirs = np.array(fast(prompts, padding="max_length", max_length=16)["input_ids"])
    assert np.array_equal(theirs, ours)
    assert fast.model_max_length == tok.model_max_length
    assert (fast.pad_token_id, fast.bos_token_id, fast.eos_token_id, fast.unk_token_id) == (0, 1, 3, 2)
    assert fast.decode(ours[2], skip_special_tokens=True).replace(" ,", ",") == PROMPTS[2]
