"""The shipped text-to-video pipeline on Moving Shapes: does each clip show one valid shape that
keeps its shape and colour and moves the way its caption says, smoothly; and what the temporal
layers buy over the text-to-image model sampled frame by frame.

Measures tinydiff.pretrained.text2video_dir() (--model DIR for another TextToVideoPipeline
folder) with tinydiff.metrics.video_checks, which reads every frame from its pixels:

1. the video model at its recommended guidance scale, --steps steps of DPM-Solver++ 2M (or
   --scheduler ddim), --num clips of random
   motion captions (data.moving_shapes.random_motion_caption; seeds fixed): frames valid, shape
   and colour constant, as captioned, direction within 30 degrees, speed, smooth (jerk <= 1 px),
   all of them (passed); per direction; against issue 16's targets;
2. real Moving Shapes clips through the same checks (what a perfect model scores);
3. the baseline: the text-to-image pipeline (the one the video model was inflated from) draws
   each frame of --baseline-num clips from its own seed, prompted with the caption without its
   motion: valid frames, but shape, colour and place change from frame to frame (flicker);
4. --compare LABEL=DIR ...: other text-to-video folders through check 1 on the first
   --compare-num prompts (the same prompts and initial noise: a paired comparison), e.g. the
   video UNet trained whole against the motion modules on the frozen image UNet.

    python benchmarks/bench_video.py                   # 500 clips, 100 baseline clips
    python benchmarks/bench_video.py --quick           # 8 clips, 4 steps: runs, no more
    python benchmarks/bench_video.py --compare whole=runs/video/unet/final --compare-num 100

Writes the numbers as JSON (default benchmarks/results/video.json).
"""

import argparse
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy (tinydiff/runtime/process_settings.py)
import numpy as np
from train_cases import environment, write_results

from tinydiff.data.moving_shapes import DIRECTIONS, MovingShapes, random_motion_caption, still_caption
from tinydiff.metrics.video_quality import video_checks
from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pipelines.text_to_video import TextToVideoPipeline, frame_by_frame
from tinydiff.pretrained import text2image_dir, text2video_dir

PROMPT_SEED, LATENT_SEED, BASELINE_SEED = 0, 1, 2
CHUNK = 50  # clips per pipeline call: a guided UNet forward of 2 x 50 x 8 frames
TARGETS = {"frames_valid": 0.90, "direction_right": 0.85, "passed": 0.60}  # issue 16, at the default guidance
SHOWN = ("frames_valid", "constant", "as_captioned", "direction_right", "speed_right", "smooth", "passed")


def load(folder, kind):
    """A TextToVideoPipeline folder, its scheduler switched to `kind` (ddim or dpm)."""
    pipe = TextToVideoPipeline.from_pretrained(folder)
    pipe.scheduler = scheduler_from_config(kind, scheduler_config(pipe.scheduler))
    return pipe


def sample_clips(pipe, prompts, steps, num_frames):
    """Clips for the prompts in chunks, each clip's initial noise from (LATENT_SEED, i)."""
    c, s = pipe.unet.config["in_channels"], pipe.unet.config["sample_size"]
    out = []
    for start in range(0, len(prompts), CHUNK):
        part = prompts[start:start + CHUNK]
        latents = np.stack([np.random.default_rng((LATENT_SEED, start + i)).standard_normal((c, num_frames, s, s))
                            for i in range(len(part))])  # (b, C, F, h, w)
        out.append(pipe(part, num_frames=num_frames, num_inference_steps=steps, rng=np.random.default_rng(start),
                        latents=latents))
        print(f"  {start + len(part)}/{len(prompts)} clips")
    return np.concatenate(out)


def summarise(checks, prompts):
    out = checks.summary()
    directions = np.array([[d in p.split() for d in DIRECTIONS] for p in prompts]).argmax(axis=1)
    out["direction_right_by_direction"] = {d: float(checks.direction_right[directions == k].mean())
                                           for k, d in enumerate(DIRECTIONS) if (directions == k).any()}
    return out


def table(rows):
    print(f"{'':28s}" + "".join(f"{name:>16s}" for name in SHOWN) + f"{'median jerk':>14s}")
    for label, s in rows:
        print(f"{label:28s}" + "".join(f"{s[name]:16.1%}" for name in SHOWN) + f"{s['median_jerk']:14.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a TextToVideoPipeline folder (default: shipped)")
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--baseline-num", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10, help="sampling steps (default 10)")
    parser.add_argument("--scheduler", default="dpm", choices=("ddim", "dpm"),
                        help="dpm: DPM-Solver++ 2M (default; good in few steps), ddim")
    parser.add_argument("--compare", nargs="*", default=(), metavar="LABEL=DIR")
    parser.add_argument("--compare-num", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "video.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.num, args.baseline_num, args.steps, args.compare_num = 8, 4, 4, 4
    folder = args.model or text2video_dir()
    pipe = load(folder, args.scheduler)
    F = pipe.num_frames
    rng = np.random.default_rng(PROMPT_SEED)
    prompts = [random_motion_caption(rng) for _ in range(args.num)]
    results = {"environment": environment(None, "not used"), "model": str(folder), "clips": args.num, "frames": F,
               "steps": args.steps, "scheduler": args.scheduler, "guidance_scale": pipe.guidance_scale}

    print(f"1. {folder}: {args.num} clips of {F} frames, {args.scheduler} {args.steps} steps, guidance "
          f"{pipe.guidance_scale:g}")
    started = time.perf_counter()
    clips = sample_clips(pipe, prompts, args.steps, F)
    results["video_seconds"] = time.perf_counter() - started
    video = summarise(video_checks(clips, prompts), prompts)
    results["video"] = video

    real, real_prompts, _ = MovingShapes(seed=99, num_frames=F)[0:max(args.num // 5, 4)]
    results["real"] = summarise(video_checks(real, real_prompts), real_prompts)

    print(f"3. baseline: the text-to-image pipeline frame by frame, {args.baseline_num} clips")
    t2i = TextToImagePipeline.from_pretrained(text2image_dir())
    t2i.scheduler = scheduler_from_config(args.scheduler, scheduler_config(t2i.scheduler))
    started = time.perf_counter()
    still = frame_by_frame(t2i, [still_caption(p) for p in prompts[:args.baseline_num]], F, BASELINE_SEED,
                           num_inference_steps=args.steps)
    results["baseline_seconds"] = time.perf_counter() - started
    results["baseline"] = summarise(video_checks(still, prompts[:args.baseline_num]), prompts[:args.baseline_num])

    rows = [(f"video model ({args.num})", video), (f"frame by frame ({args.baseline_num})", results["baseline"]),
            (f"real clips ({len(real)})", results["real"])]
    results["compare"] = {}
    for item in args.compare:
        label, _, path = item.partition("=")
        other = load(path, args.scheduler)
        print(f"4. {label}: {path}, {args.compare_num} clips")
        n = min(args.compare_num, args.num)
        mine = summarise(video_checks(clips[:n], prompts[:n]), prompts[:n])
        theirs = summarise(video_checks(sample_clips(other, prompts[:n], args.steps, F), prompts[:n]), prompts[:n])
        results["compare"][label] = {"folder": path, "clips": n, "this": mine, "other": theirs}
        rows += [(f"video model, first {n}", mine), (f"{label} ({n})", theirs)]
    print()
    table(rows)
    print("direction right, per direction: " + ", ".join(f"{d} {v:.1%}" for d, v in video["direction_right_by_direction"].items()))
    results["targets"] = {k: {"target": t, "measured": video[k], "met": video[k] >= t} for k, t in TARGETS.items()}
    for k, t in results["targets"].items():
        print(f"target {k} >= {t['target']:.0%}: {t['measured']:.1%} ({'met' if t['met'] else 'MISSED'})")
    print(f"sampling: {results['video_seconds'] / 60:.1f} min for the video model, "
          f"{results['baseline_seconds'] / 60:.1f} min for the baseline")
    write_results(args.json, results)
    return results


if __name__ == "__main__":
    main()
