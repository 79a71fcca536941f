"""CLIPTrainer's own parts: a NaN stops the run with the last good checkpoint kept, the
settings are checked, CLIP folders are told apart from others, and the retrieval report
measures what it says (a model given the answer scores 1, a shuffled one near chance)."""

import numpy as np
import pytest

from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.pipelines.clip_folder import load_clip_folder, written_by_tinydiff
from tinydiff.pipelines.clip_training import (CaptionBatches, CLIPTrainConfig, CLIPTrainer, attribute_labels,
                                              build_clip, retrieval_report)
from tinydiff.pipelines.train import TrainingDiverged
from tinydiff.data.captions import CaptionedShapes

TOKENIZER = WordTokenizer()


def tiny_trainer(out, data=None, steps=4, **config):
    clip = build_clip(TOKENIZER, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, projection_dim=8,
                      vision_channels=(8, 16), rng=np.random.default_rng(0))
    cfg = CLIPTrainConfig(**{"steps": steps, "batch_size": 8, "warmup_steps": 1, "image_size": 16,
                             "eval_images": 16, "eval_candidates": 8, **config})
    return CLIPTrainer(clip, TOKENIZER, data or CaptionBatches(TOKENIZER, 8, 0, 16), cfg, out, progress=False)


def test_a_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    batches = CaptionBatches(TOKENIZER, 8, 0, 16)

    def poisoned(step):
        images, ids = batches(step)
        return (images * np.nan if step == 3 else images), ids

    trainer = tiny_trainer(tmp_path, poisoned, steps=6, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match=r"step 3: .*not finite.*checkpoint is step 2"):
        trainer.run()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-0000002"]
    assert not (tmp_path / "final").exists()


@pytest.mark.parametrize("field, value, says", [
    ("eval_images", 4, "eval_images: expected an integer >= 8"),
    ("p_full", 1.5, "p_full"),
    ("image_size", 4, "image_size"),
])
def test_the_config_names_a_bad_field(field, value, says, tmp_path):
    with pytest.raises(ValueError, match=says):
        tiny_trainer(tmp_path, **{field: value})


def test_clip_folders_are_told_apart(tmp_path):
    trainer = tiny_trainer(tmp_path / "run", steps=2)
    trainer.run()
    final = tmp_path / "run" / "final"
    assert written_by_tinydiff(final)
    clip, tokenizer, info = load_clip_folder(final)
    assert info["steps"] == 2 and set(info["retrieval_heldout_pairs"]) == {"text_to_image", "image_to_text"}
    (final / "notes.txt").write_text("mine\n")
    assert not written_by_tinydiff(final)  # --overwrite would not remove it
    with pytest.raises(FileNotFoundError, match="not a CLIP folder"):
        load_clip_folder(tmp_path / "run" / "checkpoints")


class Oracle:
    """A stand-in CLIP that embeds captions and images by their true attributes (one-hot),
    optionally shuffling the images' embeddings: retrieval_report must score it 1, or about
    chance."""

    def __init__(self, labels, shuffle=None):
        attributes = attribute_labels(labels)
        self.codes = np.concatenate([np.eye(9)[v] for v in attributes.values()], axis=1)  # (N, 36)
        self.shuffle = shuffle
        self.logit_scale = None

    def eval(self):
        return self

    def __call__(self, input_ids, images):
        index = np.round(images[:, 0, 0, 0] * 1e3).astype(int)  # the caller's row number, see below
        image_codes = self.codes[index if self.shuffle is None else self.shuffle[index]]
        return self.codes[index], image_codes

    def logits_per_text(self, text_embeds, image_embeds):
        return text_embeds @ image_embeds.T


def test_the_retrieval_report_measures_attributes(tmp_path):
    images, captions, labels = CaptionedShapes(size=16, p_full=1.0).get(range(64))
    images = images.copy()
    images[:, 0, 0, 0] = np.arange(64) / 1e3  # each image carries its row number for the oracle
    right = retrieval_report(Oracle(labels), TOKENIZER, images, captions, labels, candidates=32)
    assert all(v == 1.0 for d in right.values() for k, v in d.items() if k != "top1")
    assert right["text_to_image"]["top1"] < 1.0  # two images with the same four attributes tie
    wrong = retrieval_report(Oracle(labels, np.random.default_rng(0).permutation(64)), TOKENIZER, images, captions,
                             labels, candidates=32)
    assert wrong["text_to_image"]["all"] < 0.2 and wrong["image_to_text"]["colour"] < 0.5
    with pytest.raises(ValueError, match="candidates"):
        retrieval_report(Oracle(labels), TOKENIZER, images, captions, labels, candidates=65)
