"""Every model checks its constructor arguments before allocating a weight: a wrong type, range
or combination raises a TypeError/ValueError naming the model, the argument, what was expected
and what came; sizes beyond what tinydiff can hold are refused with their estimate instead of
a MemoryError."""

import time

import numpy as np
import pytest

from tinydiff.models import AutoencoderKL, MLPDenoiser, UNet2DModel
from tinydiff.models.checks import MAX_PARAMETERS
from tinydiff.models.classifier import ConvClassifier

UNET = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
            attention_head_dim=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"))
VAE = dict(in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4, sample_size=8,
           latent_channels=2, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
CLASSIFIER = dict(in_channels=1, num_classes=3, widths=(8, 8), groups=4)
MLP = dict(data_dim=2, hidden=8, num_blocks=1, time_embed_dim=4)

# (model, base arguments, changes, error, fragments of the message)
CASES = [
    (UNet2DModel, UNET, dict(norm_num_groups=0), ValueError, ["UNet2DModel: norm_num_groups", ">= 1", "got 0"]),
    (UNet2DModel, UNET, dict(sample_size=0), ValueError, ["sample_size", "got 0"]),
    (UNet2DModel, UNET, dict(sample_size=9), ValueError, ["sample_size=9", "divisible by 2"]),
    (UNet2DModel, UNET, dict(block_out_channels=()), ValueError, ["block_out_channels", "non-empty"]),
    (UNet2DModel, UNET, dict(block_out_channels=(8, -8)), ValueError, ["block_out_channels", "[8, -8]"]),
    (UNet2DModel, UNET, dict(block_out_channels=(8, "8")), TypeError, ["block_out_channels", "'8'"]),
    (UNet2DModel, UNET, dict(block_out_channels=8), TypeError, ["block_out_channels", "expected a list", "8"]),
    (UNet2DModel, UNET, dict(block_out_channels=(8, 10)), ValueError, ["divisible by norm_num_groups=4", "[8, 10]"]),
    (UNet2DModel, UNET, dict(block_out_channels=(8, 12), attention_head_dim=8), ValueError,
     ["levels with attention", "attention_head_dim=8"]),
    (UNet2DModel, UNET, dict(in_channels="1"), TypeError, ["in_channels", "'1'"]),
    (UNet2DModel, UNET, dict(layers_per_block=True), TypeError, ["layers_per_block", "True"]),
    (UNet2DModel, UNET, dict(layers_per_block=1.0), TypeError, ["layers_per_block", "1.0"]),
    (UNet2DModel, UNET, dict(num_class_embeds=0), ValueError, ["num_class_embeds", "got 0"]),
    (UNet2DModel, UNET, dict(norm_eps=0.0), ValueError, ["norm_eps", "> 0"]),
    (UNet2DModel, UNET, dict(norm_eps="1e-5"), TypeError, ["norm_eps", "'1e-5'"]),
    (UNet2DModel, UNET, dict(dropout=1.0), ValueError, ["dropout", "[0, 1)"]),
    (UNet2DModel, UNET, dict(flip_sin_to_cos=1), TypeError, ["flip_sin_to_cos", "true or false"]),
    (UNet2DModel, UNET, dict(down_block_types=("DownBlock2D",) * 3), ValueError, ["same length", "3, 2, 2"]),
    (UNet2DModel, UNET, dict(up_block_types="UpBlock2D"), TypeError, ["up_block_types", "expected a list"]),
    (UNet2DModel, UNET, dict(down_block_types=("DownBlock2D", 7)), ValueError, ["down_block_types", "[7]"]),
    (UNet2DModel, UNET, dict(block_out_channels=(10**9, 10**9), norm_num_groups=1), ValueError,
     ["parameters", f"at most {MAX_PARAMETERS:.0e}", "block_out_channels"]),
    (UNet2DModel, UNET, dict(num_class_embeds=10**12), ValueError, ["parameters", "num_class_embeds"]),
    (UNet2DModel, UNET, dict(sample_size=2**16), ValueError, ["largest intermediate array", "sample_size"]),
    (UNet2DModel, UNET, dict(sample_size=256), ValueError, ["largest intermediate array", "attention"]),
    (AutoencoderKL, VAE, dict(scaling_factor=0), ValueError, ["AutoencoderKL: scaling_factor", "> 0", "got 0"]),
    (AutoencoderKL, VAE, dict(scaling_factor=float("nan")), ValueError, ["scaling_factor", "nan"]),
    (AutoencoderKL, VAE, dict(scaling_factor=-0.18), ValueError, ["scaling_factor", "-0.18"]),
    (AutoencoderKL, VAE, dict(scaling_factor=float("inf")), ValueError, ["scaling_factor", "inf"]),
    (AutoencoderKL, VAE, dict(scaling_factor="0.18"), TypeError, ["scaling_factor", "'0.18'"]),
    (AutoencoderKL, VAE, dict(latents_mean=[0.0, 0.0], latents_std=[1.0, 0.0]), ValueError, ["latents_std", "positive", "[1.0, 0.0]"]),
    (AutoencoderKL, VAE, dict(latents_mean=[0.0, 0.0], latents_std=[1.0, -1.0]), ValueError, ["latents_std"]),
    (AutoencoderKL, VAE, dict(latents_mean=[0.0], latents_std=[1.0]), ValueError, ["latents_mean", "2 entries"]),
    (AutoencoderKL, VAE, dict(latents_mean=[0.0, 0.0], latents_std=[1.0, 1.0, 1.0]), ValueError,
     ["latents_std", "2 entries"]),
    (AutoencoderKL, VAE, dict(latents_mean=[0.0, float("nan")], latents_std=[1.0, 1.0]), ValueError,
     ["latents_mean[1]", "nan"]),
    (AutoencoderKL, VAE, dict(latents_mean=[0.0, 0.0]), ValueError, ["latents_mean and latents_std together"]),
    (AutoencoderKL, VAE, dict(norm_num_groups=0), ValueError, ["norm_num_groups", "got 0"]),
    (AutoencoderKL, VAE, dict(block_out_channels=(8, 6)), ValueError, ["divisible by norm_num_groups=4"]),
    (AutoencoderKL, VAE, dict(block_out_channels=(10**9,) * 2, norm_num_groups=1), ValueError, ["parameters"]),
    (AutoencoderKL, VAE, dict(use_quant_conv=0), TypeError, ["use_quant_conv", "true or false"]),
    (AutoencoderKL, VAE, dict(sample_size=4096), ValueError, ["largest intermediate array"]),
    (ConvClassifier, CLASSIFIER, dict(widths=()), ValueError, ["ConvClassifier: widths", "non-empty"]),
    (ConvClassifier, CLASSIFIER, dict(groups=0), ValueError, ["groups", "got 0"]),
    (ConvClassifier, CLASSIFIER, dict(widths=(8, 6)), ValueError, ["divisible by groups=4"]),
    (ConvClassifier, CLASSIFIER, dict(num_classes="10"), TypeError, ["num_classes", "'10'"]),
    (ConvClassifier, CLASSIFIER, dict(widths=(2**20, 2**20), groups=1), ValueError, ["parameters"]),
    (MLPDenoiser, MLP, dict(hidden=0), ValueError, ["MLPDenoiser: hidden", "got 0"]),
    (MLPDenoiser, MLP, dict(num_blocks=-1), ValueError, ["num_blocks", ">= 0"]),
    (MLPDenoiser, MLP, dict(data_dim=2.0), TypeError, ["data_dim", "2.0"]),
    (MLPDenoiser, MLP, dict(hidden=10**6), ValueError, ["parameters", "hidden"]),
]


@pytest.mark.parametrize("cls,base,changes,error,expected", CASES,
                         ids=[f"{c[0].__name__}-{'-'.join(c[2])}-{i}" for i, c in enumerate(CASES)])
def test_bad_argument_is_named_before_allocating(cls, base, changes, error, expected):
    start = time.perf_counter()
    with pytest.raises(error) as err:
        cls(**{**base, **changes})
    assert time.perf_counter() - start < 1.0  # refused, not allocated and then refused
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


@pytest.mark.parametrize("cls,base", [(UNet2DModel, UNET), (AutoencoderKL, VAE), (ConvClassifier, CLASSIFIER),
                                      (MLPDenoiser, MLP)])
def test_lists_from_json_are_accepted_and_stored_as_tuples(cls, base):
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()}
    model = cls(**as_json)
    for key, value in base.items():
        assert model.config[key] == value, key


def test_the_default_models_are_within_the_bounds():
    for cls in (UNet2DModel, AutoencoderKL, ConvClassifier, MLPDenoiser):
        cls()
    # a model the size of Stable Diffusion's UNet levels passes the size check (it is only slow)
    from tinydiff.models.unet import parameter_lower_bound, validate_config
    config = validate_config(dict(UNET, block_out_channels=(320, 640, 1280, 1280), norm_num_groups=32,
                                  attention_head_dim=8, sample_size=64, layers_per_block=2,
                                  down_block_types=("DownBlock2D",) * 4, up_block_types=("UpBlock2D",) * 4,
                                  norm_eps=1e-5, dropout=0.0, mid_block_scale_factor=1, flip_sin_to_cos=True,
                                  freq_shift=0, num_class_embeds=None, add_attention=True))
    assert 1e8 < parameter_lower_bound(config) < MAX_PARAMETERS
