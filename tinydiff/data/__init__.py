"""Data sets made on the fly from a seed, and loaders for the user's own files.

Nothing is downloaded. Images come as float32 arrays of shape (N, C, H, W) in [-1, 1]
(background -1), labels as int64 arrays of shape (N,).

- 2-D toys (toys.py): swiss_roll, moons, gaussians8, checkerboard — (n, 2) arrays, centred
  and scaled so that E|x|^2 = 2 (per-coordinate variance 1 on average).
- GlyphDataset (glyphs.py): MNIST-like digits drawn with Pillow's built-in font.
- ShapeDataset (shapes.py): coloured circles, squares and triangles with exact attribute
  labels and captions; read_shapes recovers the attributes from pixels.
- CaptionedShapes (captions.py): Shapes with captions in varied templates, full and partial,
  and a split that holds out some colour and shape pairs (HELD_OUT_PAIRS); parse_caption
  reads back which attributes a caption names.
- WordTokenizer (tokenizer.py): the caption grammar's words to ids, saved as a folder that
  transformers' PreTrainedTokenizerFast loads.
- load_mnist / load_idx / save_idx (idx.py): MNIST and Fashion-MNIST idx files.
- load_image_folder (folder.py): a folder of images, with labels from subfolders.
- iterate_batches (batches.py): mini-batches from arrays or from the endless data sets.
"""

from tinydiff.data.batches import iterate_batches
from tinydiff.data.captions import (HELD_OUT_PAIRS, CaptionedShapes, parse_caption,
                                    random_full_caption, write_caption)
from tinydiff.data.folder import ImageFolder, load_image_folder
from tinydiff.data.glyphs import GlyphDataset
from tinydiff.data.idx import load_idx, load_mnist, parse_idx, save_idx
from tinydiff.data.shapes import (COLOUR_NAMES, COLOURS, SHAPES, SIZES, ShapeDataset,
                                  ShapeLabels, read_shapes)
from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.data.toys import checkerboard, gaussians8, moons, swiss_roll

__all__ = [
    "COLOUR_NAMES", "COLOURS", "CaptionedShapes", "GlyphDataset", "HELD_OUT_PAIRS",
    "ImageFolder", "SHAPES", "SIZES",
    "ShapeDataset", "ShapeLabels", "checkerboard", "gaussians8", "iterate_batches",
    "load_idx", "load_image_folder", "load_mnist", "moons", "parse_caption", "parse_idx",
    "random_full_caption", "read_shapes", "save_idx", "swiss_roll",
    "WordTokenizer", "write_caption",
]
