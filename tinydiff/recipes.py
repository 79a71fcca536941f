"""Named training recipes: `tinydiff train --recipe NAME` stands for every flag of a known
training run, typed out in full.

    tinydiff train --recipe glyphs --out runs/glyphs              # the shipped glyph model's run
    tinydiff train --recipe glyphs --out runs/glyphs --steps 500  # the same, but 500 steps

A recipe is a list of flags, nothing more: the command line is read as if the recipe's flags
had been typed right after `train`, before the user's own, so that a flag the user gives
(anywhere on the line) comes later and wins, as a repeated flag does in argparse. The expanded
command is printed, so the student sees the settings and can copy and change them.

The glyph recipe is read from tinydiff/pretrained/train_glyphs.py, the script that trained the
shipped model, so the two cannot drift apart (tests/test_recipes.py builds both and compares).
"""


def glyph_flags():
    """The flags of `tinydiff train` that reproduce tinydiff/pretrained/glyphs' training run:
    16x16 glyphs, UNet (32, 64, 128) with attention at the lowest level, v-prediction under the
    cosine schedule, min-SNR-5, condition dropout 0.1 (a null class for guidance), 3000 steps
    of 64 (about 14 minutes on a quiet 2-core machine, README)."""
    from tinydiff.pretrained import train_glyphs as shipped

    unet, scheduler, training, run = (shipped.GLYPH_UNET, shipped.GLYPH_SCHEDULER, shipped.GLYPH_TRAINING,
                                      shipped.GLYPH_RUN)
    attention = ",".join("1" if kind.startswith("Attn") else "0" for kind in unet["down_block_types"])
    return {
        "--dataset": "glyphs",
        "--class-conditional": True,
        "--image-size": unet["sample_size"],
        "--channels": ",".join(str(c) for c in unet["block_out_channels"]),
        "--attention": attention,
        "--layers-per-block": unet["layers_per_block"],
        "--prediction-type": scheduler["prediction_type"],
        "--beta-schedule": scheduler["beta_schedule"],
        "--min-snr-gamma": training["min_snr_gamma"],
        "--cond-drop-prob": training["cond_drop_prob"],
        "--lr": training["lr"],
        "--warmup-steps": training["warmup_steps"],
        "--ema-decay": training["ema_decay"],
        "--steps": run["steps"],
        "--batch-size": run["batch_size"],
        "--seed": run["seed"],
        "--checkpoint-every": run["checkpoint_every"],
        "--sample-every": run["sample_every"],
    }


RECIPES = {"glyphs": glyph_flags}


def recipe_argv(name):
    """A recipe's flags as command-line words: ["--dataset", "glyphs", "--class-conditional", ...]."""
    words = []
    for flag, value in RECIPES[name]().items():
        if value is True:
            words.append(flag)  # a switch (store_true)
        elif value is not False:
            words += [flag, str(value)]
    return words


def expand_recipe(argv):
    """argv with `train ... --recipe NAME ...` read as `train <the recipe's flags> ...`.

    Anything else (another command, no --recipe, an unknown NAME, which argparse then refuses
    with the list of choices) comes back unchanged.
    """
    argv = list(argv)
    if not argv or argv[0] != "train":
        return argv
    name = None
    for i, word in enumerate(argv):
        if word == "--recipe" and i + 1 < len(argv):
            name = argv[i + 1]
        elif word.startswith("--recipe="):
            name = word.split("=", 1)[1]
    if name not in RECIPES:
        return argv
    flags = recipe_argv(name)
    print(f"recipe {name}: tinydiff train {' '.join(flags)} (flags you give override these)")
    return argv[:1] + flags + argv[1:]
