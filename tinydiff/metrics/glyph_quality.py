"""How good are generated glyphs? Measured with a classifier trained on real glyphs:

    recognised   share of samples the classifier assigns to one digit with probability >= 0.9
    junk         share it files under "not a digit", for a classifier trained with that
                 11th class (noise, heavily noised or overlapping digits, blobs): without it
                 a classifier happily calls noise a confident "8"
    histogram    share of samples per predicted digit (are all ten modes covered, evenly?)
    agreement    share whose predicted digit is the one asked for (class-conditional models)
    frechet      Frechet distance between classifier features of samples and of real glyphs

The classifier looks at glyphs of one size, that of the reference images. Larger samples whose
side is a whole multiple of it are reduced by averaging blocks of pixels first, which is how
GlyphDataset renders every size (a box filter), so a 32x32 model is judged by a 16x16 classifier
exactly as its data would be.
"""

import numpy as np

from tinydiff.metrics.checks import check_images, check_labels
from tinydiff.metrics.frechet import feature_statistics, frechet_distance
from tinydiff.nn.checks import check_positive_int

CONFIDENT = 0.9
NUM_DIGITS = 10  # a classifier with an 11th output uses it for "not a digit"


def softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class GlyphJudge:
    """Scores batches of glyph images (N, 1, H, W) in [-1, 1] with a trained ConvClassifier.

    Parameters
    ----------
    classifier : ConvClassifier
    reference : ndarray (M, 1, H, W)
        Real glyphs whose feature statistics the Frechet distance compares against, at the
        size the classifier was trained on.
    batch_size : int
    """

    def __init__(self, classifier, reference, batch_size=256):
        self.classifier = classifier.eval()
        self.batch_size = check_positive_int(batch_size, "batch_size")
        reference = check_images(reference, "reference", channels=1, min_count=2, square=True, bounded=True)
        self.size = reference.shape[2]
        features, _ = self.features_and_logits(reference)
        self.reference_stats = feature_statistics(features)

    def at_classifier_size(self, images):
        """images (N, 1, H, H) reduced to the classifier's size by block averages."""
        images = check_images(images, "samples", channels=1, square=True)
        side = images.shape[2]
        if side == self.size:
            return images
        if side % self.size:
            raise ValueError(f"samples: side {side} is not a whole multiple of the classifier's {self.size}")
        f = side // self.size
        return images.reshape(len(images), 1, self.size, f, self.size, f).mean(axis=(3, 5))

    def features_and_logits(self, images):
        images = self.at_classifier_size(images)
        feats, logits = [], []
        for i in range(0, len(images), self.batch_size):
            f = self.classifier.features(images[i:i + self.batch_size])
            feats.append(f)
            logits.append(self.classifier.head(f))
        return np.concatenate(feats), np.concatenate(logits)

    def recognised_as(self, images, asked):
        """Whether each image is recognised as the digit asked for, with probability >= 0.9,
        (N,) bool, and the classifier's features of the images (N, F); asked (N,) ints."""
        features, logits = self.features_and_logits(images)
        probs = softmax(logits)  # (N, classes)
        return (probs.argmax(axis=1) == asked) & (probs.max(axis=1) >= CONFIDENT), features

    def score(self, samples, labels=None):
        """A dict of the measures above for `samples` (N, 1, H, H) in [-1, 1], N >= 2 (the
        Frechet distance needs a covariance), and their requested `labels` (N,) ints."""
        samples = check_images(samples, "samples", channels=1, min_count=2, square=True)
        if labels is not None:
            labels = check_labels(labels, "labels", len(samples))
        features, logits = self.features_and_logits(samples)
        probs = softmax(logits.astype(np.float64))
        predicted = probs.argmax(axis=1)
        is_digit = predicted < NUM_DIGITS
        result = {
            "n": len(samples),
            "recognised": float(((probs.max(axis=1) >= CONFIDENT) & is_digit).mean()),
            "junk": float((~is_digit).mean()),
            "histogram": np.bincount(predicted[is_digit], minlength=NUM_DIGITS) / len(samples),
            "frechet": frechet_distance(*feature_statistics(features), *self.reference_stats),
        }
        if labels is not None:
            result["agreement"] = float((predicted == labels).mean())
        return result
