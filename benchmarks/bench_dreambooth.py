"""DreamBooth on the shipped text-to-image pipeline: does it learn the new concept, does the concept
compose with words, what does the rest of the model lose, and what does it cost. Every target of
issue 15, measured from the pixels (tinydiff.metrics.concept, tinydiff.metrics.prompt_adherence):

0. the concept: the shipped VAE's reconstructions of rings and stars against their templates
   (IoU per size; the concept must survive the VAE before a latent model can learn it);
1. per run (LoRA ranks, with and without prior preservation, full fine-tuning; the settings of
   tinydiff/pretrained/train_dreambooth.py):
   - concept fidelity: the share of "a sks shape" samples recognised as the concept (target
     >= 80% at rank 4);
   - text control: "a blue sks shape at the bottom right" and three more prompts naming a colour
     and a position no instance image has: both right (target >= 70%), and also recognised;
   - prior drift: adherence (all named attributes right and a valid shape) on ordinary prompts
     (full captions of the train split), the base model's minus the fine-tuned one's, in points
     (target <= 5 with prior preservation), and the language drift itself: the share of "a
     shape" samples that came out as the concept (the base model: 0);
   - cost: training seconds (target <= 5 min for a LoRA run, class images included), trainable
     numbers, adapter file size (target <= 200 KB), and the training state (weights being
     trained + their gradients + AdamW's two moments, float32) against full fine-tuning's.

    python benchmarks/bench_dreambooth.py                               # every run, shipped settings (a quiet machine)
    python benchmarks/bench_dreambooth.py --quick                       # 2 steps, 4 samples: runs, no more
    python benchmarks/bench_dreambooth.py --runs ring_r4_prior,ring_r4 --ship   # also write the shipped adapters

Seeds are fixed. Writes JSON (default benchmarks/results/dreambooth.json).
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import tinydiff  # noqa: F401  -- before NumPy (tinydiff/runtime/process_settings.py)
import numpy as np
from train_cases import environment, write_results

from tinydiff.data.captions import random_full_caption
from tinydiff.data.concepts import random_concept_images
from tinydiff.metrics.concept import concept_checks, concept_fidelity, text_control
from tinydiff.metrics.prompt_adherence import prompt_adherence
from tinydiff.pipelines.dreambooth import LORA_FILE
from tinydiff.pipelines.latent import load_vae_folder
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained import HERE, text2image_dir
from tinydiff.pretrained.train_dreambooth import ADAPTERS, ADAPTERS_DIR, LORA_LR, STEPS, finetune

# name -> (concept, word, rank or None (full), prior preservation); the shipped ones and the comparisons
RUNS = {**ADAPTERS, "ring_r16_prior": ("ring", "sks", 16, True), "ring_full_prior": ("ring", "sks", None, True)}
CONTROL_PROMPTS = ("a blue {} shape at the bottom right", "a cyan {} shape on the left",
                   "a white {} shape at the bottom", "a blue {} shape at the top")


def vae_check(count, seed=0):
    """Mean and min template IoU of the shipped VAE's reconstructions, per concept and size."""
    vae = load_vae_folder(HERE / "shapes_latent" / "vae")
    out = {}
    for concept in ("ring", "star"):
        images, labels = random_concept_images(concept, count, seed)
        recon = np.clip(vae.decode(vae.encode(images).mean), -1, 1)
        iou = concept_checks(recon, concept).iou
        out[concept] = {size: {"mean_iou": float(iou[labels.size == k].mean()), "min_iou": float(iou[labels.size == k].min()),
                               "n": int((labels.size == k).sum())}
                        for k, size in enumerate(("small", "medium", "large")) if (labels.size == k).any()}
        print(f"VAE reconstructions of {concept}s: " + ", ".join(
            f"{s} IoU {v['mean_iou']:.3f} (min {v['min_iou']:.3f})" for s, v in out[concept].items()))
    return out


def ordinary_prompts(count, seed=7):
    rng = np.random.default_rng(seed)
    return ["a red circle", "a shape"] + [random_full_caption(rng) for _ in range(count - 2)]


def measure(pipe, concept, word, num, steps, adherence_prompts):
    """Fidelity, text control, adherence on ordinary prompts and the concept share of "a shape"."""
    def draw(prompts, key):
        return pipe(prompts, num_inference_steps=steps, rng=np.random.default_rng((11, key)))

    control = [CONTROL_PROMPTS[i % len(CONTROL_PROMPTS)].format(word) for i in range(num)]
    control_images = draw(control, 2)
    score = text_control(control_images, control, concept)
    return {"fidelity": concept_fidelity(draw([f"a {word} shape"] * num, 1), concept),
            "text_control": score["colour_and_position"], "text_control_with_concept": score["with_concept"],
            "adherence": prompt_adherence(draw(adherence_prompts, 3), adherence_prompts).summary()["adherent"],
            "class_prompt_as_concept": concept_fidelity(draw(["a shape"] * num, 4), concept)}


def run_one(name, args, class_latents, adherence_prompts, base):
    concept, word, rank, prior = RUNS[name]
    with tempfile.TemporaryDirectory() as work:
        trainer, seconds, class_seconds = finetune(concept, word, rank, prior, work, args.steps,
                                                   class_latents=class_latents, num_class_images=args.class_images,
                                                   lr=args.lora_lr if rank else None)
        trainable = sum(p.data.size for p in trainer.params)
        result = {"concept": concept, "word": word, "rank": rank, "prior_preservation": prior, "steps": args.steps,
                  "train_seconds": seconds, "class_image_seconds": class_seconds, "trainable": int(trainable),
                  "training_state_bytes": 4 * 4 * int(trainable)}  # weights, gradients, AdamW's m and v
        file = Path(work) / "final" / LORA_FILE
        result["file_bytes"] = file.stat().st_size if rank else None
        if args.ship and name in ADAPTERS:
            (ADAPTERS_DIR / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, ADAPTERS_DIR / name / LORA_FILE)
        start = time.perf_counter()
        result.update(measure(trainer.pipe, concept, word, args.num, args.sample_steps, adherence_prompts))
        result["measure_seconds"] = time.perf_counter() - start
    result["prior_drift_points"] = 100 * (base["adherence"] - result["adherence"])
    return result, trainer.class_latents if prior else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps per run (default {STEPS})")
    parser.add_argument("--lora-lr", type=float, default=LORA_LR, help=f"LoRA runs' learning rate (default {LORA_LR})")
    parser.add_argument("--num", type=int, default=40, help="samples per measure (default 40)")
    parser.add_argument("--adherence-num", type=int, default=60, help="ordinary prompts for the drift (default 60)")
    parser.add_argument("--class-images", type=int, default=100, help="class images (default 100)")
    parser.add_argument("--sample-steps", type=int, default=20, help="DDIM steps of every sample (default 20)")
    parser.add_argument("--ship", action="store_true", help=f"copy the shipped runs' adapters to {ADAPTERS_DIR}")
    parser.add_argument("--quick", action="store_true", help="2 steps, 4 samples, 4 class images: runs, no more")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "dreambooth.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.num, args.adherence_num, args.class_images, args.sample_steps = 2, 4, 4, 4, 2
    names = args.runs.split(",")
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown {unknown}; expected some of {list(RUNS)}")
    results = {"environment": environment(None, "not used"), "settings": vars(args) | {"json": str(args.json)},
               "vae_check": vae_check(8 if args.quick else 300)}
    prompts = ordinary_prompts(args.adherence_num)
    base_pipe = TextToImagePipeline.from_pretrained(text2image_dir())
    results["base"] = {concept: measure(base_pipe, concept, word, args.num, args.sample_steps, prompts)
                       for concept, word in (("ring", "sks"),)}
    base = results["base"]["ring"]
    print(f"base model: 'a sks shape' as a ring {base['fidelity']:.0%}, adherence {base['adherence']:.1%}")
    class_latents, results["runs"] = None, {}
    for name in names:
        result, latents = run_one(name, args, class_latents, prompts, base)
        class_latents = latents if latents is not None else class_latents
        results["runs"][name] = result
        size = f"{result['file_bytes'] / 1e3:.0f} KB" if result["file_bytes"] else "whole UNet"
        print(f"{name:16s} fidelity {result['fidelity']:5.0%}  text control {result['text_control']:5.0%} "
              f"(with the concept {result['text_control_with_concept']:4.0%})  adherence {result['adherence']:5.1%} "
              f"(drift {result['prior_drift_points']:+5.1f} points)  'a shape' as the concept "
              f"{result['class_prompt_as_concept']:4.0%}  train {result['train_seconds']:4.0f} s + class images "
              f"{result['class_image_seconds']:3.0f} s  {result['trainable']:,} trainable  {size}", flush=True)
        write_results(args.json, results)  # after every run: a long benchmark stopped early keeps what it measured
    return results


if __name__ == "__main__":
    main()
