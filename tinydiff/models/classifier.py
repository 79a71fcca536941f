"""A small convolutional classifier, used to measure samples (tinydiff.metrics): its
confidence says whether a sample is recognisable, its penultimate features feed a Frechet
distance between samples and real data (the idea of FID, Heusel et al. 2017, with a network
trained here instead of Inception).

    x (B, C, 32, 32) -> [Conv3x3 -> GroupNorm -> SiLU] at 32, 16, 8 (stride-2 convs between)
      -> global average pool -> features (B, F) -> Linear -> logits (B, K)
"""

from tinydiff.nn import Conv2d, GlobalAvgPool2d, GroupNorm, Linear, Module, Sequential, SiLU
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator


def conv_stage(c_in, c_out, stride, groups, rng):
    return [Conv2d(c_in, c_out, 3, stride=stride, padding=1, rng=rng), GroupNorm(groups, c_out), SiLU()]


class ConvClassifier(Module):
    """forward(x (B, C, H, W)) -> logits (B, num_classes); features(x) -> (B, widths[-1]).

    Parameters
    ----------
    in_channels, num_classes : int
    widths : tuple of int
        Channels per stage; every stage after the first halves the resolution.
    """

    def __init__(self, in_channels=1, num_classes=10, widths=(16, 32, 64), groups=8, rng=None):
        super().__init__()
        rng = generator(rng)
        self.config = dict(in_channels=in_channels, num_classes=num_classes, widths=tuple(widths), groups=groups)
        layers, c = [], in_channels
        for i, width in enumerate(widths):
            layers += conv_stage(c, width, 1 if i == 0 else 2, groups, rng)
            layers += conv_stage(width, width, 1, groups, rng)
            c = width
        layers.append(GlobalAvgPool2d())
        self.body = Sequential(layers)
        self.head = Linear(c, num_classes, rng=rng)

    def features(self, x):
        check_float_array(x, "x", ndim=4, dtype=self.head.weight.dtype)
        if x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"ConvClassifier: x must have {self.config['in_channels']} channels, got shape {x.shape}")
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))

    def backward(self, grad_out):
        return self.body.backward(self.head.backward(grad_out))
