"""A CLIP folder: what `tinydiff train-clip` writes as OUT/final/ and what a text-to-image
run reads its text encoder from (`--text-encoder DIR`).

    DIR/text_encoder/   CLIPTextModelWithProjection.save_pretrained (transformers' layout)
    DIR/tokenizer/      WordTokenizer.save (transformers' PreTrainedTokenizerFast loads it)
    DIR/image_encoder/  a tinydiff model folder of the CLIPConvVisionModel
    DIR/clip.json       {"logit_scale": float, "_tinydiff_version": ..., what was measured}

The folder is written atomically as a whole (tinydiff.pipelines.checkpoint), so an
interrupted save leaves the previous one intact.
"""

from pathlib import Path

import numpy as np

import tinydiff
from tinydiff.data.tokenizer import CONFIG_FILE, SPECIAL_MAP_FILE, TOKENIZER_FILE, WordTokenizer
from tinydiff.models import CLIPModel
from tinydiff.models.clip_text import CLIPTextModelWithProjection
from tinydiff.models.clip_text_folder import WEIGHTS_NAME as TEXT_WEIGHTS
from tinydiff.pipelines import checkpoint as ckpt

CLIP_JSON = "clip.json"
# every file a CLIP folder holds; a folder holding anything else holds the user's work too
CLIP_FILES = frozenset({CLIP_JSON, "text_encoder/config.json", f"text_encoder/{TEXT_WEIGHTS}",
                        f"tokenizer/{TOKENIZER_FILE}", f"tokenizer/{CONFIG_FILE}", f"tokenizer/{SPECIAL_MAP_FILE}",
                        f"image_encoder/{ckpt.CONFIG_NAME}", f"image_encoder/{ckpt.WEIGHTS_NAME}"})


def save_clip_folder(clip, tokenizer, folder, measured=None, dtype=np.float32):
    """Write `clip` (a CLIPModel whose text tower is a CLIPTextModelWithProjection) and its
    tokenizer as a CLIP folder; `measured` (JSON-able dict) joins logit_scale in clip.json;
    dtype=np.float16 halves the weights' size."""
    info = {"logit_scale": float(clip.logit_scale.data), "_tinydiff_version": tinydiff.__version__,
            **(measured or {})}

    def write(tmp):
        clip.text_model.save_pretrained(tmp / "text_encoder", dtype)
        tokenizer.save(tmp / "tokenizer")
        ckpt.save_model(clip.vision_model, tmp / "image_encoder", dtype)
        ckpt.write_json(tmp / CLIP_JSON, info)

    ckpt.write_folder_atomically(folder, write)
    return Path(folder)


def load_clip_folder(folder):
    """-> (clip CLIPModel with the saved logit_scale, tokenizer WordTokenizer, clip.json dict).
    A problem with a file is a ValueError (FileNotFoundError for a missing one) naming it."""
    folder = Path(folder)
    ckpt.recover_folder(folder)
    if not (folder / CLIP_JSON).is_file():
        raise FileNotFoundError(f"{folder}: not a CLIP folder (no {CLIP_JSON}); expected what "
                                f"`tinydiff train-clip` writes as OUT/final")
    info = ckpt.check_fields(ckpt.read_json(folder / CLIP_JSON), ("logit_scale",), folder / CLIP_JSON)
    text = CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder")
    vision = ckpt.load_model(folder / "image_encoder")
    tokenizer = WordTokenizer.load(folder / "tokenizer")
    return CLIPModel(text, vision, logit_scale_init_value=float(info["logit_scale"])), tokenizer, info


def written_by_tinydiff(folder):
    """True for a CLIP folder tinydiff wrote: clip.json has _tinydiff_version and nothing else
    lies in it (so --overwrite may remove it)."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return False
    try:
        ours = "_tinydiff_version" in ckpt.read_json(folder / CLIP_JSON)
    except (ValueError, FileNotFoundError):
        return False
    from tinydiff.pipelines.outputs import foreign_entries

    return ours and not foreign_entries(folder, CLIP_FILES)
