# %% [markdown]
# # Lesson 09 — Teach it something new
#
# **What you will see.** The shipped text-to-image model (lesson 08) has only ever seen circles, squares and
# triangles. Here it learns a **ring** from four pictures, bound to a word it never saw, "sks". First the four
# pictures, and what the model's VAE makes of them. Then samples of "a sks shape" before and after, and "a blue
# sks shape at the bottom right", a colour and a place none of the four pictures has. Then what fine-tuning costs
# the rest of the model: "a shape" and "a red circle" with and without *prior preservation*, side by side. Then
# LoRA's rank against what it learns and the size of its file; an adapter merged in at scales 0 to 1; and two
# adapters, a ring and a star, loaded together.
#
# **Why it matters.** DreamBooth (Ruiz et al. 2022) is how a trained text-to-image model learns one new subject
# from a handful of images, and LoRA (Hu et al. 2021) is why that fits in a file a few hundred times smaller than
# the model: the pretrained weights stay frozen, and each attention projection W gets a low-rank correction
# (alpha / r) B A, B zero at the start, so training starts exactly at the base model. Prior preservation (eq. 2
# of the paper) trains on the model's own samples of the class ("a shape") at the same time, so the class word
# keeps its meaning instead of drifting towards the new subject.
#
# The adapters shown were trained by `python -m tinydiff.pretrained.train_dreambooth` (the same as `tinydiff
# finetune --lora-rank 4 --with-prior-preservation`, 300 steps); `--retrain N` retrains one here for N steps.
#
# Run: `python lessons/09_teach_it_something_new.py [--num N] [--steps S] [--retrain N] [--out DIR] [--fast]`.

# %%
import time

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np

from tinydiff.data.concepts import instance_images
from tinydiff.metrics.concept import concept_checks, concept_fidelity, text_control
from tinydiff.metrics.prompt_adherence import prompt_adherence
from tinydiff.pipelines.latent import decode_latents, encode_images, scale_latents
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import text2image_dir
from tinydiff.pretrained.train_dreambooth import ADAPTERS, adapter_path, finetune
from tinydiff.viz import save_figure
from tinydiff.viz.dreambooth import rank_figure, rows_figure

parser = LessonParser("09_teach_it_something_new", "Lesson 09: teach it something new (DreamBooth, LoRA)",
                      fast_help="fewer samples and steps, a 2-step retraining, for smoke tests")
parser.add_argument("--num", type=int, default=40, help="samples per measured prompt (default 40)")
parser.add_argument("--steps", type=int, default=20, help="DDIM steps per sample (default 20)")
parser.add_argument("--retrain", type=int, default=0, help="also retrain the rank-4 adapter for N steps (default 0)")
args = parser.parse()
OUT = args.out
NUM = 4 if args.fast else max(8, args.num)
STEPS = 3 if args.fast else args.steps
RETRAIN = 2 if args.fast else args.retrain
SHOW = 8  # samples shown per row
started = time.perf_counter()


def pipeline(*adapters):
    """The shipped pipeline with the named shipped adapters loaded (each at weight 1)."""
    pipe = TextToImagePipeline.from_pretrained(text2image_dir())
    for name in adapters:
        pipe.load_lora_weights(adapter_path(name), adapter_name=name)
    return pipe


def draw(pipe, prompt, count, key, **options):
    """count samples of one prompt (or a list of count prompts), the same initial noise for the same key."""
    return pipe(prompt, num_images_per_prompt=count if isinstance(prompt, str) else 1, num_inference_steps=STEPS,
                rng=np.random.default_rng((9, key)), **options)


# %% [markdown]
# ## Part 1 — four pictures of something new
# Four rings in the Shapes style, each a colour and place of its own; none is blue and none sits at the bottom
# right. Can the model learn a ring at all? It denoises the VAE's latents (lesson 06), so a ring must survive the
# VAE first: the second row is each picture encoded and decoded, scored by the IoU of its pixels with a drawn
# ring (tinydiff.metrics.concept). A five-pointed star was the first choice; the VAE rounds its points off (IoU
# about 0.7, benchmarks/bench_dreambooth.py), so the ring it keeps (0.84) became the concept.

# %%
images, labels = instance_images("ring")
base = pipeline()
mean, _ = encode_images(base.vae, images)
recon = np.clip(decode_latents(base.vae, scale_latents(base.vae, mean)), -1, 1)
recon_iou = concept_checks(recon, "ring").iou
fig = rows_figure([images, recon], ["the 4 pictures\n'a sks shape'", "through the VAE"],
                  "DreamBooth's instance images and their VAE reconstructions",
                  notes=[[""] * 4, [f"ring IoU {v:.2f}" for v in recon_iou]])
print("saved", save_figure(fig, OUT / "instance_images.png"))
print("ring IoU of the reconstructions:", np.round(recon_iou, 3))

# %% [markdown]
# ## Part 2 — before and after
# The same initial noise, the base model and the model with the rank-4 adapter (trained with prior
# preservation). Before, "sks" means nothing to it: it draws some shape. After, a ring, and the words around
# "sks" still work: "a blue sks shape at the bottom right" asks for what no instance picture showed.

# %%
tuned = pipeline("ring_r4_prior")
prompts = ("a sks shape", "a blue sks shape at the bottom right")
before = [draw(base, p, NUM, k) for k, p in enumerate(prompts)]
after = [draw(tuned, p, NUM, k) for k, p in enumerate(prompts)]
fidelity_before, fidelity_after = concept_fidelity(before[0], "ring"), concept_fidelity(after[0], "ring")
control = text_control(after[1], [prompts[1]] * NUM, "ring")
fig = rows_figure([before[0][:SHOW], after[0][:SHOW], before[1][:SHOW], after[1][:SHOW]],
                  [f"before\n{prompts[0]}", f"after\n{prompts[0]}", "before\n...blue, bottom right",
                   "after\n...blue, bottom right"],
                  f"'a sks shape' is a ring in {fidelity_before:.0%} of samples before, {fidelity_after:.0%} after")
print("saved", save_figure(fig, OUT / "before_after.png"))
print(f"concept fidelity of 'a sks shape': {fidelity_before:.0%} before, {fidelity_after:.0%} after ({NUM} samples)")
print(f"'{prompts[1]}': colour and position right {control['colour_and_position']:.0%}, "
      f"and a ring too {control['with_concept']:.0%}")

# %% [markdown]
# ## Part 3 — prior preservation
# Fine-tuning on four rings captioned "a sks shape" also teaches "a" and "shape": without anything to hold
# them, the class prompt "a shape" drifts towards rings (the paper's *language drift*). With prior preservation,
# each step also trains on the base model's own samples of "a shape", generated before training, so the model
# is held to what it believed. Below: the base model, then the adapter trained without and with it.

# %%
no_prior = pipeline("ring_r4")
ordinary = ["a shape", "a red circle"]
rows, labels_, drift = [], [], {}
for name, pipe in (("base", base), ("without prior preservation", no_prior), ("with prior preservation", tuned)):
    shape, circle = draw(pipe, ordinary[0], NUM, 5), draw(pipe, ordinary[1], NUM, 6)
    drift[name] = {"a shape as a ring": concept_fidelity(shape, "ring"),
                   "a red circle right": prompt_adherence(circle, [ordinary[1]] * NUM).summary()["adherent"]}
    rows += [shape[:SHOW], circle[:SHOW]]
    labels_ += [f"{name}\n'a shape'", f"{name}\n'a red circle'"]
fig = rows_figure(rows, labels_, "the class prompt without and with prior preservation (same noise per row pair)")
print("saved", save_figure(fig, OUT / "prior_preservation.png"))
for name, d in drift.items():
    print(f"{name:28s} 'a shape' drawn as a ring {d['a shape as a ring']:4.0%}; 'a red circle' right "
          f"{d['a red circle right']:4.0%}")

# %% [markdown]
# ## Part 4 — how much rank does a ring need?
# A rank-r adapter of a d_out x d_in matrix trains r (d_in + d_out) numbers instead of d_in d_out: rank 1 is a
# single direction per matrix. The file grows linearly with r; the whole UNet is the dashed line.

# %%
ranks, fidelity_by_rank, kb_by_rank = [], [], []
for name in ("ring_r1_prior", "ring_r4_prior"):
    pipe = pipeline(name)
    ranks.append(ADAPTERS[name][2])
    fidelity_by_rank.append(concept_fidelity(draw(pipe, "a sks shape", NUM, 0), "ring"))
    kb_by_rank.append(adapter_path(name).stat().st_size / 1e3)
full_kb = 4 * base.unet.num_parameters() / 1e3
fig = rank_figure(ranks, fidelity_by_rank, kb_by_rank, full_kb, f"LoRA rank: fidelity ({NUM} samples) and file size")
print("saved", save_figure(fig, OUT / "rank_vs_fidelity.png"))
for r, f, kb in zip(ranks, fidelity_by_rank, kb_by_rank):
    print(f"rank {r}: fidelity {f:.0%}, {kb:.0f} KB ({kb / full_kb:.1%} of the UNet's {full_kb / 1e3:.1f} MB)")

# %% [markdown]
# ## Part 5 — merging an adapter in, from 0 to 1
# The LoRA scale s multiplies every correction: W0 + s (alpha / r) B A. At s = 0 the model is the base model,
# to the last bit; at 1 the trained one. Diffusers names it `cross_attention_kwargs={"scale": s}`. The same noise
# in every column: watch a shape turn into a ring.

# %%
scales = (0.0, 0.25, 0.5, 0.75, 1.0)
strip = [draw(tuned, "a sks shape", 4, 7, cross_attention_kwargs={"scale": s}) for s in scales]
fig = rows_figure([np.stack([strip[k][i] for k in range(len(scales))]) for i in range(4)],
                  [f"noise {i + 1}" for i in range(4)], "'a sks shape' with the adapter at scale s",
                  col_labels=[f"s = {s:g}" for s in scales])
print("saved", save_figure(fig, OUT / "lora_scale_strip.png"))
at_zero = draw(base, "a sks shape", 4, 7)

# %% [markdown]
# ## Part 6 — two adapters at once
# A second adapter taught a star under another rare word, "zwx". Loaded together (diffusers' `set_adapters`
# with a weight each) their corrections add up; each word calls up its own concept, because each adapter learnt
# to answer only its own word's text states. The star comes out rounder than drawn: the VAE cannot keep its
# points (Part 1).

# %%
both = pipeline("ring_r4_prior", "star_r4_prior")
both.set_adapters(["ring_r4_prior", "star_r4_prior"], [1.0, 1.0])
combined = {p: draw(both, p, NUM, 8) for p in ("a sks shape", "a zwx shape", "a shape")}
ring_share = concept_fidelity(combined["a sks shape"], "ring")
star_vs_ring = concept_checks(combined["a zwx shape"], "ring").recognised.mean()
fig = rows_figure([v[:SHOW] for v in combined.values()], list(combined),
                  f"two adapters, weight 1 each: 'a sks shape' a ring {ring_share:.0%}; 'a zwx shape' a ring "
                  f"{star_vs_ring:.0%}")
print("saved", save_figure(fig, OUT / "two_adapters.png"))

# %% [markdown]
# ## Part 7 — train one yourself
# What `tinydiff finetune --instance-prompt "a sks shape" --with-prior-preservation` runs: class images from
# the model itself, then steps of eq. 2's loss on the LoRA parameters only (`--retrain N`; 0 skips it).

# %%
if RETRAIN:
    trainer, seconds, class_seconds = finetune("ring", "sks", 4, True, OUT / "retrain", steps=RETRAIN,
                                               num_class_images=4 if args.fast else 100)
    print(f"retrained rank 4 for {RETRAIN} steps in {seconds:.0f} s (+{class_seconds:.0f} s of class images); "
          f"loss {trainer.log[-1][1]:.4f}; adapter in {OUT / 'retrain' / 'final'}")

# %% [markdown]
# ## What to notice
# - A minute of training on the attention projections alone moves "sks" towards the ring, but at this size it
#   is a trade: the shipped rank-4 adapters (lr 1e-2, 300 steps) draw a ring for 66% of "a sks shape" without
#   prior preservation and 9% with it, and both cost the ordinary prompts much of their adherence
#   (benchmarks/bench_dreambooth.py). A 6.8 MB UNet has little room to spare; tune the rate and the steps.
# - Without prior preservation "a shape" itself becomes a ring (53% of samples); with it, 12%.
# - What the ordinary prompts lose is mostly size and position, not shape: the shipped ring_r4_prior adapter drew
#   24 full captions (DDIM 20, guidance 4) with the named shape 78%, colour 96%, size 64% and position 32% right,
#   13 of them large where 5 asked for large, and none as a ring. The four instance images are all large or
#   medium, and the prior term's "a shape" names no size or position to hold. A lower rate does not cure it:
#   lr 2e-3 for 400 steps (with prior preservation) still fell to 58% adherence on those 24 (base 96%) and drew
#   a ring for 2 of 16 "a sks shape".
# - The adapter is about 0.1 MB against the UNet's 6.8 MB, and it can be dialled in (scale) or combined.

# %%
print(f"figures in {OUT}; {time.perf_counter() - started:.0f} s")
assert recon_iou.mean() >= 0.8, recon_iou  # the VAE keeps the concept (on average; bench_dreambooth per size)
np.testing.assert_array_equal(strip[0], at_zero)  # scale 0 is the base model exactly
assert fidelity_after >= fidelity_before, (fidelity_before, fidelity_after)
if not args.fast:
    # the shipped adapters miss issue 15's 80% fidelity target (bench_dreambooth: 9% with prior preservation,
    # 66% without); what the lesson shows still holds: the word learnt something, and prior preservation held
    # the class prompt back from the ring
    assert fidelity_before <= 0.1, fidelity_before
    assert drift["without prior preservation"]["a shape as a ring"] > drift["with prior preservation"]["a shape as a ring"]
print("all checks passed")
