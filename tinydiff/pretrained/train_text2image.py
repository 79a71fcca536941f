"""Train the text-to-image pipeline's parts from scratch. The first part is CLIP: a small text
encoder (and the image encoder it is trained against) on captioned Shapes; the text-to-image
UNet conditions on its text encoder's last hidden state. Every part resumes from its
checkpoints in the work folder.

    python -m tinydiff.pretrained.train_text2image --part clip --work runs/t2i --out /some/folder
"""

from pathlib import Path

import numpy as np

from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.pipelines.clip_folder import load_clip_folder, save_clip_folder
from tinydiff.pipelines.clip_training import CaptionBatches, CLIPTrainConfig, CLIPTrainer, build_clip
from tinydiff.pretrained.shipping import run_resumable, script_parser

CLIP_SEED = 20

# Small and quick: the whole retraining (CLIP + the diffusion UNet) must fit in 45 minutes on
# 2 cores. 16 positions: the longest caption is 12 tokens with <bos> and <eos>.
TEXT2IMAGE_CLIP = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=64,
                       intermediate_size=256, vision_channels=(16, 32, 64))
CLIP_STEPS, CLIP_BATCH_SIZE = 600, 128


def clip_train_config(steps, batch_size, seed=CLIP_SEED):
    return CLIPTrainConfig(steps=steps, batch_size=batch_size, lr=2e-3, warmup_steps=min(50, steps // 2),
                           ema_decay=0.99, seed=seed, checkpoint_every=100, sample_every=100)


def train_clip(out, steps=CLIP_STEPS, batch_size=CLIP_BATCH_SIZE, work="runs/text2image/clip"):
    """Train CLIP with TEXT2IMAGE_CLIP in `work` (resumed if it holds checkpoints) and copy its
    final CLIP folder (text_encoder/, tokenizer/, image_encoder/, clip.json) to `out`.
    Returns {"clip_minutes": minutes of this call, "clip_retrieval": clip.json's retrieval}."""
    tokenizer = WordTokenizer()
    clip = build_clip(tokenizer, rng=np.random.default_rng(CLIP_SEED), **TEXT2IMAGE_CLIP)
    config = clip_train_config(steps, batch_size)
    trainer = CLIPTrainer(clip, tokenizer, CaptionBatches(tokenizer, batch_size, CLIP_SEED), config, work)
    minutes = run_resumable(trainer, work)
    trained, tokenizer, info = load_clip_folder(Path(work) / "final")
    save_clip_folder(trained, tokenizer, out, {k: v for k, v in info.items() if k != "logit_scale"})
    t2i, i2t = info["retrieval"]["text_to_image"], info["retrieval"]["image_to_text"]
    print(f"clip: {steps} steps of batch {batch_size} in {minutes:.1f} min (this run); held-out retrieval of "
          f"all four attributes text->image {t2i['all']:.1%}, image->text {i2t['all']:.1%}; in {out}")
    return {"clip_minutes": minutes, "clip_retrieval": info["retrieval"]}


def main(argv=None):
    parser = script_parser(__doc__, ("clip",), "runs/text2image")
    parser.add_argument("--clip-steps", type=int, default=CLIP_STEPS)
    parser.add_argument("--clip-batch-size", type=int, default=CLIP_BATCH_SIZE)
    args = parser.parse_args(argv)
    report = {}
    if args.part in ("all", "clip"):
        report.update(train_clip(args.out / "text2image_clip", args.clip_steps, args.clip_batch_size,
                                 args.work / "clip"))
    print(report)
    return report


if __name__ == "__main__":
    main()
