# %% [markdown]
# # Lesson 08 — From words to pictures
#
# **What you will see.** The shipped text-to-image pipeline on captioned Shapes, taken apart. First its text
# encoder: a small CLIP, trained to put a caption and its image close together, with its training curves and
# the similarity of a few captions to a few images it never saw (the diagonal should be bright). Then prompts,
# full ("a large blue square at the top left") and partial ("a red circle"), each turned into a row of samples,
# every sample read back from its pixels and marked right or wrong. Then the picture of *how* the words steer
# the pixels: the cross-attention maps of one prompt, which part of the image looks at "red", at "circle", at
# "top", at "left". Then the guidance scale s, from 1 (no guidance) to 8, on the same noise. Last, colour-shape
# pairs the model never saw in training ("a yellow circle"), shown whether it draws them or not.
#
# **Why it matters.** This is Stable Diffusion's recipe (Rombach et al. 2022) at a size that runs on a laptop:
# a frozen text encoder turns the prompt into one vector per token, a UNet denoises the VAE's latents (lesson
# 06), and in every transformer block of the UNet the pixels *attend* to those token vectors (cross-attention:
# queries from the pixels, keys and values from the words), with classifier-free guidance (lesson 07) against
# the empty prompt. Everything a prompt does to an image goes through those attention weights, so drawing them
# shows where each word lands (Hertz et al. 2022, "Prompt-to-Prompt", Fig. 4, did it for Imagen).
#
# Run: `python lessons/08_words_to_pictures.py [--num N] [--steps S] [--out DIR] [--fast] [--model DIR]`.
# Measured with other jobs on the 2 cores (load average 5-7): 2.0 minutes, and 12 s with --fast.

# %%
import time
from collections import Counter

from tinydiff.lesson import LessonParser  # before NumPy: tinydiff/lesson.py says why
import numpy as np

from tinydiff.data.captions import HELD_OUT_PAIRS, CaptionedShapes, parse_caption
from tinydiff.data.shapes import COLOUR_NAMES, SHAPES
from tinydiff.metrics.prompt_adherence import prompt_adherence
from tinydiff.metrics.retrieval import retrieval_top1
from tinydiff.pipelines.attention_maps import cross_attention_maps
from tinydiff.pipelines.clip_folder import load_clip_folder
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import text2image_clip_dir, text2image_dir
from tinydiff.viz import save_figure
from tinydiff.viz.clip import save_similarity_matrix, save_training_curves
from tinydiff.viz.text2image import attention_maps_figure, guidance_figure, prompt_grid_figure, verdicts

# Terms (cross-attention, guidance scale, latent, ...): docs/glossary.md.
parser = LessonParser("08_words_to_pictures", "Lesson 08: from words to pictures",
                      fast_help="fewer prompts, samples and steps, for smoke tests")
parser.add_argument("--num", type=int, default=8, help="samples per prompt (default 8)")
parser.add_argument("--steps", type=int, default=25, help="DDIM steps per sample (default 25)")
parser.add_argument("--model", default=None, help="a text-to-image pipeline folder instead of the shipped one")
args = parser.parse()
OUT = args.out
NUM = 2 if args.fast else max(2, args.num)
STEPS = 4 if args.fast else args.steps
started = time.perf_counter()

# %% [markdown]
# ## Part 1 — the text encoder: a small CLIP
# CLIP (Radford et al. 2021) trains two encoders at once, one for captions and one for images, so that in each
# batch of B pairs a caption is most similar to its own image among the B (the contrastive loss, sec. 2.3).
# Ours was trained on captioned Shapes for 600 steps; the text-to-image UNet then conditions on its text
# encoder, frozen. Its folder keeps the training curves: the loss, the learned temperature t (how sharp the
# softmax over the batch is) and retrieval on held-out images, measured as training went.

# %%
clip, clip_tokenizer, info = load_clip_folder(text2image_clip_dir())
print("saved", save_training_curves(OUT / "clip_training_curves.png", info["curves"],
                                    f"the shipped CLIP on captioned Shapes, {info['steps']} steps"))
print(f"held-out retrieval at the end (all four attributes right): text -> image "
      f"{info['retrieval']['text_to_image']['all']:.0%}, image -> text {info['retrieval']['image_to_text']['all']:.0%}")

# %% [markdown]
# The similarity matrix: six images no model here trained on (seed 2026), each with a caption naming all four
# attributes. Cell (i, j) is t times the cosine similarity of caption i and image j; each caption's best image
# is boxed. A text encoder that learnt the attributes puts every caption's best image on the diagonal.

# %%
images, captions, _ = CaptionedShapes(seed=2026, p_full=1.0)[0:6]
clip.eval()
text_embeds, image_embeds = clip(clip_tokenizer(captions), images)
similarity = clip.logits_per_text(text_embeds, image_embeds)
clip_top1 = retrieval_top1(similarity)
print("saved", save_similarity_matrix(OUT / "clip_similarity.png", similarity, captions, images,
                                      "captions x images: the diagonal holds the true pairs"))
print(f"each caption's best image is its own: {clip_top1['text_to_image']:.0%}; each image's best caption: "
      f"{clip_top1['image_to_text']:.0%}")

# %% [markdown]
# What to notice: the diagonal is bright, and every caption's best image is its own. The brightest cells off
# it pair the two small white circles, whose captions differ in one word (top right, bottom right): the
# encoder reads the attributes one by one, so two captions that share three of four words stay close. That
# is what the UNet will need: one token vector per attribute word, each meaning something.
#
# ## Part 2 — from prompt to image
# `TextToImagePipeline` is diffusers' StableDiffusionPipeline in small: tokenizer, frozen text encoder, a UNet
# on 4x8x8 latents, the Shapes VAE of lesson 06 to decode, and DDIM. Each prompt below gets `--num` samples at
# the scale the pipeline recommends. Then `prompt_adherence` reads every image back from its pixels (shape,
# colour, size and position, the renderer's inverse) and checks the attributes the prompt names. Frames: green
# when the sample is one clean shape with every named attribute right, red otherwise, with what went wrong.

# %%
pipe = TextToImagePipeline.from_pretrained(args.model or text2image_dir())
SCALE = pipe.guidance_scale
print(f"UNet {pipe.unet.num_parameters() / 1e6:.2f} M parameters; recommended guidance scale s = {SCALE:g}; "
      f"DDIM {STEPS} steps")
FULL = ["a large blue square at the top left", "a small green triangle on the right", "a medium red circle at the bottom"]
PARTIAL = ["a red circle", "a large triangle", "a white shape in the centre"]
prompts = FULL[:2] + PARTIAL[:2] if args.fast else FULL + PARTIAL
for p in prompts:
    print(f"{p!r:40} names {sorted(parse_caption(p))}")
grid = pipe(prompts, num_images_per_prompt=NUM, num_inference_steps=STEPS, rng=np.random.default_rng(0))
asked = [p for p in prompts for _ in range(NUM)]
adherence = prompt_adherence(grid, asked)
ok = adherence.valid & adherence.all_named_right
for i, p in enumerate(prompts):
    print(f"{p!r:40} {int(ok[i * NUM:(i + 1) * NUM].sum())}/{NUM} right")
full_rate = float(np.mean([o for o, a in zip(ok, asked) if a in FULL]))
partial_rate = float(np.mean([o for o, a in zip(ok, asked) if a in PARTIAL]))
print(f"adherent at s = {SCALE:g}: full captions {full_rate:.0%}, partial captions {partial_rate:.0%}")
fig = prompt_grid_figure(grid, prompts, adherence, NUM, f"samples at s = {SCALE:g}, DDIM {STEPS} steps; green: "
                         "a clean shape with every attribute the prompt names")
print("saved", save_figure(fig, OUT / "prompt_grid.png"))

# %% [markdown]
# What to notice: a partial prompt leaves the other attributes free, and the samples use that freedom: "a red
# circle" comes in several sizes and places. A full prompt pins all four, and the row looks like copies with a
# pixel of jitter. The verdicts are the renderer's own inverse, so a red frame is a real miss, not a judgement
# call. In our run (8 samples a prompt) 92% of full and of partial prompts came out right, and every miss was
# "no clean shape" (a ragged small triangle, an empty frame), never a wrong attribute.
#
# ## Part 3 — where the words land: cross-attention maps
# In each transformer block, attn2 computes P = softmax(Q K^T / sqrt(d)): one row per latent pixel, one column
# per token of the prompt, each row summing to 1. Column j, laid out on the feature map, says which pixels read
# token j. `cross_attention_maps` records P in every attn2 layer at every sampling step (the fast attention
# kernel never stores P, so the layers recompute it while recording), keeps the prompt's half of the guided
# batch, averages over heads, upsamples each layer's 8x8 or 4x4 map to 32x32 and averages over layers and steps.
# White outline: the shape as drawn.

# %%
ATTENTION_PROMPT = "a large red circle at the top left"
WORDS = ["<bos>", "a", "large", "red", "circle", "top", "left", "<eos>"]
attention = cross_attention_maps(pipe, ATTENTION_PROMPT, np.random.default_rng(3), STEPS,
                                 num_images=1 if args.fast else 3)
fig = attention_maps_figure(attention.images, np.stack([attention.word(w) for w in WORDS], axis=1), WORDS,
                            f'"{ATTENTION_PROMPT}": where each token is read (each map on its own scale; in '
                            f"brackets its share of all the attention), averaged over heads, layers and {STEPS} steps")
print("saved", save_figure(fig, OUT / "cross_attention_maps.png"))
inside = attention.images.max(axis=1) > 0.0  # (R, 32, 32): the shape's pixels (brighter than mid-grey)
drawn = inside.any(axis=(1, 2)) & ~inside.all(axis=(1, 2))
focus = {}  # token -> mean attention on the shape / mean attention off it, over samples with a shape
print(f"{'token':>8} {'share':>6} {'on the shape / off it':>22}")
for j, token in enumerate(attention.tokens):
    if token != "<pad>" and token not in focus:
        ratios = [m[s].mean() / m[~s].mean() for m, s, d in zip(attention.maps[:, j], inside, drawn) if d]
        focus[token] = float(np.mean(ratios)) if ratios else float("nan")
        print(f"{token:>8} {attention.maps[:, j].mean():>6.1%} {focus[token]:>22.2f}")
pads = np.array(attention.tokens) == "<pad>"
print(f"the {pads.sum()} <pad> tokens together: {attention.maps[:, pads].sum(axis=1).mean():.1%}")

# %% [markdown]
# What to notice (our run, the table above): not quite Prompt-to-Prompt's Fig. 4, where the map of the
# object's noun outlines the object. <bos> and "a" take 43% of all the attention and are read off the shape
# (0.7 times as much on it): the same in every prompt, they are where attention goes when it should change
# nothing, an "attention sink" (Xiao et al. 2023 named it in language models). "large" and "circle" are read
# in a spot at the shape's centre, "red" around it rather than on it (0.8). The shape's pixels read the *end*
# of the prompt most: "at the top left" and <eos>, 1.3 to 1.7 times as much on the shape as off it. The text
# encoder explains why: CLIP's is causal (token i sees tokens 0..i only), so the state of "red" knows "a large
# red" and nothing more, while "left" and <eos> have seen the whole prompt, and the UNet reads the whole
# prompt where it needs it. Read the maps as *where a token is read*, not as *what the word means*.
#
# ## Part 4 — the guidance scale
# The same prompts and the same starting noise at s = 1 (the conditional model alone), 2, 4 and 8: guided
# = uncond + s (cond - uncond), with the empty prompt as the null condition (lesson 07). Small numbers
# (benchmarks/bench_text2image.py runs the large ones): the full prompts of Part 2, `--num` samples each.

# %%
SCALES = [1.0, 4.0] if args.fast else [1.0, 2.0, 4.0, 8.0]
guide_prompts = FULL[:1] if args.fast else FULL
shown_per_scale = min(8, NUM * len(guide_prompts))
rows, summaries = [], []
for s in SCALES:
    x = pipe(guide_prompts, num_images_per_prompt=NUM, guidance_scale=s, num_inference_steps=STEPS,
             rng=np.random.default_rng(11))  # the same x_T at every s
    want = [p for p in guide_prompts for _ in range(NUM)]
    summary = prompt_adherence(x, want).summary()
    pick = np.linspace(0, len(x) - 1, shown_per_scale).round().astype(int)  # spread over the prompts
    summary["adherence"] = prompt_adherence(x[pick], [want[i] for i in pick])
    rows.append(x[pick])
    summaries.append(summary)
    print(f"s = {s:<3g} all named attributes right {summary['all_named_right']:6.1%}  clean shape "
          f"{summary['valid']:6.1%}  adherent {summary['adherent']:6.1%}  (n = {len(x)})")
fig = guidance_figure(rows, SCALES, summaries, f"full prompts, the same noise in every row; DDIM {STEPS} steps")
print("saved", save_figure(fig, OUT / "guidance_scales.png"))
by_scale = dict(zip(SCALES, summaries))

# %% [markdown]
# What to notice (our run, 24 samples per s): this model needs little guidance. At s = 1 96% already name-check
# (one sample missed), at s = 2 all do. Beyond that guidance only costs, as on the glyphs of lesson 07: every
# attribute stays right, but the shapes come out less clean (92% at the recommended s = 4, 79% at s = 8).
# The benchmark's larger samples say where the best s really lies; 24 samples cannot.
#
# ## Part 5 — combinations it never saw
# Training never showed a yellow circle, a magenta square or a blue triangle (`HELD_OUT_PAIRS`): every colour
# and every shape, but not these pairs. Below each, a control with the same colour on a shape it did see. Does
# the model compose "yellow" and "circle" it learnt apart? The verdicts say, either way.

# %%
held = [f"a {colour} {shape}" for colour, shape in HELD_OUT_PAIRS]
controls = [f"a {colour} {[s for s in SHAPES if s != shape][0]}" for colour, shape in HELD_OUT_PAIRS]
pair_prompts = [p for pair in zip(held, controls) for p in pair]
pairs = pipe(pair_prompts, num_images_per_prompt=NUM, num_inference_steps=STEPS, rng=np.random.default_rng(5))
pair_asked = [p for p in pair_prompts for _ in range(NUM)]
pair_adherence = prompt_adherence(pairs, pair_asked)
fig = prompt_grid_figure(pairs, pair_prompts, pair_adherence, NUM, f"held-out pairs (never in training) and "
                         f"controls with the same colour; s = {SCALE:g}, DDIM {STEPS} steps")
print("saved", save_figure(fig, OUT / "held_out_pairs.png"))
pair_ok = pair_adherence.valid & pair_adherence.all_named_right
pair_verdicts = verdicts(pair_adherence)  # "ok", "shape wrong", "no clean shape", ...
is_held = np.array([p in held for p in pair_asked])
held_rate, control_rate = float(pair_ok[is_held].mean()), float(pair_ok[~is_held].mean())
for p in held:  # what it drew instead, when it missed
    rows_p = np.array([a == p for a in pair_asked])
    read = pair_adherence.read
    drawn_as = Counter((f"{COLOUR_NAMES[c]} {SHAPES[k]}" if c >= 0 else "nothing") + f" ({v})" for c, k, r, v in
                       zip(read.colour[rows_p], read.shape[rows_p], pair_ok[rows_p], np.array(pair_verdicts)[rows_p])
                       if not r)
    print(f"{p!r:20} {int(pair_ok[rows_p].sum())}/{NUM} right" + ("; missed ones read as: " + ", ".join(
        f"{n} x {what}" for what, n in drawn_as.most_common()) if drawn_as else ""))
print(f"held-out pairs adherent {held_rate:.0%}, controls (seen pairs, same colours) {control_rate:.0%}")
colour_right = float(pair_adherence.right[is_held, 1].mean())
shape_right = float(pair_adherence.right[is_held, 0].mean())
print(f"on the held-out pairs, the colour is right in {colour_right:.0%} and the shape in {shape_right:.0%}")
print(f"lesson ran in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# What to read here (our run): it does not compose them. The controls come out right 92% of the time, the
# held-out pairs 8% (2 of 24, both blue triangles). The misses are all of one kind: the colour is always
# right and the shape is replaced by one the colour came with in training. "a yellow circle" gives yellow
# squares, "a magenta square" magenta circles, "a blue triangle" mostly blue circles. The model learnt
# "yellow" as "a yellow square or triangle", the combination and not the word. This is the failure the
# held-out split exists to catch; bigger models trained on far more varied captions get further, but the
# same failure at the edges of their data is the common complaint about them too.

# %% [markdown]
# ## Checks
# The claims above, as numbers.

# %%
assert clip_top1["text_to_image"] == 1.0 and clip_top1["image_to_text"] == 1.0, clip_top1  # the diagonal
assert grid.shape == (len(prompts) * NUM, 3, 32, 32) and np.all(np.abs(grid) <= 1.0)
np.testing.assert_allclose(attention.maps.sum(axis=1), 1.0, atol=1e-5)  # each pixel's attention sums to 1
assert attention.tokens[1:1 + len(ATTENTION_PROMPT.split())] == ATTENTION_PROMPT.split(), attention.tokens
assert all(0.0 <= s[k] <= 1.0 for s in summaries for k in ("all_named_right", "valid", "adherent"))
assert 0.0 <= held_rate <= 1.0 and 0.0 <= control_rate <= 1.0
if not args.fast and args.model is None:  # the shipped model's claims
    assert full_rate >= 0.8, full_rate  # full captions are drawn as asked at the recommended scale
    # the shape reads the end of the prompt, which has seen all of it; the background reads <bos>
    assert focus["<eos>"] > 1.1 and focus["left"] > 1.1 and focus["<bos>"] < 0.9, focus
    # guidance helps: at the recommended scale more samples name-check than without it
    assert by_scale[SCALE]["all_named_right"] >= by_scale[1.0]["all_named_right"], summaries
    # held-out pairs: the colour is kept, the shape mostly is not (what the prose above reports)
    assert colour_right >= 0.9 and held_rate < control_rate - 0.3, (colour_right, held_rate, control_rate)
print("all checks passed")
