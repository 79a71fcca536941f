"""Text-to-image pictures (lesson 08): prompts against their samples with each sample's
verdict, cross-attention maps beside the image, and how the guidance scale moves adherence.

    verdicts(adherence)                                  one short word per image: "ok", "colour?", ...
    prompt_grid_figure(images, prompts, adherence, per_prompt)   rows of prompts, frames by verdict
    attention_maps_figure(images, maps, words, title)    image, then one map per word, per row
    guidance_figure(images_by_scale, scales, summaries, title)  the same noise at each s, and the rates
"""

import textwrap

import numpy as np

from tinydiff.data.captions import ATTRIBUTES
from tinydiff.viz.curves import plot_curves
from tinydiff.viz.figures import new_figure
from tinydiff.viz.images import to_uint8

RIGHT, WRONG = "#1a9850", "#d73027"  # frame colours: adherent, not


def verdicts(adherence):
    """Per image of a PromptAdherence: "ok" (a valid shape, every named attribute right), "no
    clean shape" (shape_checks failed), or the attributes it got wrong ("colour, size wrong")."""
    out = []
    for named, right, valid in zip(adherence.named, adherence.right, adherence.valid):
        wrong = [a for a, n, r in zip(ATTRIBUTES, named, right) if n and not r]
        if not valid:
            out.append("no clean shape")
        elif wrong:
            out.append(", ".join(wrong) + " wrong")
        else:
            out.append("ok")
    return out


def _show(ax, image, colour=None, note=None):
    ax.imshow(to_uint8(image), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
    if note:
        ax.set_xlabel(note, fontsize=5.5, color=colour or "black")


def _check_images(images, count=None):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3 or (count is not None and len(images) != count):
        raise ValueError(f"images: expected {count or 'N'} RGB images (N, 3, H, W) in [-1, 1], got shape {images.shape}")
    return images


def prompt_grid_figure(images, prompts, adherence, per_prompt, title=None):
    """One row per prompt, its `per_prompt` samples across (images as the pipeline returns them:
    each prompt's consecutive), each framed green when prompt_adherence calls it adherent and red
    otherwise, with its verdict under it and the row's count beside the prompt.

    images : (P * per_prompt, 3, H, W); prompts : P str; adherence : PromptAdherence of the images."""
    images = _check_images(images, len(prompts) * per_prompt)
    if len(adherence.valid) != len(images):
        raise ValueError(f"adherence: expected one verdict per image ({len(images)}), got {len(adherence.valid)}")
    ok = adherence.valid & adherence.all_named_right
    notes = verdicts(adherence)
    fig, axes = new_figure(len(prompts), per_prompt, panel_size=(1.3, 1.3))
    fig.set_size_inches(1.3 * per_prompt + 1.8, 1.3 * len(prompts) + 0.6)  # room for the prompts
    for p, prompt in enumerate(prompts):
        for k in range(per_prompt):
            n = p * per_prompt + k
            _show(axes[p, k], images[n], RIGHT if ok[n] else WRONG, notes[n])
        row = ok[p * per_prompt:(p + 1) * per_prompt]
        label = "\n".join(textwrap.wrap(f'"{prompt}"', 22)) + f"\n{int(row.sum())}/{per_prompt} right"
        axes[p, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, int(14 * per_prompt + 20))), fontsize=9)
    return fig


def attention_maps_figure(images, maps, words, title=None):
    """Row r: image r, then its attention map for each word (maps[r, w], (H, W)). Each map is
    drawn on its own scale, bright where the word is read most (a word's share of all the
    attention can be small; where it is largest is the point), and titled with that share
    averaged over the rows; the outline of the shape (pixels brighter than mid-grey) is drawn on
    every map.

    images : (R, 3, H, W); maps : (R, W_words, H, W); words : W_words str."""
    images = _check_images(images)
    maps = np.asarray(maps, dtype=np.float64)
    if maps.shape[:2] != (len(images), len(words)) or maps.shape[2:] != images.shape[2:]:
        raise ValueError(f"maps: expected (R={len(images)}, words={len(words)}, H, W) of the images, got {maps.shape}")
    fig, axes = new_figure(len(images), len(words) + 1, panel_size=(1.45, 1.5))
    for r, image in enumerate(images):
        _show(axes[r, 0], image)
        shape = image.max(axis=0) > 0.0  # brighter than mid-grey in some channel
        for w, word in enumerate(words):
            ax = axes[r, w + 1]
            ax.imshow(maps[r, w], cmap="magma", interpolation="bilinear")
            if shape.any() and not shape.all():
                ax.contour(shape.astype(float), levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f'"{word}" ({maps[:, w].mean():.0%})', fontsize=8)
    axes[0, 0].set_title("sample", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


RATES = {"all_named_right": "every named attribute right", "valid": "a clean single shape",
         "adherent": "both (adherent)"}


def guidance_figure(images_by_scale, scales, summaries, title=None):
    """Left: a row of samples per guidance scale s, the same starting noise in every row, framed by
    verdict (pass each row's PromptAdherence in `summaries[i]["adherence"]`). Right: the rates
    of PromptAdherence.summary() against s.

    images_by_scale : list of (K, 3, H, W), one per scale; scales : floats; summaries : dicts
    with the keys of RATES and "adherence"."""
    if not (len(images_by_scale) == len(scales) == len(summaries)) or not scales:
        raise ValueError(f"images_by_scale, scales, summaries: expected one of each per scale, got "
                         f"{len(images_by_scale)}, {len(scales)}, {len(summaries)}")
    k = len(_check_images(images_by_scale[0]))
    fig, _ = new_figure(1, 1, panel_size=(1.2 * k + 4.6, 1.25 * len(scales) + 0.6))
    fig.clear()
    grid = fig.add_gridspec(len(scales), k + 4)
    for i, (images, s, summary) in enumerate(zip(images_by_scale, scales, summaries)):
        adherence = summary["adherence"]
        ok = adherence.valid & adherence.all_named_right
        notes = verdicts(adherence)
        for j, image in enumerate(_check_images(images, k)):
            ax = fig.add_subplot(grid[i, j])
            _show(ax, image, RIGHT if ok[j] else WRONG, notes[j])
            if j == 0:
                ax.set_ylabel(f"s = {s:g}", fontsize=9)
    ax = fig.add_subplot(grid[:, k:])
    plot_curves(ax, np.asarray(scales, dtype=np.float64),
                {label: [summary[key] for summary in summaries] for key, label in RATES.items()},
                "guidance scale s", "share of samples", "adherence against s",
                styles={RATES["valid"]: "--", RATES["adherent"]: ":"})  # the three often overlap
    ax.set_ylim(-0.02, 1.02)
    ax.set_xscale("log", base=2)
    ax.set_xticks(scales, [f"{s:g}" for s in scales])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
