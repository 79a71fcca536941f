"""Training CLIP on captioned Shapes (Radford et al. 2021, sec. 2.3, Figure 3), by hand:

    repeat:  (images, captions) ~ CaptionedShapes(split="train"), B fresh pairs per step
             text_embeds, image_embeds = clip(tokenizer(captions), images)
             loss = symmetric cross-entropy of t * cos(text_i, image_j), t = exp(logit_scale)
             clip.backward(...)  (into both towers and logit_scale); clip; AdamW; EMA

The temperature is learned: logit_scale is a parameter like any other (sec. 2.5), saved in
each checkpoint and, as a float, in final/clip.json.

Measured on held-out images (the train split under another seed, every caption naming all
four attributes), in blocks of `eval_candidates` pairs: text-to-image and image-to-text
retrieval top-1 (caption i finds image i), and per attribute (the retrieved item has the
right shape, colour, size, position, or "all" four; tinydiff.metrics.retrieval). Exact top-1
is capped below 1: a block may hold two images with the same four attributes, which no caption
tells apart; "all" counts those as right.

Randomness is keyed by (seed, step) as in tinydiff.pipelines.train: step s trains on images
s * B .. (s + 1) * B - 1 of the split, so a resumed run ends with the same weights.
CLIPTrainer reuses Trainer's loop, checkpoints, resume, NaN stops and loss log.
"""

from dataclasses import dataclass

import numpy as np

from tinydiff.data.captions import ATTRIBUTES, CaptionedShapes
from tinydiff.metrics.retrieval import attribute_retrieval, retrieval_top1
from tinydiff.models import CLIPConvVisionModel, CLIPModel
from tinydiff.models.clip_text import CLIPTextModelWithProjection
from tinydiff.optim import clip_grad_norm_, cosine_with_warmup
from tinydiff.pipelines.clip_folder import save_clip_folder
from tinydiff.pipelines.train import TrainConfig, Trainer
from tinydiff.pipelines.train_config import check_float_field, check_int_field

HELD_OUT_SEED_OFFSET = 1_000_003  # the held-out images' seed is the run's seed plus this
DIRECTIONS = ("text_to_image", "image_to_text")


def build_clip(tokenizer, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=64,
               intermediate_size=None, vision_channels=(16, 32, 64), rng=None):
    """A CLIPModel for `tokenizer`'s captions: a CLIPTextModelWithProjection with the
    tokenizer's vocabulary, special ids and length (max_position_embeddings), quick_gelu and an
    MLP of 4 x hidden_size (intermediate_size), and a CLIPConvVisionModel with the given
    channels per level."""
    rng = np.random.default_rng(0) if rng is None else rng
    text = CLIPTextModelWithProjection(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size, projection_dim=projection_dim,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        max_position_embeddings=tokenizer.model_max_length, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, rng=rng)
    vision = CLIPConvVisionModel(block_out_channels=tuple(vision_channels), projection_dim=projection_dim, rng=rng)
    return CLIPModel(text, vision)


def clip_config(clip):
    """One flat dict of both towers' configs (text_*, vision_*), JSON-ready, for checkpoints'
    config.json and the resume check (a changed key is named: 'text_hidden_size')."""
    flat = {"_class_name": "CLIPModel"}
    for prefix, tower in (("text_", clip.text_model), ("vision_", clip.vision_model)):
        for key, value in tower.config.items():
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat


class CaptionBatches:
    """data(step) -> (images (B, 3, H, W) float32, input_ids (B, N) int64): pairs
    step * B .. (step + 1) * B - 1 of CaptionedShapes(split="train"), tokenized."""

    def __init__(self, tokenizer, batch_size, seed, image_size=32, p_full=0.5):
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.dataset = CaptionedShapes(size=image_size, seed=seed, split="train", p_full=p_full)

    def __call__(self, step):
        images, captions, _ = self.dataset.get(range(step * self.batch_size, (step + 1) * self.batch_size))
        return images, self.tokenizer(captions)


def attribute_labels(labels):
    """ShapeLabels -> {"shape", "colour", "size", "position" (row * 3 + col)}: labels (N,) each."""
    return {"shape": labels.shape, "colour": labels.colour, "size": labels.size,
            "position": labels.row * 3 + labels.col}


def embed(clip, tokenizer, images, captions, batch_size=256):
    """(text_embeds (N, P), image_embeds (N, P)) in eval mode, in batches."""
    clip.eval()
    text, image = [], []
    for i in range(0, len(images), batch_size):
        t, v = clip(tokenizer(captions[i:i + batch_size]), images[i:i + batch_size])
        text.append(t)
        image.append(v)
    return np.concatenate(text), np.concatenate(image)


def retrieval_report(clip, tokenizer, images, captions, labels, candidates=128):
    """Retrieval of pairs (caption i describes image i), each query against the `candidates`
    items of its block: {"text_to_image": {"top1", "shape", "colour", "size", "position",
    "all"}, "image_to_text": {...}}, each the mean over the blocks (fractions in [0, 1])."""
    text_embeds, image_embeds = embed(clip, tokenizer, images, captions)
    attributes = attribute_labels(labels)
    blocks = [slice(i, i + candidates) for i in range(0, len(images) - candidates + 1, candidates)]
    if not blocks:
        raise ValueError(f"candidates: expected at most the {len(images)} evaluation images, got {candidates}")
    sums = {d: dict.fromkeys(("top1",) + ATTRIBUTES + ("all",), 0.0) for d in DIRECTIONS}
    for block in blocks:
        similarity = clip.logits_per_text(text_embeds[block], image_embeds[block])  # captions x images
        top1 = retrieval_top1(similarity)
        per = attribute_retrieval(similarity, {k: v[block] for k, v in attributes.items()})
        for d in DIRECTIONS:
            sums[d]["top1"] += top1[d]
            for key, value in per[d].items():
                sums[d][key] += value
    return {d: {k: v / len(blocks) for k, v in sums[d].items()} for d in DIRECTIONS}


@dataclass
class CLIPTrainConfig(TrainConfig):
    """TrainConfig's fields (its diffusion-only ones, min_snr_gamma, cond_drop_prob,
    sample_steps and num_samples, are unused) plus the data and the evaluation.
    sample_every: steps between evaluations (retrieval on held-out images, and a similarity
    matrix in samples/); 0: only at the end."""

    lr: float = 2e-3
    warmup_steps: int = 50
    ema_decay: float = 0.99
    p_full: float = 0.5  # share of training captions naming all four attributes
    image_size: int = 32
    eval_images: int = 512
    eval_candidates: int = 128

    def validate(self):
        super().validate()
        check_float_field("p_full", self.p_full, 0, 1)
        check_int_field("image_size", self.image_size, 8)
        check_int_field("eval_candidates", self.eval_candidates, 2)
        check_int_field("eval_images", self.eval_images, self.eval_candidates)


class TemperatureBar:
    """The progress bar with the inverse temperature t = exp(logit_scale) beside the loss."""

    def __init__(self, bar, clip):
        self.bar, self.clip = bar, clip

    def set_postfix(self, **fields):
        self.bar.set_postfix(t=f"{float(np.exp(self.clip.logit_scale.data)):.2f}", **fields)

    def update(self, n=1):
        self.bar.update(n)


class CLIPTrainer(Trainer):
    """Train a CLIPModel on data(step) -> (images, input_ids) (CaptionBatches).

    out_dir gets checkpoints/ (resumable; the temperature log and the evaluations ride in
    trainer_state.json), samples/step-N.png (a similarity matrix of held-out pairs at each
    evaluation) and final/: a CLIP folder of the EMA weights (tinydiff.pipelines.clip_folder)
    whose clip.json holds logit_scale, the final retrieval and the training curves.
    """

    def __init__(self, clip, tokenizer, data, config, out_dir, progress=True, settings=None):
        if getattr(clip, "config", None) is None:
            clip.config = clip_config(clip)  # checkpoints store and compare it as a model's config
        super().__init__(clip, None, data, config, out_dir, progress, settings)
        self.tokenizer = tokenizer
        self.temperature_log = []  # (step, t = exp(logit_scale)) every log_every steps
        self.evaluations = []  # (step, retrieval_report)
        self._held_out = None

    # ---- one step ----------------------------------------------------------------------
    def train_step(self, step):
        cfg, clip = self.config, self.model
        images, input_ids = self.data(step)
        clip.train()
        text_embeds, image_embeds = clip(input_ids, images)  # 1. both towers
        # 2. Radford et al. 2021, sec. 2.3 (its cross-entropy raises FloatingPointError on NaN/inf)
        loss = clip.contrastive_loss(text_embeds, image_embeds)
        clip.zero_grad()
        clip.backward(*clip.contrastive_loss_backward())  # 3.-4. into logit_scale and both towers
        grad_norm = clip_grad_norm_(self.params, cfg.grad_clip)  # raises if not finite
        self.optimizer.lr = cosine_with_warmup(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr)
        self.optimizer.step()
        self.ema.update()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            self.temperature_log.append((step + 1, float(np.exp(clip.logit_scale.data))))
        return loss, grad_norm

    def _steps(self, stop, bar):
        return super()._steps(stop, TemperatureBar(bar, self.model))

    def evaluate(self, keys):
        """Mean contrastive loss over the batches of the given step keys, without training."""
        losses = []
        for key in keys:
            images, input_ids = self.data(key)
            self.model.eval()
            losses.append(self.model.contrastive_loss(*self.model(input_ids, images)))
        return float(np.mean(losses))

    # ---- evaluation ----------------------------------------------------------------------
    def held_out(self):
        """(images, captions, labels): config.eval_images held-out pairs, full captions."""
        if self._held_out is None:
            cfg = self.config
            data = CaptionedShapes(size=cfg.image_size, seed=cfg.seed + HELD_OUT_SEED_OFFSET, split="train", p_full=1.0)
            self._held_out = data.get(range(cfg.eval_images))
        return self._held_out

    def evaluation(self):
        """The retrieval report of the EMA weights at this step (computed once per step)."""
        if self.evaluations and self.evaluations[-1][0] == self.step:
            return self.evaluations[-1][1]
        images, captions, labels = self.held_out()
        with self.ema.swap_in():
            report = retrieval_report(self.model, self.tokenizer, images, captions, labels,
                                      self.config.eval_candidates)
        self.evaluations.append((self.step, report))
        return report

    def evaluation_due(self):
        every = self.config.sample_every
        return self.step == self.config.steps or (every and self.step % every == 0)

    def trainer_state(self):
        return {**super().trainer_state(), "temperature_log": self.temperature_log,
                "evaluations": self.evaluations}

    def save_checkpoint(self):
        if self.evaluation_due():  # before the checkpoint, so that it holds this step's evaluation
            self.evaluation()
        super().save_checkpoint()

    def load_latest(self):
        super().load_latest()
        from tinydiff.pipelines import checkpoint as ckpt

        state = ckpt.read_json(self.latest_checkpoint() / "trainer_state.json")
        self.temperature_log = [tuple(entry) for entry in state.get("temperature_log", [])]
        self.evaluations = [tuple(entry) for entry in state.get("evaluations", [])]

    # ---- outputs -------------------------------------------------------------------------
    def curves(self):
        """{"loss": [[step, loss]...], "temperature": [[step, t]...], "retrieval": [[step,
        text-to-image "all", image-to-text "all"]...]}: the training curves, JSON-ready."""
        return {"loss": [list(e) for e in self.log], "temperature": [list(e) for e in self.temperature_log],
                "retrieval": [[s, r["text_to_image"]["all"], r["image_to_text"]["all"]] for s, r in self.evaluations]}

    def held_out_pairs_report(self):
        """Retrieval among eval_candidates images of HELD_OUT_PAIRS (captioned shapes' split
        "heldout", full captions): combinations of colour and shape training never showed."""
        cfg = self.config
        data = CaptionedShapes(size=cfg.image_size, seed=cfg.seed + HELD_OUT_SEED_OFFSET, split="heldout", p_full=1.0)
        with self.ema.swap_in():
            return retrieval_report(self.model, self.tokenizer, *data.get(range(cfg.eval_candidates)),
                                    cfg.eval_candidates)

    def save_final(self):
        """final/: a CLIP folder of the EMA weights; clip.json gets the retrieval (on held-out
        images, and on held-out colour-shape pairs) and the training curves."""
        report = self.evaluation()
        measured = {"steps": self.step, "retrieval": report, "retrieval_heldout_pairs": self.held_out_pairs_report(),
                    "eval_images": self.config.eval_images, "eval_candidates": self.config.eval_candidates,
                    "curves": self.curves()}
        with self.ema.swap_in():
            save_clip_folder(self.model, self.tokenizer, self.out_dir / "final", measured)

    def save_samples(self):
        """samples/step-N.png: the similarity matrix of 8 held-out pairs (EMA weights)."""
        if not self.evaluation_due():
            return None
        from tinydiff.viz.clip import save_similarity_matrix

        report = self.evaluation()
        images, captions, _ = self.held_out()
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        with self.ema.swap_in():
            text_embeds, image_embeds = embed(self.model, self.tokenizer, images[:8], captions[:8])
            similarity = self.model.logits_per_text(text_embeds, image_embeds)
        title = (f"step {self.step}: retrieval of all four attributes, text->image "
                 f"{report['text_to_image']['all']:.0%}, image->text {report['image_to_text']['all']:.0%}")
        return save_similarity_matrix(folder / f"step-{self.step:07d}.png", similarity, captions[:8], images[:8], title)
