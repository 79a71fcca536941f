"""`tinydiff sample --model VIDEO_DIR --prompt "..."`: clips from a TextToVideoPipeline folder.

    --out clips.gif   an animated grid of the --num clips (frame f shows every clip's frame f)
    --out clips.png   each clip's frames as a row
    --frames F        the clip length: 2 .. the length the motion modules were trained on
    --npz FILE        the clips as `samples` (N, F, C, H, W) in [-1, 1], and the prompt
    --gif FILE        the denoising animation, as for images: the predicted clean clips (rows)
                      at each sampling step
Every output is checked before the pipeline is loaded (tinydiff.cli.sample); --out must end
in .gif or .png here (it is a clip grid)."""

VIDEO_OUT_SUFFIXES = (".gif", ".png")
DEFAULT_CLIPS = 8  # --num when not given: 8 clips of F frames are 8 F images per step


def default_text_to_video_dir():
    """The shipped text-to-video pipeline (what a --prompt with "moving" samples without --model);
    a one-line exit when this installation has none."""
    from tinydiff.pretrained import text2video_dir

    folder = text2video_dir()
    if not (folder / "model_index.json").is_file():
        raise SystemExit(f"tinydiff sample: a --prompt with motion and no --model samples the shipped text-to-video "
                         f"pipeline, and this installation has none ({folder}); give --model DIR (`tinydiff train "
                         f"--dataset moving-shapes`'s OUT/final) or retrain it: python -m tinydiff.pretrained.train_video")
    return folder


def require_prompt(args, folder, kind, example, note=""):
    """One-line exits for a text model (kind "text-to-image" or "text-to-video") given a class
    flag, or no --prompt."""
    for flag, given in (("--label", args.label), ("--unconditional", args.unconditional)):
        if given:
            raise SystemExit(f'tinydiff sample: {flag} is for class-conditional models; {folder} is a {kind} '
                             f'model: give --prompt "..."{note}')
    if args.prompt is None:
        raise SystemExit(f'tinydiff sample: {folder} is a {kind} model; give --prompt "...", e.g. --prompt '
                         f'"{example}"')


def check_video_flags(args, folder):
    """One-line exits for flags a video pipeline cannot take, before it is loaded."""
    require_prompt(args, folder, "text-to-video", "a green triangle moving left")
    if args.out.suffix.lower() not in VIDEO_OUT_SUFFIXES:
        raise SystemExit(f"tinydiff sample: --out: a text-to-video model writes clips: expected a name ending in "
                         f".gif (an animated grid) or .png (frames as rows), got {args.out}")
    if args.guidance_interval is not None:
        raise SystemExit("tinydiff sample: --guidance-interval is not available for text-to-video models; drop it")


def denoising_clip_frames(vae, trajectory, scale, max_frames=20):
    """The denoising animation of clips: one GIF frame per picked sampling step, showing the
    predicted clean clips decoded (clip b's frames in row b), titled with the step."""
    import numpy as np

    from tinydiff.pipelines.text_to_video import decode_clips
    from tinydiff.viz.tiles import add_labels, tile_images

    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(max_frames, len(trajectory))).round().astype(int))
    frames = []
    for i in picks:
        t, _, predicted = trajectory[i]
        clips = np.clip(decode_clips(vae, predicted), -1, 1)  # (B, F, 3, H, W)
        canvas = tile_images(clips.reshape((-1,) + clips.shape[2:]), clips.shape[1], 2, scale)
        frames.append(add_labels(canvas, f"step {i + 1}/{len(trajectory)} (t = {t}): predicted clips"))
    width = max(f.shape[1] for f in frames)
    return [np.pad(f, ((0, 0), (0, width - f.shape[1]), (0, 0)), constant_values=255) for f in frames]


def sample_text_to_video(args, folder):
    """Sample --num clips of --prompt from a TextToVideoPipeline folder and write --out (and
    --gif, --npz). Returns 0; SystemExit with one line on a bad flag or folder."""
    import numpy as np

    from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
    from tinydiff.pipelines.text_to_video import TextToVideoPipeline
    from tinydiff.viz.gif import write_gif
    from tinydiff.viz.video import save_clip_rows, save_clips_gif

    check_video_flags(args, folder)
    num = DEFAULT_CLIPS if args.num is None else args.num
    try:
        pipe = TextToVideoPipeline.from_pretrained(folder)
        pipe.scheduler = scheduler_from_config(args.scheduler, scheduler_config(pipe.scheduler))
        if args.steps > pipe.scheduler.config.num_train_timesteps:
            raise ValueError(f"--steps must be at most {pipe.scheduler.config.num_train_timesteps}, got {args.steps}")
        frames = pipe.check_frames(args.frames)  # beyond the trained length: one line, before sampling
        scale = pipe.guidance_scale if args.guidance_scale is None else args.guidance_scale
        if args.negative_prompt is not None and scale == 1.0:
            raise ValueError("--negative-prompt: guidance scale 1 runs no unconditional branch; drop it or pass "
                             "--guidance-scale")
        if args.guidance_rescale:
            raise ValueError("--guidance-rescale is not available for text-to-video models; drop it")
        pipe.encode([args.prompt, args.negative_prompt or ""])  # an unknown word: one line, before sampling
        result = pipe(args.prompt, num_frames=frames, negative_prompt=args.negative_prompt or "",
                      num_videos_per_prompt=num, guidance_scale=scale, num_inference_steps=args.steps,
                      rng=np.random.default_rng(args.seed), eta=args.eta, progress=True, record=args.gif is not None)
    except (ValueError, FileNotFoundError, TypeError) as err:
        raise SystemExit(f"tinydiff sample: {str(err).replace('num_frames:', '--frames:')}") from None
    clips, trajectory = result if args.gif is not None else (result, None)
    for path in (args.out, args.gif, args.npz):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    title = f'"{args.prompt}"' + (f', guidance {scale:g}' if scale != 1.0 else "") + \
        (f', negative "{args.negative_prompt}"' if args.negative_prompt else "")
    if args.out.suffix.lower() == ".gif":
        save_clips_gif(args.out, clips, title=title)
    else:
        save_clip_rows(args.out, clips, title)
    print(f"wrote {args.out} ({num} clips of {frames} frames, {title})")
    if args.gif is not None:
        write_gif(args.gif, denoising_clip_frames(pipe.vae, trajectory, scale=max(2, 64 // clips.shape[-1])))
        print(f"wrote {args.gif}")
    if args.npz is not None:
        np.savez(args.npz, samples=clips, prompt=np.array(args.prompt),
                 negative_prompt=np.array(args.negative_prompt or ""))
        print(f"wrote {args.npz} (samples {clips.shape}: N, F, C, H, W)")
    return 0
