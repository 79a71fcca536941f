"""Models shipped with tinydiff, so that students sample in seconds, and the scripts that
trained them (rerun them to reproduce the weights: `python -m tinydiff.pretrained.train_glyphs`).

    glyphs/             class-conditional UNet2DModel for 32x32 glyph digits (diffusers layout)
    glyph_classifier/   ConvClassifier that tinydiff.metrics.GlyphJudge measures samples with
"""

from pathlib import Path

HERE = Path(__file__).parent


def glyph_model_dir():
    return HERE / "glyphs"


def glyph_classifier_dir():
    return HERE / "glyph_classifier"


def missing(path):
    return FileNotFoundError(
        f"{path}: the shipped model is missing from this installation; retrain it with "
        f"`python -m tinydiff.pretrained.train_glyphs`"
    )
