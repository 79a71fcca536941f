"""Models: wiring of tinydiff.nn layers, with diffusers' structure and parameter names."""

from tinydiff.models.clip import CLIPModel
from tinydiff.models.clip_vision import CLIPConvVisionModel
from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.unet import UNet2DModel
from tinydiff.models.vae import AutoencoderKL, DiagonalGaussian

__all__ = ["AutoencoderKL", "DiagonalGaussian", "MLPDenoiser", "UNet2DModel",
           "CLIPConvVisionModel", "CLIPModel"]
