"""Where the shipped models are, and the glyph judge built from the shipped classifier."""

from pathlib import Path

HERE = Path(__file__).parent
CLASSIFIER_SIZE = 16  # the side of the glyphs the shipped classifier was trained on
REFERENCE_SEED = 2000  # real glyphs the classifier never saw in training


def glyph_model_dir():
    return HERE / "glyphs"


def glyph_classifier_dir():
    return HERE / "glyph_classifier"


def text2image_dir():
    """The text-to-image pipeline (a TextToImagePipeline folder: unet/, vae/, text_encoder/,
    tokenizer/, scheduler/) that `tinydiff sample --prompt` uses by default."""
    return HERE / "shapes_text2image"


def text2video_dir():
    """The text-to-video pipeline (a TextToVideoPipeline folder: the text-to-image pipeline's
    unet/ and vae/, motion_adapter/, the text encoder that knows the motion words, tokenizer/,
    scheduler/) that `tinydiff sample --prompt "... moving ..."` uses by default."""
    return HERE / "shapes_text2video"


def text2image_clip_dir():
    """The CLIP folder whose text encoder the text-to-image pipeline conditions on (text_encoder/,
    tokenizer/, image_encoder/, clip.json with its training curves and retrieval)."""
    return HERE / "text2image_clip"


def glyph_judge(num_reference=1000):
    """A GlyphJudge with the shipped classifier, whose Frechet reference is `num_reference`
    real glyphs it did not train on."""
    from tinydiff.data import GlyphDataset
    from tinydiff.metrics import GlyphJudge
    from tinydiff.pipelines.checkpoint import load_model

    folder = glyph_classifier_dir()
    if not (folder / "config.json").is_file():
        raise missing(folder)
    reference, _ = GlyphDataset(seed=REFERENCE_SEED, size=CLASSIFIER_SIZE)[0:num_reference]
    return GlyphJudge(load_model(folder), reference)


def missing(path):
    return FileNotFoundError(
        f"{path}: the shipped model is missing from this installation; retrain it with "
        f"`python -m tinydiff.pretrained.train_glyphs`"
    )
