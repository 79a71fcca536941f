"""Benchmark the video UNet's temporal attention (Guo et al. 2023, sec. 4.2: at every pixel, the
F frames attend to each other): tinydiff's NumPy reference and Numba kernels against PyTorch,
forward and forward+backward, float32.

Rows, printed as one table (bench_kernels.py's layout and timing method, torch and Numba
alternating in one process):
- "tattn": the attention kernel alone, q, k, v (B H W, heads, F, d): many short sequences, the
  frames at each pixel, against F.scaled_dot_product_attention;
- "module": a whole motion module, AnimateDiffTransformer3D (GroupNorm over each clip, proj_in,
  one TemporalTransformerBlock: two self-attentions over the frames and a GEGLU feed-forward,
  proj_out, the reshapes between (B F, C, H, W) and (B H W, F, C)) against diffusers'
  AnimateDiffTransformer3D holding the same weights, with autograd (when diffusers is installed).
Each row also says how far the outputs are from torch's (max abs difference, float32).

- "train batch" (not in --quick): forward + backward of one training batch, 4 clips x 8 frames,
  of the shipped text-to-image UNet inflated with the motion adapter that train_video uses:
  the whole video UNet, and with its 2-D part frozen (freeze_unet2d_params: no 2-D weight
  gradients), beside the image UNet alone on the same 32 frames; the torch column is diffusers'
  UNetMotionModel.from_unet2d on the same weights (frozen: requires_grad_(False) on the 2-D part).

Shapes: the shipped video UNet's two levels (4 clips x 8 frames of the 64-channel text-to-image
UNet at 8x8 and 4x4, 4 heads of 16) and one AnimateDiff level on Stable Diffusion 1.5 (1 clip x
16 frames at 32x32, 8 heads of 40, without the reference's module row). --quick: the 4x4 level only.
FLOPs (multiply-add = 2): attention 4*S*h*F*F*d forward (S = B H W sequences), forward+backward
3x; the module adds its Linear layers, (4 + 40) * T * C^2 forward for T = S F tokens.

    python benchmarks/bench_temporal_attention.py [--quick] [--out FILE.json]
"""

import argparse
import tempfile
from pathlib import Path

try:  # torch before any Numba kernel runs (DESIGN.md, "Benchmarks are side by side and honest")
    import torch
except ImportError:
    torch = None
try:
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D as TorchMotionModule
except ImportError:
    TorchMotionModule = None

import numpy as np
from bench_kernels import attention_case, print_table, run_case, start_run, timings_ms
from train_cases import write_results

from tinydiff import kernels as K
from tinydiff.models.motion import MotionAdapter, UNetMotionModel
from tinydiff.models.motion_blocks import AnimateDiffTransformer3D
from tinydiff.pipelines.checkpoint import load_model
from tinydiff.pretrained import text2image_dir

# (clips B, frames F, channels C, H = W, heads): the shipped video UNet's levels, then SD 1.5's
SHAPES = [(4, 8, 64, 8, 4), (4, 8, 64, 4, 4), (1, 16, 320, 32, 8)]
GROUPS = {64: 8, 320: 32}


def max_abs_difference(ours, theirs):
    return None if theirs is None else float(np.max(np.abs(ours - theirs.detach().numpy())))


def kernel_case(clips, frames, channels, hw, heads, rng):
    """bench_kernels' attention case on the temporal shapes: B H W sequences of F frames."""
    impls, flops_fwd, flops_fwd_bwd = attention_case(heads, frames, channels // heads, rng, batch=clips * hw * hw)
    difference = max_abs_difference(impls["numba"][0]()[0], impls["torch"][0]()) if "torch" in impls else None
    return impls, flops_fwd, flops_fwd_bwd, difference


def module_case(clips, frames, channels, hw, heads, rng):
    module = AnimateDiffTransformer3D(heads, channels, norm_num_groups=GROUPS[channels], max_seq_length=frames,
                                      rng=rng)
    module.proj_out.weight.data[...] = rng.uniform(-0.1, 0.1, module.proj_out.weight.shape)  # not the zero init
    x, dout = (rng.standard_normal((clips * frames, channels, hw, hw), dtype=np.float32) for _ in range(2))

    def ours(backend):
        def fwd():
            with K.use(backend):
                return module(x, frames)

        def fwd_bwd():
            with K.use(backend):
                module(x, frames)
                module.backward(dout)
        return fwd, fwd_bwd

    impls = {"reference": ours("reference"), "numba": ours("fast")}
    difference = None
    if TorchMotionModule is not None:
        theirs = TorchMotionModule(num_attention_heads=heads, attention_head_dim=channels // heads,
                                   in_channels=channels, norm_num_groups=GROUPS[channels],
                                   positional_embeddings="sinusoidal", num_positional_embeddings=frames,
                                   double_self_attention=True)
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in module.state_dict().items()}, strict=False)
        tx, tdout = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dout)

        def t_fwd():
            with torch.no_grad():
                return theirs(tx, num_frames=frames)

        def t_fwd_bwd():
            theirs.zero_grad(set_to_none=True)
            tx.grad = None
            theirs(tx, num_frames=frames).backward(tdout)
        impls["torch"] = (t_fwd, t_fwd_bwd)
        difference = max_abs_difference(impls["numba"][0](), t_fwd())
    tokens = clips * frames * hw * hw
    flops = 44 * tokens * channels**2 + 2 * 4 * clips * hw * hw * frames * frames * channels  # two attentions
    return impls, flops, 3 * flops, difference


# the motion adapter the shipped video UNet is trained with (VIDEO.md's API example)
ADAPTER = dict(block_out_channels=(64, 64), motion_layers_per_block=1, motion_num_attention_heads=4,
               motion_norm_num_groups=8, motion_max_seq_length=32, use_motion_mid_block=False)
TRAIN_CLIPS, TRAIN_FRAMES, TEXT_TOKENS = 4, 8, 10


def training_batch_cases(rng, tmp):
    """{name: impls} for one training batch's forward + backward (see the module docstring)."""
    image = load_model(text2image_dir() / "unet")
    adapter = MotionAdapter(rng=rng, **ADAPTER)
    for name, p in adapter.named_parameters():  # as after training: proj_out away from zero
        if ".proj_out." in name:
            p.data[...] = rng.uniform(-0.05, 0.05, p.shape)
    c = image.config
    x = rng.standard_normal((TRAIN_CLIPS, c["in_channels"], TRAIN_FRAMES, 8, 8), dtype=np.float32)
    context = rng.standard_normal((TRAIN_CLIPS, TEXT_TOKENS, c["cross_attention_dim"]), dtype=np.float32)
    t = rng.integers(0, 1000, TRAIN_CLIPS)
    frames = np.ascontiguousarray(x.transpose(0, 2, 1, 3, 4)).reshape(-1, c["in_channels"], 8, 8)
    frame_context, frame_t = np.repeat(context, TRAIN_FRAMES, 0), np.repeat(t, TRAIN_FRAMES)

    def step(model, *inputs):
        def fwd_bwd():
            model.zero_grad()
            y = model(*inputs)
            model.backward(np.ones_like(y))
        return fwd_bwd

    whole, frozen = (UNetMotionModel.from_unet2d(image, adapter) for _ in range(2))
    frozen.freeze_unet2d_params()
    cases = {"image UNet, 32 frames": {"numba": step(image, frames, frame_t, frame_context)},
             "video UNet, whole": {"numba": step(whole, x, t, context)},
             "video UNet, 2-D frozen": {"numba": step(frozen, x, t, context)}}
    if TorchMotionModule is not None:
        import diffusers

        adapter.save_pretrained(tmp / "motion_adapter")
        their_unet = diffusers.UNet2DConditionModel.from_pretrained(text2image_dir() / "unet")
        their_adapter = diffusers.MotionAdapter.from_pretrained(tmp / "motion_adapter")
        tx, tt = torch.from_numpy(x), torch.from_numpy(t)
        # per frame, as diffusers' UNetMotionModel wants them
        tcontext = torch.from_numpy(np.repeat(context, TRAIN_FRAMES, 0)).requires_grad_(True)
        tframes, tframe_t = torch.from_numpy(frames), torch.from_numpy(frame_t)

        def t_step(model, *inputs):
            def fwd_bwd():
                model.zero_grad(set_to_none=True)
                y = model(*inputs).sample
                y.backward(torch.ones_like(y))
            return fwd_bwd

        t_whole, t_frozen = (diffusers.UNetMotionModel.from_unet2d(their_unet, their_adapter) for _ in range(2))
        t_frozen.freeze_unet2d_params()
        tx.requires_grad_(True)
        cases["image UNet, 32 frames"]["torch"] = t_step(their_unet, tframes.requires_grad_(True), tframe_t, tcontext)
        cases["video UNet, whole"]["torch"] = t_step(t_whole, tx, tt, tcontext)
        cases["video UNet, 2-D frozen"]["torch"] = t_step(t_frozen, tx, tt, tcontext)
    return cases


def time_training_batches(repeats, tmp):
    """Rows of the training-batch table, torch and tinydiff alternating (bench_kernels.run_case's way)."""
    rows = []
    for name, impls in training_batch_cases(np.random.default_rng(1), tmp).items():
        times = {impl: [] for impl in impls}
        for block in range(2):
            for impl, fn in impls.items():
                times[impl] += timings_ms(fn, (repeats + 1 - block) // 2, 1)
        rows.append({"case": name, **{impl: float(np.median(v)) for impl, v in times.items()}})
    print(f"\none training batch ({TRAIN_CLIPS} clips x {TRAIN_FRAMES} frames, 8x8 latents), forward + backward, "
          "median ms")
    print(f"{'case':<28}{'tinydiff ms':>12}{'torch ms':>12}{'tinydiff/torch':>16}")
    for row in rows:
        torch_ms = row.get("torch")
        ratio = f"{row['numba'] / torch_ms:.2f}x" if torch_ms else "-"
        print(f"{row['case']:<28}{row['numba']:>12.0f}{torch_ms or float('nan'):>12.0f}{ratio:>16}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats, the shipped UNet's 4x4 level only (a smoke run: the test suite runs it)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "temporal_attention.json")
    args = parser.parse_args(argv)
    repeats, ref_repeats = (3, 1) if args.quick else (9, 2)
    env, sgemm = start_run(repeats)
    rng = np.random.default_rng(0)
    rows, differences = [], {}
    for clips, frames, channels, hw, heads in SHAPES[1:2] if args.quick else SHAPES:
        for kind, case in (("tattn", kernel_case), ("module", module_case)):
            impls, f1, f2, difference = case(clips, frames, channels, hw, heads, rng)
            name = f"{kind} B{clips} F{frames} C{channels} {hw}x{hw} h{heads}"
            differences[name] = difference
            rows += run_case(name, impls, f1, f2, repeats, ref_repeats,
                             skip_reference=kind == "module" and channels > 64)
    for row in rows:
        row["max_abs_difference_vs_torch"] = differences[row["case"]]
    print_table(rows, sgemm)
    print("\nmax abs difference of the forward outputs from torch's (float32):")
    for name, difference in differences.items():
        print(f"  {name:<36}{'not installed' if difference is None else format(difference, '.1e')}")
    print("(numba column: kernels/attention.py's Numba kernel over the B H W (sequence, head) pairs; the module's "
          "Linear layers are NumPy products on both tinydiff columns; torch's module is diffusers' "
          "AnimateDiffTransformer3D)")
    results = {"environment": env, "sgemm_gflops": sgemm, "quick": args.quick, "rows": rows}
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            results["training_batch"] = time_training_batches(repeats, Path(tmp))
    write_results(args.out, results)
    return rows


if __name__ == "__main__":
    main()
