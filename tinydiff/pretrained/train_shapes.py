"""Train the shipped Shapes models from scratch: the VAE (shapes_latent/vae/), the latent UNet
that denoises its normalised latents (the rest of shapes_latent/, a pipeline folder with unet/,
scheduler/ and vae/), and the pixel-space UNet that benchmarks/bench_latent.py compares against
(shapes_pixel/). Every part resumes from its checkpoints in the work folder. The VAE is stored
once, inside the latent pipeline, to keep the package small.

    python -m tinydiff.pretrained.train_shapes                    # everything, shipped settings
    python -m tinydiff.pretrained.train_shapes --part vae --vae-steps 300 --out /some/folder
"""

from pathlib import Path

import numpy as np

from tinydiff.data import ShapeDataset
from tinydiff.diffusion import DDPMScheduler
from tinydiff.models import AutoencoderKL, UNet2DModel
from tinydiff.pipelines import TrainConfig, Trainer
from tinydiff.pipelines.checkpoint import load_model, save_model
from tinydiff.pipelines.data_sources import make_source
from tinydiff.pipelines.latent import LatentTrainer, latent_source
from tinydiff.pipelines.vae_training import VAETrainConfig, VAETrainer, psnr, reconstruct
from tinydiff.pretrained.shipping import run_resumable, script_parser, ship_pipeline

VAE_SEED, LATENT_SEED, PIXEL_SEED, HELD_OUT_SEED = 10, 11, 12, 2000

# 32x32x3 -> 4x8x8 (the usual factor-4 latent, 12x fewer numbers); measured sizes and times in
# benchmarks/bench_latent.py
SHAPES_VAE = dict(
    in_channels=3, out_channels=3, block_out_channels=(16, 32, 64), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    latent_channels=4, norm_num_groups=8, sample_size=32, mid_block_add_attention=True,
)


# The latent UNet: 4x8x8 in, attention at 4x4. The pixel UNet: the glyph model's size, on
# 3x32x32. Same training recipe for both.
SHAPES_LATENT_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(64, 64), layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8, attention_head_dim=8,
)
SHAPES_PIXEL_UNET = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8,
)
LATENT_IMAGES = 8192  # encoded once; Shapes has 5103 distinct attribute + jitter combinations


# Both UNets use the glyph model's recipe (see train_glyphs): v-prediction, min-SNR-5 weights,
# EMA 0.998.
def diffusion_config(steps, batch_size, seed):
    return TrainConfig(steps=steps, batch_size=batch_size, lr=2e-3, warmup_steps=min(100, steps // 2),
                       seed=seed, checkpoint_every=250, sample_every=500, ema_decay=0.998, min_snr_gamma=5.0)


def train_latent(out, steps, batch_size, work, stop=None):
    """stop: ship the EMA weights of the checkpoint at step `stop` of the `steps`-step schedule
    (checkpoints come every 250 steps, so stop should be a multiple of 250)."""
    vae = load_model(out / "shapes_latent" / "vae")  # the shipped (float16-stored) VAE, as users get it
    data = latent_source(vae, make_source("shapes", 256, LATENT_SEED), LATENT_IMAGES, batch_size, LATENT_SEED)
    model = UNet2DModel(rng=np.random.default_rng(LATENT_SEED), **SHAPES_LATENT_UNET)
    # no clipping of the predicted z_0 to [-1, 1]: normalised latents have unit std, not a range
    # (clipping them collapsed the samples' colours to red and green)
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False)
    trainer = LatentTrainer(model, scheduler, vae, data, diffusion_config(steps, batch_size, LATENT_SEED), work)
    minutes = run_resumable(trainer, work, until=stop)
    ship_pipeline(trainer.latest_checkpoint() if stop else Path(work) / "final", out / "shapes_latent", scheduler,
                  vae=vae)
    print(f"latent unet: {steps} steps of batch {batch_size} in {minutes:.1f} min (this run)")
    return {"latent_minutes": minutes}


def train_pixel(out, steps, batch_size, work):
    model = UNet2DModel(rng=np.random.default_rng(PIXEL_SEED), **SHAPES_PIXEL_UNET)
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    data = make_source("shapes", batch_size, PIXEL_SEED)
    trainer = Trainer(model, scheduler, data, diffusion_config(steps, batch_size, PIXEL_SEED), work)
    minutes = run_resumable(trainer, work)
    ship_pipeline(Path(work) / "final", out / "shapes_pixel", scheduler)
    print(f"pixel unet: {steps} steps of batch {batch_size} in {minutes:.1f} min (this run)")
    return {"pixel_minutes": minutes}


def held_out_shapes(count=512):
    return ShapeDataset(seed=HELD_OUT_SEED)[0:count][0]


def train_vae(out, steps, batch_size, work):
    # MSE, not L1: with L1 the decoder first settles on each channel's median over the colours
    # (white for most hues) and learned hue only slowly; a short EMA because the VAE is still
    # improving fast at the end.
    config = VAETrainConfig(steps=steps, batch_size=batch_size, lr=2e-3, warmup_steps=min(100, steps // 2),
                            ema_decay=0.99, seed=VAE_SEED, beta=1e-4, reconstruction="mse", checkpoint_every=200,
                            sample_every=400, num_samples=16)
    vae = AutoencoderKL(rng=np.random.default_rng(VAE_SEED), **SHAPES_VAE)
    trainer = VAETrainer(vae, make_source("shapes", batch_size, VAE_SEED), config, work)
    minutes = run_resumable(trainer, work)
    vae = load_model(Path(work) / "final")
    save_model(vae, out / "shapes_latent" / "vae", dtype=np.float16)  # the latent part adds unet/, scheduler/
    shipped = load_model(out / "shapes_latent" / "vae")
    images = held_out_shapes()
    score = psnr(reconstruct(shipped, images), images)
    print(f"vae: {steps} steps of batch {batch_size} in {minutes:.1f} min (this run); held-out PSNR "
          f"{score:.2f} dB (float16 weights); latents_mean {shipped.config['latents_mean']}, "
          f"latents_std {shipped.config['latents_std']}")
    return {"vae_minutes": minutes, "vae_psnr": score}


def main(argv=None):
    parser = script_parser(__doc__, ("vae", "latent", "pixel"), "runs/pretrained_shapes")
    parser.add_argument("--vae-steps", type=int, default=1600)
    parser.add_argument("--vae-batch-size", type=int, default=16)
    parser.add_argument("--latent-steps", type=int, default=3000)
    parser.add_argument("--latent-batch-size", type=int, default=64)
    parser.add_argument("--latent-stop", type=int, default=None,
                        help="ship the latent UNet's EMA weights from this step's checkpoint (a multiple of 250)")
    parser.add_argument("--pixel-steps", type=int, default=6000)
    parser.add_argument("--pixel-batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    report = {}
    if args.part in ("all", "vae"):
        report.update(train_vae(args.out, args.vae_steps, args.vae_batch_size, args.work / "vae"))
    if args.part in ("all", "latent"):
        report.update(train_latent(args.out, args.latent_steps, args.latent_batch_size, args.work / "latent",
                                   args.latent_stop))
    if args.part in ("all", "pixel"):
        report.update(train_pixel(args.out, args.pixel_steps, args.pixel_batch_size, args.work / "pixel"))
    print(report)
    return report


if __name__ == "__main__":
    main()
