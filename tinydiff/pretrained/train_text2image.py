"""Train the shipped text-to-image pipeline (shapes_text2image/) from scratch: Stable Diffusion's
recipe on captioned Shapes. First CLIP: a small text encoder and the image encoder it is
trained against (text2image_clip/). Then the UNet2DConditionModel that denoises the shipped
Shapes VAE's latents, steered through cross-attention by the frozen text encoder's last hidden
state, with 10% of captions dropped to the empty prompt so that guidance has an unconditional
branch. Every part resumes from its checkpoints in the work folder.

    python -m tinydiff.pretrained.train_text2image                  # everything, shipped settings
    python -m tinydiff.pretrained.train_text2image --part clip --work runs/t2i --out /some/folder
"""

from pathlib import Path

import numpy as np

from tinydiff.data.tokenizer import WordTokenizer
from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import UNet2DConditionModel
from tinydiff.pipelines import TrainConfig
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pipelines.clip_folder import load_clip_folder, save_clip_folder
from tinydiff.pipelines.clip_training import CaptionBatches, CLIPTrainConfig, CLIPTrainer, build_clip
from tinydiff.pipelines.text_conditioning import TextToImageTrainer, captioned_latent_source
from tinydiff.pipelines.text_encoding import load_text_encoder
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained.folders import HERE
from tinydiff.pretrained.shipping import run_resumable, script_parser
from tinydiff.runtime.parallel import ParallelRunner

CLIP_SEED, UNET_SEED = 20, 21

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


# The UNet: 4x8x8 latents of the shipped Shapes VAE, cross-attention to the 64-wide text states
# at both resolutions and in the middle; the unconditional latent UNet's widths (shapes_latent).
TEXT2IMAGE_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(64, 64), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=TEXT2IMAGE_CLIP["hidden_size"], attention_head_dim=4, norm_num_groups=8,
)
UNET_STEPS, UNET_BATCH_SIZE, UNET_IMAGES = 5000, 64, 8192
COND_DROP_PROB = 0.1  # Ho & Salimans 2022 found 0.1-0.2 best
TEXT2IMAGE_GUIDANCE_SCALE = 4.0  # the recommended scale; benchmarks/bench_text2image.py measures the curve


def unet_train_config(steps, batch_size, seed=UNET_SEED):
    # the shipped Shapes latent UNet's recipe (train_shapes.diffusion_config) with caption dropout
    return TrainConfig(steps=steps, batch_size=batch_size, lr=2e-3, warmup_steps=min(100, steps // 2), seed=seed,
                       checkpoint_every=250, sample_every=500, ema_decay=0.998, min_snr_gamma=5.0,
                       cond_drop_prob=COND_DROP_PROB)


def train_unet(out, clip_folder, steps=UNET_STEPS, batch_size=UNET_BATCH_SIZE, work="runs/text2image/unet",
               processes=2):
    """Train the text-conditional UNet on the frozen text encoder in `clip_folder` and the shipped
    Shapes VAE, in `work` (resumed if it holds checkpoints); write the pipeline to `out` with
    float16 weights. Returns {"unet_minutes": minutes of this call}."""
    text_encoder, tokenizer = load_text_encoder(clip_folder)
    vae = load_model(HERE / "shapes_latent" / "vae")  # the shipped (float16-stored) VAE, as users get it
    data = captioned_latent_source(vae, text_encoder, tokenizer, UNET_IMAGES, batch_size, UNET_SEED, COND_DROP_PROB)
    model = UNet2DConditionModel(rng=np.random.default_rng(UNET_SEED), **TEXT2IMAGE_UNET)
    # no clipping of the predicted z_0: normalised latents have unit std, not a range (train_shapes)
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False)
    trainer = TextToImageTrainer(model, scheduler, vae, text_encoder, tokenizer, data,
                                 unet_train_config(steps, batch_size), work, guidance_scale=TEXT2IMAGE_GUIDANCE_SCALE,
                                 parallel=ParallelRunner(processes) if processes > 1 else None)
    minutes = run_resumable(trainer, work)
    TextToImagePipeline.from_pretrained(Path(work) / "final").save_pretrained(
        out, dtype=np.float16, guidance_scale=TEXT2IMAGE_GUIDANCE_SCALE)
    print(f"text-to-image unet: {steps} steps of batch {batch_size} in {minutes:.1f} min (this run); in {out}")
    return {"unet_minutes": minutes}


def main(argv=None):
    parser = script_parser(__doc__, ("clip", "unet"), "runs/text2image")
    parser.add_argument("--clip-steps", type=int, default=CLIP_STEPS)
    parser.add_argument("--clip-batch-size", type=int, default=CLIP_BATCH_SIZE)
    parser.add_argument("--unet-steps", type=int, default=UNET_STEPS)
    parser.add_argument("--unet-batch-size", type=int, default=UNET_BATCH_SIZE)
    parser.add_argument("--processes", type=int, default=2, help="training processes for the UNet (default 2)")
    args = parser.parse_args(argv)
    report = {}
    clip_folder = args.work / "clip" / "final"
    if args.part in ("all", "clip"):
        report.update(train_clip(args.out / "text2image_clip", args.clip_steps, args.clip_batch_size,
                                 args.work / "clip"))
    if args.part in ("all", "unet"):
        report.update(train_unet(args.out / "shapes_text2image", clip_folder, args.unet_steps, args.unet_batch_size,
                                 args.work / "unet", args.processes))
    print(report)
    return report


if __name__ == "__main__":
    main()
