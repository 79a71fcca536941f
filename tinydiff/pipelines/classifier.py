"""Train the glyph classifier that tinydiff.metrics uses to judge samples.

Plain supervised training (cross-entropy, AdamW, cosine LR) on endless glyphs; batches are
keyed by step like the diffusion trainer's. Held-out accuracy is measured on glyphs of
another seed.
"""

import numpy as np
from tqdm.auto import tqdm

from tinydiff.data import GlyphDataset
from tinydiff.models.classifier import ConvClassifier
from tinydiff.nn import cross_entropy
from tinydiff.optim import AdamW, cosine_with_warmup


def train_glyph_classifier(steps=1500, batch_size=128, lr=3e-3, seed=0, size=32, widths=(16, 32, 64),
                           progress=True):
    """Returns (classifier, loss log). Training glyphs use `seed`; measure on another seed."""
    model = ConvClassifier(in_channels=1, num_classes=10, widths=widths, rng=np.random.default_rng(seed))
    data = GlyphDataset(seed=seed, size=size)
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    log = []
    bar = tqdm(range(steps), desc="classifier", unit="step", disable=not progress, dynamic_ncols=True)
    for step in bar:
        images, labels = data.get(np.arange(step * batch_size, (step + 1) * batch_size))
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
