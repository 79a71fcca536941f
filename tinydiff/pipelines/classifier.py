"""Train the glyph classifier that tinydiff.metrics uses to judge samples.

Supervised training (cross-entropy, AdamW, cosine LR) on endless glyphs plus an 11th class,
"not a digit": a classifier that has only ever seen digits calls pure noise a confident "8",
which would make it useless for judging a half-trained model's samples. Batches are keyed by
step like the diffusion trainer's; held-out accuracy is measured on glyphs of another seed.
"""

import numpy as np
from tqdm.auto import tqdm

from scipy.ndimage import uniform_filter

from tinydiff.data import GlyphDataset
from tinydiff.diffusion import squaredcos_cap_v2_betas
from tinydiff.models.classifier import ConvClassifier
from tinydiff.nn import cross_entropy
from tinydiff.optim import AdamW, cosine_with_warmup


JUNK = 10  # the label of "not a digit"


def junk_images(rng, n, glyphs, size=32):
    """(n, 1, size, size) images in [-1, 1] that are not one clean digit, four kinds mixed:
    smoothed noise, glyphs drowned in noise (t in [600, 1000) of the cosine schedule),
    two overlapping digits, and random blobs."""
    kinds = rng.integers(0, 4, n)
    out = np.empty((n, 1, size, size), np.float32)
    alpha_bar = np.cumprod(1.0 - squaredcos_cap_v2_betas(1000))
    for i, kind in enumerate(kinds):
        if kind == 0:
            noise = uniform_filter(rng.standard_normal((size, size)), size=int(rng.integers(1, 6)))
            img = np.tanh(noise / (noise.std() + 1e-8) * rng.uniform(0.5, 2.0) + rng.uniform(-1, 1))
        elif kind == 1:
            clean = glyphs.get([int(rng.integers(10**9))])[0][0, 0]
            ab = alpha_bar[rng.integers(600, 1000)]
            img = np.clip(np.sqrt(ab) * clean + np.sqrt(1 - ab) * rng.standard_normal((size, size)), -1, 1)
        elif kind == 2:
            a, b = glyphs.get(rng.integers(10**9, size=2))[0][:, 0]
            img = np.maximum(a, np.roll(b, rng.integers(-6, 7, size=2), axis=(0, 1)))
        else:
            y, x = np.mgrid[0:size, 0:size]
            field = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
                        for cx, cy, s in rng.uniform([4, 4, 1.5], [size - 4, size - 4, 5], (int(rng.integers(1, 6)), 3)))
            img = np.where(field > rng.uniform(0.3, 0.7), 1.0, -1.0)
        out[i, 0] = img
    return out


def train_glyph_classifier(steps=1500, batch_size=128, lr=3e-3, seed=0, size=32, widths=(16, 32, 64),
                           progress=True):
    """Returns (classifier, loss log). Training glyphs use `seed`; measure on another seed.
    One image in eleven is junk (label JUNK), the rest are glyphs."""
    model = ConvClassifier(in_channels=1, num_classes=11, widths=widths, rng=np.random.default_rng(seed))
    data = GlyphDataset(seed=seed, size=size)
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    log = []
    bar = tqdm(range(steps), desc="classifier", unit="step", disable=not progress, dynamic_ncols=True)
    for step in bar:
        images, labels = data.get(np.arange(step * batch_size, (step + 1) * batch_size))
        rng = np.random.default_rng((seed, 5, step))
        junk = rng.random(batch_size) < 1 / 11
        images[junk] = junk_images(rng, int(junk.sum()), data, size)
        labels[junk] = JUNK
        model.train()
        loss, dlogits = cross_entropy(model(images), labels)
        model.zero_grad()
        model.backward(dlogits.astype(np.float32))
        optimizer.lr = cosine_with_warmup(step, lr, min(50, steps - 1), steps)
        optimizer.step()
        log.append(loss)
        bar.set_postfix(loss=f"{loss:.4f}")
    return model.eval(), log


def accuracy(model, images, labels, batch_size=256):
    model.eval()
    predicted = np.concatenate([model(images[i:i + batch_size]).argmax(axis=1)
                                for i in range(0, len(images), batch_size)])
    return float((predicted == labels).mean())
