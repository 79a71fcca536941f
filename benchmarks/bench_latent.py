"""Latent vs pixel diffusion on Shapes at 32x32: what a step costs and what the samples look like.

Uses the shipped models (tinydiff/pretrained: shapes_latent with its vae/, shapes_pixel; retrain
them with `python -m tinydiff.pretrained.train_shapes`). Prints three tables and writes the
numbers as JSON (default benchmarks/results/latent.json):

1. cost: forward MACs per image (counted by tinydiff.metrics.cost; FLOPs = 2 x MACs, a training
   step ~ 3 x forward) and wall time per sampling step (eval forward, batch 64) and per training
   step (forward + backward, batch 64) of the pixel UNet and the latent UNet, plus the VAE's
   decode (paid once per sample, not per step) and encode;
2. the VAE's reconstruction PSNR on held-out Shapes (one MSE over all pixels);
3. sample quality of (a) the VAE decoding z ~ N(0, I), (b) pixel diffusion, (c) latent
   diffusion (DDIM, 50 steps, from the same seed), and real held-out images for reference:
   the share judged valid shapes (tinydiff.metrics.shapes_quality), and the sharpness ratio
   (high-frequency energy relative to real images).

    python benchmarks/bench_latent.py                 # 256 samples per model
    python benchmarks/bench_latent.py --num 64 --quick
"""

import argparse
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy, so that OpenBLAS's idle threads sleep (tinydiff/runtime/process_settings.py)
import numpy as np

from tinydiff.data import ShapeDataset
from tinydiff.metrics import shapes_quality
from tinydiff.metrics.cost import count_macs
from tinydiff.nn import mse_loss
from tinydiff.pipelines import load_pipeline, sample, scheduler_from_config
from tinydiff.pipelines.latent import decode_latents, load_pipeline_vae, sample_latent, scale_latents
from tinydiff.pipelines.vae_training import psnr, reconstruct
from tinydiff.pretrained import HERE

from train_cases import write_results

BATCH = 64
HELD_OUT_SEED = 2000  # as tinydiff.pretrained.train_shapes: images no model trained on


def median_seconds(fn, repeats):
    fn()  # warm-up: Numba kernels load, buffers are allocated
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def unet_costs(model, repeats):
    c, s = model.config["in_channels"], model.config["sample_size"]
    x = np.random.default_rng(0).standard_normal((BATCH, c, s, s)).astype(np.float32)
    t = np.random.default_rng(1).integers(0, 1000, BATCH)
    macs = count_macs(model, x[:1], t[:1])

    def sampling_step():
        model.eval()
        model(x, t)

    def training_step():
        model.train()
        _, grad = mse_loss(model(x, t), x)
        model.zero_grad()
        model.backward(grad)

    return {"input": [c, s, s], "parameters": model.num_parameters(), "forward_mflops_per_image": 2 * macs / 1e6,
            "sampling_step_ms_batch64": 1e3 * median_seconds(sampling_step, repeats),
            "training_step_ms_batch64": 1e3 * median_seconds(training_step, repeats)}


def vae_costs(vae, images, repeats):
    z = vae.eval().encode(images[:BATCH]).mean
    return {"parameters": vae.num_parameters(),
            "decode_mflops_per_image": 2 * count_macs(vae.decode, z[:1]) / 1e6,
            "encode_mflops_per_image": 2 * count_macs(vae.encode, images[:1]) / 1e6,
            "decode_ms_batch64": 1e3 * median_seconds(lambda: vae.decode(z), repeats),
            "encode_ms_batch64": 1e3 * median_seconds(lambda: vae.encode(images[:BATCH]), repeats)}


def print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=256, help="samples per model (default 256)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--quick", action="store_true", help="fewer timing repeats")
    parser.add_argument("--models", type=Path, default=HERE, help="folder with shapes_latent/ (and its vae/) and shapes_pixel/")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "latent.json")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5

    vae = load_pipeline_vae(args.models / "shapes_latent")
    latent_unet, latent_sched = load_pipeline(args.models / "shapes_latent")
    latent_vae = load_pipeline_vae(args.models / "shapes_latent")
    pixel_unet, pixel_sched = load_pipeline(args.models / "shapes_pixel")
    held_out = ShapeDataset(seed=HELD_OUT_SEED)[0:512][0]
    real = ShapeDataset(seed=HELD_OUT_SEED + 1)[0:args.num][0]

    # 1. cost
    pixel, latent = unet_costs(pixel_unet, repeats), unet_costs(latent_unet, repeats)
    vae_cost = vae_costs(latent_vae, held_out, repeats)
    ratio_flops = pixel["forward_mflops_per_image"] / latent["forward_mflops_per_image"]
    ratio_time = pixel["sampling_step_ms_batch64"] / latent["sampling_step_ms_batch64"]
    steps = args.steps
    per_sample_pixel = steps * pixel["forward_mflops_per_image"]
    per_sample_latent = steps * latent["forward_mflops_per_image"] + vae_cost["decode_mflops_per_image"]
    rows = [[name, "x".join(map(str, d["input"])), f"{d['parameters'] / 1e6:.2f}",
             f"{d['forward_mflops_per_image']:.1f}", f"{3 * d['forward_mflops_per_image']:.1f}",
             f"{d['sampling_step_ms_batch64']:.0f}", f"{d['training_step_ms_batch64']:.0f}"]
            for name, d in (("pixel UNet", pixel), ("latent UNet", latent))]
    rows.append(["VAE decode (once per sample)", "4x8x8->3x32x32", f"{vae_cost['parameters'] / 1e6:.2f}",
                 f"{vae_cost['decode_mflops_per_image']:.1f}", "-", f"{vae_cost['decode_ms_batch64']:.0f}", "-"])
    rows.append(["ratio pixel / latent", "", "", f"{ratio_flops:.1f}x", f"{ratio_flops:.1f}x", f"{ratio_time:.1f}x",
                 f"{pixel['training_step_ms_batch64'] / latent['training_step_ms_batch64']:.1f}x"])
    print_table("Cost per step (MFLOPs per image; ms per batch of 64)",
                ["model", "input", "M params", "fwd MFLOPs", "train MFLOPs", "sample step ms", "train step ms"], rows)
    print(f"whole sample, {steps} DDIM steps: pixel {per_sample_pixel:.0f} MFLOPs, latent {per_sample_latent:.0f} "
          f"MFLOPs including one decode ({per_sample_pixel / per_sample_latent:.1f}x fewer)")

    # 2. reconstruction
    recon_psnr = psnr(reconstruct(vae, held_out), held_out)
    print(f"\nVAE reconstruction PSNR on {len(held_out)} held-out Shapes: {recon_psnr:.2f} dB")

    # 3. quality
    rng = np.random.default_rng
    started = time.perf_counter()
    eps = rng(7).standard_normal((args.num, 4, 8, 8)).astype(np.float32)
    prior = decode_latents(latent_vae, scale_latents(latent_vae, eps))  # decode(z), z ~ N(0, I)
    pixel_samples = sample(pixel_unet, scheduler_from_config("ddim", pixel_sched), (args.num, 3, 32, 32), rng(7),
                           steps, progress=True)
    pixel_seconds = time.perf_counter() - started
    started = time.perf_counter()
    latent_samples = sample_latent(latent_unet, scheduler_from_config("ddim", latent_sched), latent_vae, args.num,
                                   rng(7), steps, progress=True)
    latent_seconds = time.perf_counter() - started
    quality = {name: shapes_quality(x, real) for name, x in (
        ("real held-out images", ShapeDataset(seed=HELD_OUT_SEED + 2)[0:args.num][0]),
        ("(a) VAE decode of N(0, I)", prior), ("(b) pixel diffusion", pixel_samples),
        ("(c) latent diffusion", latent_samples))}
    keys = ("valid", "one_shape", "clean", "named_colour", "is_shape")
    print_table(f"Sample quality ({args.num} samples each; DDIM {steps} steps; shares of samples)",
                ["samples"] + list(keys) + ["sharpness ratio"],
                [[name] + [f"{q[k]:.3f}" for k in keys] + [f"{q['sharpness_ratio']:.2f}"] for name, q in quality.items()])
    print(f"sampling wall time for {args.num}: pixel {pixel_seconds:.0f} s, latent {latent_seconds:.0f} s (with decode)")

    report = {"cost": {"pixel_unet": pixel, "latent_unet": latent, "vae": vae_cost,
                       "forward_flops_ratio": ratio_flops, "sampling_step_time_ratio": ratio_time,
                       "mflops_per_sample": {"pixel": per_sample_pixel, "latent": per_sample_latent}},
              "vae_reconstruction_psnr_db": recon_psnr, "quality": quality, "num_samples": args.num,
              "ddim_steps": steps, "sampling_seconds": {"pixel": pixel_seconds, "latent": latent_seconds}}
    write_results(args.json, report)
    return report


if __name__ == "__main__":
    main()
