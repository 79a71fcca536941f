import numpy as np

from tinydiff.models.classifier import ConvClassifier
from tinydiff.nn.gradcheck import gradcheck


def test_classifier_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    model = ConvClassifier(in_channels=1, num_classes=3, widths=(2, 4), groups=2, rng=rng)
    report = gradcheck(model, (rng.standard_normal((2, 1, 8, 8)),), rng, max_elements=20)
    assert len(report) == 1 + len(model.parameters())


def test_classifier_shapes():
    model = ConvClassifier()
    x = np.zeros((3, 1, 32, 32), np.float32)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 64)
