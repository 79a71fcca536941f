"""Models shipped with tinydiff, so that students sample in seconds, and the scripts that
trained them (rerun them to reproduce the weights: `python -m tinydiff.pretrained.train_glyphs`).

    glyphs/             class-conditional UNet2DModel for 16x16 glyph digits (diffusers layout)
    glyph_classifier/   ConvClassifier that tinydiff.metrics.GlyphJudge measures samples with
                        (trained on 16x16 glyphs; larger ones are block-averaged down to it)
    shapes_latent/      the Shapes latent diffusion pipeline of lesson 06, with its VAE (vae/)
    shapes_pixel/       the pixel-space Shapes model that benchmarks/bench_latent.py compares with
    shapes_text2image/  the text-to-image pipeline on captioned Shapes (lesson 08): a UNet2DConditionModel
                        on the Shapes VAE's latents, steered by text2image_clip's frozen text encoder
    text2image_clip/    the small CLIP (text and image encoders) trained on captioned Shapes
    shapes_text2video/  the text-to-video pipeline on Moving Shapes (lesson 10): shapes_text2image's UNet,
                        frozen, with motion modules, and its text encoder fine-tuned on the motion words
    dreambooth_adapters/  LoRA adapters of shapes_text2image that teach it a ring ("a sks shape") and a star
                        ("a zwx shape") from four images each (lesson 09; pytorch_lora_weights.safetensors)
    generators/         lesson 11's rivals on 16x16 glyphs, each trained 4 minutes: a DCGAN, a VAE, a pixel
                        transformer and an unconditional diffusion UNet

    folders.py          where they are, and the glyph judge built from the shipped classifier
    train_glyphs.py     the scripts that trained them, and the settings they used
    train_shapes.py
    train_text2image.py the text-to-image pipeline's parts, CLIP first (TEXT2IMAGE_CLIP)
    train_video.py      the motion modules and text encoder of shapes_text2video (and the whole-UNet run)
    train_dreambooth.py the DreamBooth adapters (ADAPTERS: concept, rare word, rank, prior preservation)
    train_generators.py lesson 11's four generators, each for the same wall-clock budget
    shipping.py         what the two scripts share
"""

from tinydiff.pretrained.folders import (CLASSIFIER_SIZE, HERE, REFERENCE_SEED, glyph_classifier_dir, glyph_judge,
                                        glyph_model_dir, missing, text2image_clip_dir, text2image_dir, text2video_dir)

__all__ = ["CLASSIFIER_SIZE", "HERE", "REFERENCE_SEED", "glyph_classifier_dir", "glyph_judge", "glyph_model_dir",
           "missing", "text2image_clip_dir", "text2image_dir", "text2video_dir"]
