"""A small convolutional classifier, used to measure samples (tinydiff.metrics): its
confidence says whether a sample is recognisable, its penultimate features feed a Frechet
distance between samples and real data (the idea of FID, Heusel et al. 2017, with a network
trained here instead of Inception).

    x (B, C, 32, 32) -> [Conv3x3 -> GroupNorm -> SiLU] at 32, 16, 8 (stride-2 convs between)
      -> global average pool -> features (B, F) -> Linear -> logits (B, K)
"""

from tinydiff.models.checks import check_divisible, check_model_size, config_int, config_ints
from tinydiff.nn import Conv2d, GlobalAvgPool2d, GroupNorm, Linear, Module, Sequential, SiLU
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator


def conv_stage(c_in, c_out, stride, groups, rng):
    return [Conv2d(c_in, c_out, 3, stride=stride, padding=1, rng=rng), GroupNorm(groups, c_out), SiLU()]


def validate_config(c):
    """Check a ConvClassifier config dict (see tinydiff.models.checks); widths become a tuple."""
    owner = "ConvClassifier"
    for key in ("in_channels", "num_classes", "groups"):
        c[key] = config_int(c[key], key, owner)
    c["widths"] = config_ints(c["widths"], "widths", owner)
    check_divisible(c["widths"], "every widths entry", c["groups"], "groups", owner)
    widths = (c["in_channels"],) + c["widths"]
    parameters = sum(9 * (a + b) * b for a, b in zip(widths[:-1], widths[1:])) + widths[-1] * c["num_classes"]
    check_model_size(owner, parameters, "widths and num_classes")
    return c


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
        self.config = validate_config(dict(in_channels=in_channels, num_classes=num_classes, widths=widths,
                                           groups=groups))
        in_channels, num_classes, widths, groups = (self.config[k] for k in ("in_channels", "num_classes",
                                                                             "widths", "groups"))
        rng = generator(rng)
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
