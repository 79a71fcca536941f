"""Train the DreamBooth adapters shipped in dreambooth_adapters/ (lesson 09 shows them): LoRA
adapters of the shipped text-to-image pipeline (shapes_text2image/) that teach it a ring (and a
star) from the four instance images of tinydiff.data.concepts, bound to a reserved rare word.

    python -m tinydiff.pretrained.train_dreambooth                      # all of them, shipped settings
    python -m tinydiff.pretrained.train_dreambooth --only ring_r4_prior --out /some/folder

Each adapter is one `DreamBoothTrainer` run (tinydiff.pipelines.dreambooth), what `tinydiff
finetune --lora-rank R [--with-prior-preservation]` runs, with the settings below.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tinydiff.data.concepts import instance_images
from tinydiff.pipelines import TrainConfig
from tinydiff.pipelines.dreambooth import LORA_FILE, DreamBoothConfig, DreamBoothTrainer
from tinydiff.pipelines.text_to_image import TextToImagePipeline
from tinydiff.pretrained.folders import HERE, text2image_dir

ADAPTERS_DIR = HERE / "dreambooth_adapters"
SEED = 0
STEPS, LORA_LR, FULL_LR = 300, 1e-2, 2e-4
NUM_CLASS_IMAGES, CLASS_STEPS, CLASS_BATCH = 100, 20, 4
# name -> (concept, rare word, LoRA rank, prior preservation); rank 4 is 115 KB, rank 1 29 KB
ADAPTERS = {
    "ring_r4_prior": ("ring", "sks", 4, True),
    "ring_r4": ("ring", "sks", 4, False),
    "ring_r1_prior": ("ring", "sks", 1, True),
    "star_r4_prior": ("star", "zwx", 4, True),
}


def adapter_path(name, folder=ADAPTERS_DIR):
    """The shipped adapter file of `name` (a key of ADAPTERS)."""
    if name not in ADAPTERS:
        raise ValueError(f"name: expected one of {sorted(ADAPTERS)}, got {name!r}")
    return Path(folder) / name / LORA_FILE


def finetune(concept, word, rank, prior, out, steps=STEPS, seed=SEED, class_latents=None, progress=False,
             num_class_images=NUM_CLASS_IMAGES, lr=None):
    """One DreamBooth run on the shipped pipeline; rank None fine-tunes the whole UNet (lr None:
    LORA_LR or FULL_LR).

    Returns (trainer, seconds of training, seconds of class image generation); the trained
    pipeline is trainer.pipe, its adapter (LoRA) in out/final."""
    pipe = TextToImagePipeline.from_pretrained(text2image_dir())
    images, _ = instance_images(concept, seed)
    db = DreamBoothConfig(instance_prompt=f"a {word} shape", class_prompt="a shape", with_prior_preservation=prior,
                          num_class_images=num_class_images, class_batch_size=CLASS_BATCH, lora_rank=rank,
                          class_steps=CLASS_STEPS)
    config = TrainConfig(steps=steps, batch_size=len(images), lr=lr or (LORA_LR if rank else FULL_LR),
                         warmup_steps=min(10, steps - 1), ema_decay=0.0, min_snr_gamma=5.0, cond_drop_prob=0.1, seed=seed,
                         checkpoint_every=steps, sample_every=0, sample_steps=20)
    start = time.perf_counter()
    trainer = DreamBoothTrainer(pipe, images, db, config, out, progress=progress, class_latents=class_latents)
    class_seconds = time.perf_counter() - start
    start = time.perf_counter()
    trainer.run()
    trainer.model.eval()
    return trainer, time.perf_counter() - start, class_seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ADAPTERS_DIR, help="where the adapter folders go")
    parser.add_argument("--only", choices=sorted(ADAPTERS), action="append", help="train only these")
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args(argv)
    class_latents = None  # every run with prior preservation shares the class images of the same seed
    for name in args.only or ADAPTERS:
        concept, word, rank, prior = ADAPTERS[name]
        with tempfile.TemporaryDirectory() as work:
            trainer, seconds, class_seconds = finetune(concept, word, rank, prior, work, args.steps,
                                                       class_latents=class_latents, progress=True)
            class_latents = trainer.class_latents if prior else class_latents
            target = args.out / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(work) / "final" / LORA_FILE, target / LORA_FILE)
        size = (target / LORA_FILE).stat().st_size
        print(f"{name}: {args.steps} steps in {seconds:.0f} s (+{class_seconds:.0f} s of class images); "
              f"{size / 1e3:.0f} KB in {target}")


if __name__ == "__main__":
    main()
