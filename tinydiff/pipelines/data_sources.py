"""Training data as a function of the step: batch(step) -> (x0, labels or None).

Every batch is keyed by (seed, step), never by a running random state, so a resumed run sees
exactly the batches an uninterrupted one would, without saving any data-loader state.

Each source also says how many classes its labels can take (`num_classes`, None for the
unlabelled 2-D toys): a class-conditional model gets one embedding row per class of the data
set, not per label that happens to be in the first batch.
"""

import numpy as np

from tinydiff import data

TOYS = {"swiss_roll": data.swiss_roll, "moons": data.moons, "gaussians8": data.gaussians8,
        "checkerboard": data.checkerboard}
IMAGE_SETS = ("glyphs", "shapes")
DATASETS = tuple(TOYS) + IMAGE_SETS + ("mnist", "folder")


class EndlessImages:
    """Batches of an endless, random-access data set (GlyphDataset, ShapeDataset): step s gets
    images s*B .. (s+1)*B - 1, all new."""

    def __init__(self, dataset, batch_size, labelled, num_classes):
        self.dataset, self.batch_size, self.labelled = dataset, batch_size, labelled
        self.num_classes = num_classes

    def __call__(self, step):
        images, labels = self.dataset.get(np.arange(step * self.batch_size, (step + 1) * self.batch_size))
        return images, (labels if self.labelled else None)


class ToyPoints:
    """Fresh 2-D points every step, drawn from a Generator seeded with (seed, step)."""

    num_classes = None

    def __init__(self, make, batch_size, seed):
        self.make, self.batch_size, self.seed = make, batch_size, seed

    def __call__(self, step):
        return self.make(self.batch_size, np.random.default_rng((self.seed, 7, step))), None


class ArrayEpochs:
    """A fixed array of images, reshuffled every epoch with a Generator seeded by (seed, epoch).
    num_classes defaults to the highest label of the whole array + 1."""

    def __init__(self, images, labels, batch_size, seed, labelled, num_classes=None):
        if len(images) < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the data set ({len(images)} images)")
        self.images, self.labels, self.batch_size, self.seed, self.labelled = images, labels, batch_size, seed, labelled
        self.per_epoch = len(images) // batch_size
        if num_classes is None and labels is not None and len(labels):
            num_classes = int(np.max(labels)) + 1
        self.num_classes = num_classes

    def __call__(self, step):
        epoch, k = divmod(step, self.per_epoch)
        order = np.random.default_rng((self.seed, 11, epoch)).permutation(len(self.images))
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        return self.images[idx], (self.labels[idx] if self.labelled and self.labels is not None else None)


def make_source(name, batch_size, seed, image_size=32, labelled=False, path=None):
    """The batch function for a data set name (see DATASETS)."""
    if name in TOYS:
        return ToyPoints(TOYS[name], batch_size, seed)
    if name == "glyphs":
        return EndlessImages(data.GlyphDataset(seed=seed, size=image_size), batch_size, labelled, 10)  # digits
    if name == "shapes":
        return EndlessImages(data.ShapeDataset(seed=seed, size=image_size), batch_size, labelled, len(data.SHAPES))
    if name in ("mnist", "folder"):
        if path is None:
            raise ValueError(f"dataset {name!r} reads your files: give their path (--data-path)")
        if name == "mnist":
            images, labels = data.load_mnist(path, split="train", pad_to=image_size)
            classes = None  # the highest label + 1: 10 for MNIST and Fashion-MNIST
        else:
            folder = data.load_image_folder(path, size=image_size)
            images, labels = folder.images, folder.labels
            classes = len(folder.classes) or None  # one class per subfolder
        return ArrayEpochs(images, labels, batch_size, seed, labelled, classes)
    raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {name!r}")
