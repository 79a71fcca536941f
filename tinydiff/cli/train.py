"""`tinydiff train` and `tinydiff train-vae`: their flags, and the runs they start (the run
folder's checks and the one-line endings are in tinydiff.cli.run)."""

from pathlib import Path

from tinydiff.cli.flag_types import (decay, drop_probability, flag_list, int_list, nonnegative_float, nonnegative_int,
                                positive_float, positive_int)
from tinydiff.cli.train_video import VIDEO_DATASET, add_video_flags, check_video_flags, train_text_to_video
from tinydiff.recipes import RECIPES

TEXT_DATASET = "shapes-captions"  # captioned Shapes: trains a text-to-image model
TEXT_UNET_HEADS = 4  # attention heads of a text-to-image UNet's attention layers (diffusers' attention_head_dim)


RESUME_HELP = (
    "continue the run in OUT from its latest checkpoint. Every flag must be the run's (a change is "
    "named and refused), except a larger --steps, which extends the run: the cosine learning-rate "
    "schedule is recomputed for the new total (no second warm-up), so the rate rises again from where "
    "the old schedule ended")
OVERWRITE_RUN_HELP = ("start over in an OUT that holds a run: removes its checkpoints/, samples/ and final/ "
                      "(only what tinydiff wrote there; your other files stay)")


def add_run_flags(p, steps, batch_size, ema_decay, checkpoint_every, sample_every, samples):
    """The flags of a training run that train and train-vae share, with each command's defaults:
    where the data comes from and the run goes, its length, pace and seed, its checkpoints and
    sample grids, and what happens to an OUT that holds a run."""
    p.add_argument("--data-path", help="folder with your files, for --dataset mnist or folder")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=positive_int, default=steps, help=f"training steps (default {steps})")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"images per step (default {batch_size})")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate of AdamW (default 2e-3)")
    p.add_argument("--ema-decay", type=decay, default=ema_decay,
                   help=f"EMA decay of the weights that are sampled and saved (default {ema_decay})")
    p.add_argument("--image-size", type=positive_int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of everything random (default 0)")
    p.add_argument("--checkpoint-every", type=positive_int, default=checkpoint_every,
                   help="steps between checkpoints")
    p.add_argument("--sample-every", type=nonnegative_int, default=sample_every,
                   help=f"steps between {samples} (0: only at the end)")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_RUN_HELP)


def add_train_parser(sub):
    from tinydiff.pipelines.data_sources import DATASETS

    p = sub.add_parser("train", help="train a diffusion model", description=(
        "Train a diffusion model on CPU. Image data sets train a UNet2DModel, the 2-D toys an MLP. "
        "Writes OUT/checkpoints (resumable with --resume), OUT/samples (grids) and OUT/final (the "
        "EMA weights, loadable with `tinydiff sample --model OUT/final`)."))
    p.add_argument("--dataset", required=True, choices=DATASETS + (TEXT_DATASET, VIDEO_DATASET), help="what to learn: "
                   "generated on the fly (glyphs, shapes, 2-D toys; shapes-captions: shapes with captions, for a "
                   "text-to-image model with --text-encoder and --latent; moving-shapes: captioned clips, for a "
                   "text-to-video model inflated from a text-to-image one) or your own files (mnist: a folder of idx "
                   "files, folder: images)")
    p.add_argument("--warmup-steps", type=nonnegative_int, default=100, help="linear warm-up steps (default 100)")
    p.add_argument("--channels", type=int_list, default=(32, 64, 64),
                   help="UNet block_out_channels, one per resolution (default 32,64,64)")
    p.add_argument("--attention", type=flag_list, default=(0, 0, 1),
                   help="1 where a resolution level gets self-attention, e.g. 0,0,1 (default)")
    p.add_argument("--layers-per-block", type=positive_int, default=1, help="resnets per level (default 1)")
    p.add_argument("--class-conditional", action="store_true", help="condition on the data set's labels")
    p.add_argument("--cond-drop-prob", type=drop_probability, default=None,
                   help="with --class-conditional: the share of labels replaced by a null class, so the model "
                        "also learns the unconditional case that classifier-free guidance needs (Ho & Salimans "
                        "2022); default 0.1; 0 builds no null class (no guidance). With --text-encoder: the share "
                        "of captions replaced by the empty prompt (default 0.1)")
    p.add_argument("--text-encoder", type=Path, metavar="DIR",
                   help="text-to-image (with --dataset shapes-captions and --latent): condition a "
                        "UNet2DConditionModel, through cross-attention, on this frozen CLIP text encoder's last "
                        "hidden state (a folder with text_encoder/ and tokenizer/: `tinydiff train-clip`'s "
                        "OUT/final); --attention 1 marks the levels with cross-attention; OUT/final becomes a "
                        "TextToImagePipeline folder")
    p.add_argument("--prediction-type", default="epsilon", choices=("epsilon", "v_prediction", "sample"),
                   help="what the network predicts (default epsilon)")
    p.add_argument("--beta-schedule", default="squaredcos_cap_v2",
                   choices=("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"),
                   help="noise schedule (default squaredcos_cap_v2, Nichol & Dhariwal's cosine)")
    p.add_argument("--min-snr-gamma", type=nonnegative_float, default=0.0, help="min-SNR loss weighting, e.g. 5 (default off)")
    p.add_argument("--processes", type=positive_int, default=None,
                   help="processes that train together, each on a slice of every batch (default for images: "
                        "one per core, at most batch-size/2; 2-D toys: 1; 1 trains in this process alone, its "
                        "kernels split over the cores); see tinydiff.runtime.parallel")
    p.add_argument("--latent", type=Path, metavar="VAE_DIR", help="latent diffusion: train on the latents of "
                   "this VAE (a `tinydiff train-vae` output folder or a model folder); the UNet's sample size "
                   "becomes the latent's and OUT/final gets the VAE in vae/")
    p.add_argument("--latent-images", type=positive_int, default=8192,
                   help="with --latent: how many images are encoded once and trained on (default 8192)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="the flags of a named training run, e.g. glyphs: the "
                   "shipped glyph model's; flags you give override them (tinydiff/recipes.py)")
    add_video_flags(p)
    add_run_flags(p, steps=3000, batch_size=64, ema_decay=0.999, checkpoint_every=500, sample_every=500,
                  samples="sample grids")
    p.set_defaults(func=cmd_train)


def check_text_flags(args):
    """shapes-captions, --text-encoder and --latent go together, without --class-conditional."""
    text = args.dataset == TEXT_DATASET
    if text and args.text_encoder is None:
        raise ValueError(f"--dataset {TEXT_DATASET} trains a text-to-image model: give --text-encoder DIR (a CLIP "
                         f"folder, `tinydiff train-clip`'s OUT/final) and --latent VAE_DIR")
    if args.text_encoder is not None and not text:
        raise ValueError(f"--text-encoder: needs captions, --dataset {TEXT_DATASET} (got {args.dataset})")
    if text and args.latent is None:
        raise ValueError(f"--dataset {TEXT_DATASET}: text-to-image trains on a VAE's latents, as Stable Diffusion; "
                         f"give --latent VAE_DIR (e.g. tinydiff/pretrained/shapes_latent/vae)")
    if text and args.class_conditional:
        raise ValueError("--class-conditional: a text-to-image model is conditioned on captions, not labels")


def resolve_cond_drop_prob(args, state):
    """--cond-drop-prob as given; unset: a resumed run's own (0 for runs older than the flag,
    trained without a null class), else 0.1 for a class- or text-conditional run; 0 without
    labels."""
    conditional = args.class_conditional or getattr(args, "text_encoder", None) is not None
    if args.cond_drop_prob is not None:
        if args.cond_drop_prob > 0 and not conditional:
            raise ValueError(f"--cond-drop-prob: {args.cond_drop_prob} needs --class-conditional (it drops labels)")
        return args.cond_drop_prob
    if not conditional:
        return 0.0
    return 0.1 if state is None else state["config"].get("cond_drop_prob", 0.0)


def build_denoiser(args, in_channels, num_classes, sample_size=None, null_class=False):
    """The run's denoiser; with null_class, a class-conditional UNet gets num_classes + 1
    embedding rows, the last one the null class of classifier-free guidance."""
    from tinydiff.models import MLPDenoiser, UNet2DModel
    import numpy as np

    rng = np.random.default_rng(args.seed)
    if args.dataset in ("swiss_roll", "moons", "gaussians8", "checkerboard"):
        return MLPDenoiser(rng=rng)
    levels = [bool(flag) for flag in args.attention]
    if len(levels) != len(args.channels):
        raise SystemExit(f"tinydiff train: --attention has {len(levels)} entries but --channels has "
                         f"{len(args.channels)}; give one 0/1 per level")
    return UNet2DModel(
        sample_size=sample_size or args.image_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=args.channels, layers_per_block=args.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in levels),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)),
        norm_num_groups=8, attention_head_dim=8, rng=rng,
        num_class_embeds=num_classes + 1 if null_class else num_classes,
        class_embed_null_index=num_classes if null_class else None)


def build_text_unet(args, in_channels, sample_size, cross_attention_dim):
    """A UNet2DConditionModel over the VAE's latents: cross-attention blocks where --attention
    has 1 (and always in the mid block), attending to the text encoder's hidden states."""
    from tinydiff.models.unet_condition import UNet2DConditionModel
    import numpy as np

    levels = [bool(flag) for flag in args.attention]
    if len(levels) != len(args.channels):
        raise SystemExit(f"tinydiff train: --attention has {len(levels)} entries but --channels has "
                         f"{len(args.channels)}; give one 0/1 per level")
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=args.channels, layers_per_block=args.layers_per_block,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels)),
        cross_attention_dim=cross_attention_dim, attention_head_dim=TEXT_UNET_HEADS, norm_num_groups=8,
        rng=np.random.default_rng(args.seed))


def text_to_image_parts(args, cond_drop_prob):
    """(model, data, vae, text_encoder, tokenizer) of a text-to-image run: the frozen VAE and
    text encoder, the captioned latents (encoded once) and a new UNet2DConditionModel."""
    from tinydiff.pipelines.latent import load_vae_folder
    from tinydiff.pipelines.text_conditioning import captioned_latent_source
    from tinydiff.pipelines.text_encoding import load_text_encoder

    vae = load_vae_folder(args.latent)
    try:
        text_encoder, tokenizer = load_text_encoder(args.text_encoder)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--text-encoder: {err}") from None
    print(f"encoding {args.latent_images} captioned images with the VAE in {args.latent}")
    data = captioned_latent_source(vae, text_encoder, tokenizer, args.latent_images, args.batch_size, args.seed,
                                   cond_drop_prob, image_size=args.image_size)
    x0, _ = data(0)
    model = build_text_unet(args, x0.shape[1], x0.shape[2], text_encoder.config["hidden_size"])
    return model, data, vae, text_encoder, tokenizer


def cmd_train(args):
    from tinydiff.diffusion import DDPMScheduler
    from tinydiff.cli.run import TRAIN_PARTS, prepare_run_folder, run_to_the_end
    from tinydiff.runtime.parallel import ParallelRunner, default_processes
    from tinydiff.pipelines import Trainer
    from tinydiff.pipelines.data_sources import make_source
    from tinydiff.pipelines.outputs import remove_run

    try:
        settings = train_settings(args)
        state, removal = prepare_run_folder(args, TRAIN_PARTS, command_defaults("train", args), settings)
        check_text_flags(args)
        check_video_flags(args)
        if args.dataset == VIDEO_DATASET:
            return train_text_to_video(args, state, removal, settings)
        if args.dataset == TEXT_DATASET:
            return train_text_to_image(args, state, removal, settings)
        data = make_source(args.dataset, args.batch_size, args.seed, image_size=args.image_size,
                           labelled=args.class_conditional, path=args.data_path)
        x0, labels = data(0)
        if args.class_conditional and labels is None:
            raise ValueError(f"--class-conditional: data set {args.dataset!r} has no labels")
        num_classes = data.num_classes if args.class_conditional else None
        cond_drop_prob = resolve_cond_drop_prob(args, state)
        vae = None
        if args.latent is not None:
            from tinydiff.pipelines.latent import latent_source, load_vae_folder

            if x0.ndim != 4:
                raise ValueError(f"--latent: dataset {args.dataset!r} is not an image data set")
            vae = load_vae_folder(args.latent)
            print(f"encoding {args.latent_images} images with the VAE in {args.latent}")
            data = latent_source(vae, data, args.latent_images, args.batch_size, args.seed,
                                 labelled=args.class_conditional)
            x0, _ = data(0)
        model = build_denoiser(args, x0.shape[1] if x0.ndim == 4 else None, num_classes,
                               sample_size=x0.shape[2] if vae is not None else None, null_class=cond_drop_prob > 0)
        config = train_config(args, state, cond_drop_prob)
        # toy 2-D models are too small for a second process to pay
        parallel = ParallelRunner(args.processes or (default_processes(args.batch_size) if x0.ndim == 4 else 1))
        scheduler = DDPMScheduler(beta_schedule=args.beta_schedule, prediction_type=args.prediction_type,
                                  clip_sample=vae is None)  # latents are not confined to [-1, 1]
        remove_run(args.out, removal)  # --overwrite: only now that everything else is known to work
        if vae is None:
            trainer = Trainer(model, scheduler, data, config, args.out, settings=settings, parallel=parallel)
        else:
            from tinydiff.pipelines.latent import LatentTrainer

            trainer = LatentTrainer(model, scheduler, vae, data, config, args.out, settings=settings,
                                    parallel=parallel)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff train: {err}") from None
    print(f"training {type(model).__name__} ({model.num_parameters() / 1e6:.2f} M parameters) on "
          f"{args.dataset}; output in {args.out}")
    log = run_to_the_end(trainer, "train", args.resume)
    print(f"final loss {log[-1][1]:.4f}; model in {args.out / 'final'}; samples in {args.out / 'samples'}")
    return 0


def train_settings(args):
    """What the run records and --resume compares: every flag, and with --text-encoder the
    sha256 of its weights (a text encoder retrained in place keeps its path)."""
    from tinydiff.pipelines.run_settings import TEXT_ENCODER_SHA256, flag_settings
    from tinydiff.pipelines.text_encoding import text_encoder_sha256

    settings = flag_settings(args)
    digest = text_encoder_sha256(args.text_encoder) if args.text_encoder is not None else None
    if digest is not None:  # no file: load_text_encoder names what is missing
        settings[TEXT_ENCODER_SHA256] = digest
    return settings


def train_config(args, state, cond_drop_prob):
    from tinydiff.cli.run import resumed_warmup
    from tinydiff.pipelines import TrainConfig

    return TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       warmup_steps=resumed_warmup(state, args.warmup_steps, args.steps), ema_decay=args.ema_decay,
                       min_snr_gamma=args.min_snr_gamma, seed=args.seed, cond_drop_prob=cond_drop_prob,
                       checkpoint_every=args.checkpoint_every, sample_every=args.sample_every)


def train_text_to_image(args, state, removal, settings):
    """`tinydiff train --dataset shapes-captions --text-encoder DIR --latent VAE_DIR`: Stable
    Diffusion's recipe (tinydiff.pipelines.text_conditioning); `settings` is what the run
    records (train_settings). ValueError for a bad flag."""
    from tinydiff.cli.run import run_to_the_end
    from tinydiff.diffusion import DDPMScheduler
    from tinydiff.pipelines.outputs import remove_run
    from tinydiff.pipelines.text_conditioning import TextToImageTrainer
    from tinydiff.runtime.parallel import ParallelRunner, default_processes

    cond_drop_prob = resolve_cond_drop_prob(args, state)
    model, data, vae, text_encoder, tokenizer = text_to_image_parts(args, cond_drop_prob)
    config = train_config(args, state, cond_drop_prob)
    parallel = ParallelRunner(args.processes or default_processes(args.batch_size))
    scheduler = DDPMScheduler(beta_schedule=args.beta_schedule, prediction_type=args.prediction_type,
                              clip_sample=False)  # latents are not confined to [-1, 1]
    remove_run(args.out, removal)
    trainer = TextToImageTrainer(model, scheduler, vae, text_encoder, tokenizer, data, config, args.out,
                                 settings=settings, parallel=parallel)
    print(f"training {type(model).__name__} ({model.num_parameters() / 1e6:.2f} M parameters) on {TEXT_DATASET}, "
          f"conditioned on the text encoder in {args.text_encoder}; output in {args.out}")
    log = run_to_the_end(trainer, "train", args.resume)
    print(f"final loss {log[-1][1]:.4f}; text-to-image pipeline in {args.out / 'final'} (tinydiff sample --model "
          f"{args.out / 'final'} --prompt \"...\"); samples in {args.out / 'samples'}")
    return 0


def add_train_vae_parser(sub):
    p = sub.add_parser("train-vae", help="train a VAE (AutoencoderKL) for latent diffusion", description=(
        "Train an AutoencoderKL (diffusers' layout) with loss = reconstruction + beta * KL. Writes "
        "OUT/checkpoints (resumable with --resume), OUT/samples (held-out images over their "
        "reconstructions) and OUT/final, whose config holds the latent normalisation measured on "
        "held-out images (latents_mean and latents_std per channel, or one scaling_factor); then `tinydiff train --latent OUT ...` trains a UNet on its latents."))
    p.add_argument("--dataset", default="shapes", choices=("shapes", "glyphs", "mnist", "folder"),
                   help="images to encode (default shapes)")
    p.add_argument("--beta", type=nonnegative_float, default=1e-4, help="weight of the KL per pixel (default 1e-4)")
    p.add_argument("--reconstruction", default="mse", choices=("l1", "mse"), help="reconstruction loss (default mse)")
    p.add_argument("--channels", type=int_list, default=(16, 32, 64),
                   help="block_out_channels; each level after the first halves the resolution (default 16,32,64: 1/4)")
    p.add_argument("--latent-channels", type=positive_int, default=4, help="latent channels (default 4)")
    p.add_argument("--groups", type=positive_int, default=8, help="GroupNorm groups (default 8)")
    p.add_argument("--latent-norm", default="channel", choices=("channel", "global"),
                   help="how the diffusion model's latents are normalised: per-channel mean and std "
                        "(default), or one scaling_factor as in Stable Diffusion 1.x")
    add_run_flags(p, steps=1600, batch_size=16, ema_decay=0.99, checkpoint_every=200, sample_every=400,
                  samples="reconstruction grids")
    p.set_defaults(func=cmd_train_vae)


def cmd_train_vae(args):
    import numpy as np

    from tinydiff.cli.run import TRAIN_VAE_PARTS, prepare_run_folder, resumed_warmup, run_to_the_end
    from tinydiff.models import AutoencoderKL
    from tinydiff.pipelines.data_sources import make_source
    from tinydiff.pipelines.outputs import remove_run
    from tinydiff.pipelines.run_settings import flag_settings
    from tinydiff.pipelines.vae_training import VAETrainConfig, VAETrainer

    try:
        state, removal = prepare_run_folder(args, TRAIN_VAE_PARTS, command_defaults("train-vae", args))
        data = make_source(args.dataset, args.batch_size, args.seed, image_size=args.image_size, path=args.data_path)
        x0, _ = data(0)
        n = len(args.channels)
        vae = AutoencoderKL(
            in_channels=x0.shape[1], out_channels=x0.shape[1], block_out_channels=args.channels,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            latent_channels=args.latent_channels, norm_num_groups=args.groups, sample_size=args.image_size,
            rng=np.random.default_rng(args.seed))
        config = VAETrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, beta=args.beta,
                                reconstruction=args.reconstruction,
                                warmup_steps=resumed_warmup(state, 100, args.steps),
                                ema_decay=args.ema_decay, latent_norm=args.latent_norm,
                                seed=args.seed, checkpoint_every=args.checkpoint_every,
                                sample_every=args.sample_every)
        remove_run(args.out, removal)  # --overwrite: only now that everything else is known to work
        trainer = VAETrainer(vae, data, config, args.out, settings=flag_settings(args))
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"tinydiff train-vae: {err}") from None
    print(f"training AutoencoderKL ({vae.num_parameters() / 1e6:.2f} M parameters) on {args.dataset}: "
          f"{x0.shape[1:]} -> latents {vae.latent_shape(1, args.image_size)[1:]}; output in {args.out}")
    log = run_to_the_end(trainer, "train-vae", args.resume)
    c = vae.config
    norm = (f"scaling_factor {c['scaling_factor']:.4f}" if c["latents_mean"] is None else
            f"latents_mean {np.round(c['latents_mean'], 3).tolist()}, latents_std {np.round(c['latents_std'], 3).tolist()}")
    print(f"final loss {log[-1][1]:.4f}; {norm}; VAE in {args.out / 'final'}; "
          f"reconstructions in {args.out / 'samples'}")
    return 0


def command_defaults(command, args):
    """{flag dest: its default} for `command`'s flags: a flag a run's checkpoints do not record
    (the run is older than the flag) must keep its default on --resume."""
    from tinydiff.cli.main import build_parser

    sub = build_parser().commands[command]
    return {key: sub.get_default(key) for key in vars(args)}
