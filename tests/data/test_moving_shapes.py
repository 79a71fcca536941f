"""Moving Shapes: every frame is what its labels say (read back from the pixels), the path has
the caption's direction and speed and stays inside the frame (or folds back when bouncing),
captions read back, the motion words extend the tokenizer without moving an id, and the text
encoder's table grows the way transformers' resize_token_embeddings grows it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.data import WordTokenizer, read_shapes
from tinydiff.data.moving_shapes import (ANGLE, DIRECTIONS, MOTION_WORDS, SPEED_PX, STEP, MovingShapes,
                                         caption_for, parse_motion_caption, random_motion_caption)
from tinydiff.data.shapes import HALF_EXTENT
from tinydiff.models import CLIPTextModel


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), start=st.integers(0, 10**6), size=st.sampled_from([16, 32]))
def test_frames_show_their_labels_and_move_as_captioned(seed, start, size):
    clips, captions, labels = MovingShapes(seed=seed, size=size).get(range(start, start + 6))
    n, F = clips.shape[:2]
    assert clips.shape == (6, 8, 3, size, size) and clips.dtype == np.float32
    read = read_shapes(clips.reshape(n * F, 3, size, size))
    for field in ("shape", "colour", "size"):
        np.testing.assert_array_equal(getattr(read, field).reshape(n, F), np.repeat(getattr(labels, field)[:, None], F, 1))
    # read_shapes finds the box centre from the centre of mass: to a tenth of a pixel
    np.testing.assert_allclose(read.x.reshape(n, F), labels.x, atol=0.1)
    np.testing.assert_allclose(read.y.reshape(n, F), labels.y, atol=0.1)
    k = size / 32
    for i, text in enumerate(captions):
        named = parse_motion_caption(text)
        assert named["shape"] == labels.shape[i] and named["colour"] == labels.colour[i]
        assert named.get("size", labels.size[i]) == labels.size[i]
        assert (named["direction"], named["speed"]) == (labels.direction[i], labels.speed[i])
        step = np.array(STEP[DIRECTIONS[labels.direction[i]]]) * SPEED_PX[labels.speed[i]] * k
        np.testing.assert_allclose(labels.velocity()[i], np.broadcast_to(step, (F - 1, 2)))
        h = HALF_EXTENT[labels.size[i]] * k
        assert labels.x[i].min() - h >= 0 and labels.x[i].max() + h <= size
        assert labels.y[i].min() - h >= 0 and labels.y[i].max() + h <= size


def test_random_access_reproducible_and_every_direction_and_speed_drawn():
    data = MovingShapes(seed=3)
    clips, captions, labels = data[0:64]
    again, caps, _ = data.get([17, 5])
    np.testing.assert_array_equal(again, clips[[17, 5]])
    assert caps == [captions[17], captions[5]]
    assert set(labels.direction) == {0, 1, 2, 3} and set(labels.speed) == {0, 1}
    other, _, _ = MovingShapes(seed=4)[0:4]
    assert not np.array_equal(other, clips[:4])


def test_bounce_folds_back_inside_the_frame():
    clips, _, labels = MovingShapes(seed=1, num_frames=24, bounce=True)[0:16]
    assert clips.shape[1] == 24
    speed = np.abs(labels.velocity()).sum(axis=2)  # (N, F-1): |dx| + |dy|, one axis moves
    turned = np.sign(labels.velocity()).sum(axis=2)
    assert np.all(speed <= np.array(SPEED_PX)[labels.speed][:, None] + 1e-9)
    assert (np.diff(turned, axis=1) != 0).any()  # some clip hit a wall and came back
    half = np.array(HALF_EXTENT)[labels.size][:, None]
    assert labels.x.min() >= 0 and (labels.x + half).max() <= 32 and (labels.y - half).min() >= 0


def test_captions_and_their_parse():
    assert caption_for(1, 2, 0, 1, 0) == "a small blue square moving up slowly"
    assert caption_for(0, 0, 2, 0, 1, name_size=False) == "a red circle moving right"
    assert parse_motion_caption("a green triangle moving left") == {"shape": 2, "colour": 1, "direction": 2,
                                                                     "speed": 1}
    assert parse_motion_caption("a red circle") == {"shape": 0, "colour": 0}
    with pytest.raises(ValueError, match="one of"):
        parse_motion_caption("a red circle moving left up")
    with pytest.raises(ValueError, match="no 'moving'"):
        parse_motion_caption("a red circle slowly")
    rng = np.random.default_rng(0)
    for _ in range(20):
        named = parse_motion_caption(random_motion_caption(rng))
        assert {"shape", "colour", "direction", "speed"} <= set(named)
    assert sorted(ANGLE) == sorted(DIRECTIONS)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="num_frames"):
        MovingShapes(num_frames=16)  # a large shape cannot cross 30 px without bouncing
    with pytest.raises(TypeError, match="bounce"):
        MovingShapes(bounce="yes")
    with pytest.raises(ValueError, match="p_size"):
        MovingShapes(p_size=2)
    with pytest.raises(ValueError, match="size"):
        MovingShapes(size=20)


def test_motion_words_are_appended_and_every_caption_tokenizes(tmp_path):
    tok = WordTokenizer()
    before = dict(tok.vocab)
    assert tok.add_tokens(list(MOTION_WORDS) + ["left"]) == len(MOTION_WORDS)  # "left" is known
    assert len(tok) == len(before) + len(MOTION_WORDS)
    assert all(tok.vocab[w] == i for w, i in before.items())
    assert [tok.vocab[w] for w in MOTION_WORDS] == list(range(len(before), len(tok)))
    captions = MovingShapes(seed=2)[0:32][1]
    ids = tok(captions)
    assert ids.max() < len(tok)
    again = WordTokenizer.load(tok.save(tmp_path / "tok"))
    np.testing.assert_array_equal(again(captions), ids)
    with pytest.raises(ValueError, match="one lower-case word"):
        tok.add_tokens(["two words"])
    with pytest.raises(ValueError, match="unknown word"):
        WordTokenizer()("a red circle moving up")


def test_transformers_reads_the_extended_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = WordTokenizer()
    tok.add_tokens(list(MOTION_WORDS))
    fast = transformers.PreTrainedTokenizerFast.from_pretrained(tok.save(tmp_path / "tok"))
    captions = MovingShapes(seed=2)[0:16][1]
    theirs = np.array(fast(captions, padding="max_length", max_length=16)["input_ids"])
    np.testing.assert_array_equal(theirs, tok(captions))


TINY = dict(vocab_size=38, hidden_size=8, intermediate_size=16, projection_dim=8, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, bos_token_id=1, eos_token_id=3)


def test_resize_token_embeddings_keeps_old_rows_and_outputs():
    model = CLIPTextModel(rng=np.random.default_rng(0), **TINY)
    tok = WordTokenizer()
    old = model.text_model.embeddings.token_embedding.weight.data.copy()
    before = model.eval()(tok(["a red circle"])).last_hidden_state
    tok.add_tokens(list(MOTION_WORDS))
    table = model.resize_token_embeddings(len(tok))
    assert model.config["vocab_size"] == len(tok) == table.weight.shape[0]
    np.testing.assert_array_equal(table.weight.data[:len(old)], old)
    np.testing.assert_allclose(table.weight.data[len(old):], np.repeat(old.mean(0, keepdims=True), 4, 0), rtol=1e-6)
    np.testing.assert_array_equal(model(tok(["a red circle"])).last_hidden_state, before)
    model.train()
    out = model(tok(["a red circle moving up slowly"])).last_hidden_state
    model.zero_grad()
    model.backward(np.ones_like(out))
    grad = table.weight.grad
    assert grad.shape == table.weight.shape and np.abs(grad[tok.vocab["slowly"]]).sum() > 0
    assert np.abs(grad[tok.vocab["down"]]).sum() == 0  # "down" is not in the prompt
    with pytest.raises(ValueError, match="special token"):
        model.resize_token_embeddings(3)


def test_resize_matches_transformers_mean_resizing(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours = CLIPTextModel(rng=np.random.default_rng(1), **TINY)
    ours.save_pretrained(tmp_path / "clip")
    theirs = transformers.CLIPTextModel.from_pretrained(tmp_path / "clip")
    torch.manual_seed(0)
    theirs.resize_token_embeddings(42, mean_resizing=True)
    ours.resize_token_embeddings(42, rng=np.random.default_rng(0))
    mine = ours.text_model.embeddings.token_embedding.weight.data
    their = theirs.get_input_embeddings().weight.detach().numpy()
    assert their.shape == mine.shape == (42, 8)
    np.testing.assert_array_equal(mine[:38], their[:38])
    # both draw the new rows from N(mean, 1e-9 cov): equal to a few 1e-5 of the rows' scale
    assert np.abs(mine[38:] - their[38:]).max() < 1e-3 * np.abs(their[:38]).std()
    ours.save_pretrained(tmp_path / "grown")
    again = transformers.CLIPTextModel.from_pretrained(tmp_path / "grown")
    assert again.config.vocab_size == 42
