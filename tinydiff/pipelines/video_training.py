"""Training a text-to-video model on Moving Shapes, AnimateDiff's recipe (Guo et al. 2023) in the
latent space of the Shapes VAE:

    once:       the text-to-image pipeline's UNet inflated to a UNetMotionModel (motion modules
                after each block, their proj_out zero: it starts as the image model per frame);
                the tokenizer gains the motion words (add_tokens) and the text encoder their
                rows (resize_token_embeddings, each new row the mean of the old ones);
                every frame of N clips encoded by the frozen VAE, frame by frame
    each step:  B clips, z_0 (B, C, F, h, w), fresh noise per frame, t per clip
                captions of those clips (size named or not, drawn anew), "" with
                probability cond_drop_prob (Ho & Salimans 2022, Algorithm 1, line 3)
                states = text_encoder(ids)            (its motion words' rows train)
                loss = the diffusion loss of unet(z_t, t, states) (Ho et al. 2020, eq. 14)
                backward: unet.backward -> d states -> text_encoder.backward

What trains (train_part; and of the text encoder, train_text):
    "motion"     the motion modules; the image UNet frozen (AnimateDiff)
    "unet"       the whole video UNet
    "new_words"  the token-table rows of the added motion words only, as textual inversion
                 (Gal et al. 2022) learns a new word: every other weight of the text encoder stays
                 frozen, so the states of any still prompt are exactly the ones the image UNet knows
    "all"        the whole text encoder (its states for still prompts drift too)

How the motion words reach a frozen image UNet: the text encoder is causal, so "moving right"
at the end of "a red circle moving right" changes only the hidden states from "moving" on: the
words' own positions, <eos> and the padding. The frozen spatial cross-attention attends to all
of them (it was trained to read <eos> and the pads too), so training the motion words' rows
through the video loss makes those states carry the motion into every frame's features, where
the motion modules read it. The states of "a red circle" stay exactly those the image UNet knows.

Randomness is keyed by (seed, step) as in tinydiff.pipelines.train: a resumed run is the same run.
"""

import json

import numpy as np

from tinydiff.data.moving_shapes import MOTION_WORDS, MovingShapes, caption_for
from tinydiff.models.motion import MotionAdapter, UNetMotionModel
from tinydiff.nn import Module
from tinydiff.pipelines.latent import LatentTrainer, encode_images, latent_shift_and_scale
from tinydiff.pipelines.sampling import scheduler_config, scheduler_from_config
from tinydiff.pipelines.text_conditioning import drop_captions
from tinydiff.pipelines.text_to_video import TextToVideoPipeline
from tinydiff.viz.video import save_clip_rows, save_clips_gif

TRAIN_PARTS = ("motion", "unet")
TEXT_PARTS = ("new_words", "all")  # what of the text encoder trains: the added words' rows, or everything
SAMPLE_PROMPTS = ("a red circle moving right", "a blue square moving up slowly", "a large green triangle moving left",
                  "a small white circle moving down")
TRAINED_GUIDANCE_SCALE = 4.0


def add_motion_words(text_encoder, tokenizer, rng=None):
    """Append MOTION_WORDS to the tokenizer (ids after the last) and grow the text encoder's
    token table to match (the new rows start at the mean of the old ones). Returns how many
    words were new."""
    added = tokenizer.add_tokens(list(MOTION_WORDS))
    if text_encoder.config["vocab_size"] < len(tokenizer):
        text_encoder.resize_token_embeddings(len(tokenizer), rng=rng)
    return added


def inflate(unet, rng, motion_num_attention_heads=4, motion_layers_per_block=None, text_to_motion=True):
    """A UNetMotionModel from a trained UNet2DConditionModel and fresh motion modules (proj_out
    zero): on every frame it starts as `unet` (Guo et al. 2023, sec. 4.2). One motion module per resnet (the default
    layers_per_block), no mid-block module (the 2x2 middle holds little motion). text_to_motion
    (the default): the motion modules attend to the caption's text states (MotionAdapter's
    motion_cross_attention_dim, a tinydiff extension); False: AnimateDiff's, which never see the
    text and, on shapes that look the same whichever way they move, cannot tell the direction."""
    c = unet.config
    adapter = MotionAdapter(block_out_channels=c["block_out_channels"],
                            motion_layers_per_block=motion_layers_per_block or c["layers_per_block"],
                            motion_num_attention_heads=motion_num_attention_heads,
                            motion_norm_num_groups=c["norm_num_groups"], motion_max_seq_length=32,
                            use_motion_mid_block=False, rng=rng,
                            motion_cross_attention_dim=c["cross_attention_dim"] if text_to_motion else None)
    return UNetMotionModel.from_unet2d(unet, adapter)


class ClipLatents:
    """data(step) -> (z_0 (B, C, F, h, w) scaled latents, input_ids (B, N)) over encoded clips.

    Parameters
    ----------
    mean, std : float32 (N, F, C, h, w), q(z|x) of every frame
    attributes : int (N, 5), (shape, colour, size, direction, speed) per clip
    shift, scale : (C, 1, 1), latent_shift_and_scale of the VAE
    tokenizer : WordTokenizer (with the motion words)
    batch_size, seed : int
    cond_drop_prob : float, the share of captions replaced by ""
    p_size : float, the share of captions naming the size
    """

    def __init__(self, mean, std, attributes, shift, scale, tokenizer, batch_size, seed, cond_drop_prob, p_size=0.5):
        if len(mean) < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the encoded data set ({len(mean)} clips)")
        self.mean, self.std, self.attributes = mean, std, np.asarray(attributes)
        self.shift, self.scale = np.asarray(shift, np.float32), np.asarray(scale, np.float32)
        self.tokenizer, self.batch_size, self.seed = tokenizer, batch_size, seed
        self.cond_drop_prob, self.p_size = float(cond_drop_prob), float(p_size)
        self.per_epoch = len(mean) // batch_size
        self.num_frames = mean.shape[1]

    def indices(self, step):
        epoch, k = divmod(step, self.per_epoch)
        order = np.random.default_rng((self.seed, 11, epoch)).permutation(len(self.mean))
        return order[k * self.batch_size:(k + 1) * self.batch_size]

    def captions(self, step):
        """The batch's captions of step `step`, after dropout ("" where dropped)."""
        rng = np.random.default_rng((self.seed, 23, step))
        captions = [caption_for(*row, name_size=rng.random() < self.p_size)
                    for row in self.attributes[self.indices(step)].tolist()]
        return drop_captions(captions, self.cond_drop_prob, (self.seed, 19, step))

    def __call__(self, step):
        idx = self.indices(step)
        eps = np.random.default_rng((self.seed, 13, step)).standard_normal(self.mean[idx].shape)
        z = (self.mean[idx] + self.std[idx] * eps - self.shift) * self.scale  # (B, F, C, h, w)
        z = np.ascontiguousarray(z.transpose(0, 2, 1, 3, 4), dtype=np.float32)  # -> (B, C, F, h, w)
        return z, self.tokenizer(self.captions(step))


def clip_latent_source(vae, tokenizer, num_clips, batch_size, seed, cond_drop_prob, num_frames=8, image_size=32):
    """Encode every frame of the first num_clips clips of MovingShapes(seed, image_size,
    num_frames) with the VAE once; return the ClipLatents over them."""
    clips, _, labels = MovingShapes(seed=seed, size=image_size, num_frames=num_frames).get(np.arange(num_clips))
    n, F = clips.shape[:2]
    mean, std = encode_images(vae, clips.reshape((n * F,) + clips.shape[2:]))  # frame by frame
    attributes = np.stack([labels.shape, labels.colour, labels.size, labels.direction, labels.speed], axis=1)
    shift, scale = latent_shift_and_scale(vae)
    return ClipLatents(mean.reshape((n, F) + mean.shape[1:]), std.reshape((n, F) + std.shape[1:]), attributes,
                       shift, scale, tokenizer, batch_size, seed, cond_drop_prob)


class TextVideoDenoiser(Module):
    """The text encoder and the video UNet as one model for tinydiff.pipelines.Trainer:
    forward(x_t (B, C, F, h, w), t (B,), input_ids (B, N)) -> the UNet's prediction;
    backward(grad) -> d x_t, after carrying d states back through the text encoder.
    frozen_rows: if set (an int k), the token table's rows 0 .. k-1 get no gradient (only the
    words added after them learn)."""

    def __init__(self, unet, text_encoder, num_frames):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder
        self.frozen_rows = None
        # JSON-normalised, so that a resumed run's config compares equal to the saved one
        self.config = json.loads(json.dumps({
            "cross_attention_dim": unet.config["cross_attention_dim"], "num_frames": int(num_frames),
            "unet": unet.config, "text_encoder": text_encoder.config}))

    def forward(self, x_t, t, input_ids):
        states = self.text_encoder(input_ids).last_hidden_state  # (B, N, D)
        return self.unet(x_t, t, states.astype(x_t.dtype, copy=False))

    def backward(self, grad_out):
        d_sample, d_states = self.unet.backward(grad_out)
        self.text_encoder.backward(d_states)  # into the text encoder's .grad
        if self.frozen_rows:
            self.text_encoder.text_model.embeddings.token_embedding.weight.grad[:self.frozen_rows] = 0.0
        return d_sample


class VideoTrainer(LatentTrainer):
    """LatentTrainer for a TextVideoDenoiser on ClipLatents. train_part "motion" trains the
    motion modules (the image UNet frozen), "unet" the whole video UNet; train_text "new_words"
    the token rows of the motion words alone (the rest of the text encoder frozen), "all" the
    whole text encoder. final/ is a
    TextToVideoPipeline folder (DDIM, the recommended guidance scale); samples/ gets a PNG of
    the sample prompts' clips (frames as rows) and their GIF."""

    def __init__(self, model, scheduler, vae, tokenizer, data, config, out_dir, train_part="motion", progress=True,
                 settings=None, guidance_scale=TRAINED_GUIDANCE_SCALE, sample_prompts=SAMPLE_PROMPTS,
                 train_text="new_words"):
        if not isinstance(model, TextVideoDenoiser):
            raise TypeError(f"model: expected a TextVideoDenoiser, got {type(model).__name__}")
        if train_part not in TRAIN_PARTS:
            raise ValueError(f"train_part: expected one of {TRAIN_PARTS}, got {train_part!r}")
        if getattr(data, "cond_drop_prob", None) != config.cond_drop_prob:
            raise ValueError(f"data: drops captions with probability {getattr(data, 'cond_drop_prob', None)}, but "
                             f"config.cond_drop_prob is {config.cond_drop_prob}; build the source with the config's")
        if train_text not in TEXT_PARTS:
            raise ValueError(f"train_text: expected one of {TEXT_PARTS}, got {train_text!r}")
        model.config["train_part"], model.config["train_text"] = train_part, train_text
        super().__init__(model, scheduler, vae, data, config, out_dir, progress, settings)
        self.tokenizer, self.train_part = tokenizer, train_part
        self.guidance_scale, self.sample_prompts = guidance_scale, tuple(sample_prompts)
        unet = model.unet
        # Guo et al. 2023, sec. 4.2: the motion modules learn, the image UNet stays as it was trained
        trained = unet.motion_parameters() if train_part == "motion" else unet.parameters()
        if train_part == "motion" and hasattr(unet, "freeze_unet2d_params"):
            unet.freeze_unet2d_params()  # no weight gradients for the image UNet's layers
        # the optimiser and EMA only over what trains (the Trainer built them over everything)
        if train_text == "new_words":  # Gal et al. 2022, sec. 3: only the new words' rows; still prompts unchanged
            model.frozen_rows = min(tokenizer.vocab[w] for w in MOTION_WORDS)
            text = [model.text_encoder.text_model.embeddings.token_embedding.weight]
        else:
            model.frozen_rows, text = None, model.text_encoder.parameters()
        self.params = trained + text
        self.optimizer = type(self.optimizer)(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.ema = type(self.ema)(self.params, decay=config.ema_decay)

    def pipeline(self):
        """The TextToVideoPipeline of the current (or, inside ema.swap_in, the EMA) weights."""
        ddim = scheduler_from_config("ddim", scheduler_config(self.scheduler))
        return TextToVideoPipeline(self.model.unet, self.vae, self.model.text_encoder, self.tokenizer, ddim,
                                   self.guidance_scale, num_frames=self.model.config["num_frames"])

    def save_final(self):
        with self.ema.swap_in():
            self.pipeline().save_pretrained(self.out_dir / "final")

    def save_samples(self):
        """samples/step-N.png (each prompt's clip, frames as a row) and step-N.gif."""
        with self.ema.swap_in():
            clips = self.pipeline()(list(self.sample_prompts), num_inference_steps=self.config.sample_steps,
                                    rng=np.random.default_rng(self.config.seed))
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        title = f"step {self.step}, guidance {self.guidance_scale:g}: " + "; ".join(
            f"{i + 1}: {p}" for i, p in enumerate(self.sample_prompts))
        save_clips_gif(folder / f"step-{self.step:07d}.gif", clips, ncols=len(clips))
        return save_clip_rows(folder / f"step-{self.step:07d}.png", clips, title)
