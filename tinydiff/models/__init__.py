"""Models: wiring of tinydiff.nn layers, with diffusers' structure and parameter names."""

from tinydiff.models.clip_text import CLIPTextModel, CLIPTextModelWithProjection
from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.unet import UNet2DModel
from tinydiff.models.vae import AutoencoderKL, DiagonalGaussian

__all__ = ["AutoencoderKL", "DiagonalGaussian", "MLPDenoiser", "UNet2DModel",
           "CLIPTextModel", "CLIPTextModelWithProjection"]
