"""Models: wiring of tinydiff.nn layers, with diffusers' structure and parameter names."""

from tinydiff.models.clip import CLIPModel
from tinydiff.models.clip_text import CLIPTextModel, CLIPTextModelWithProjection
from tinydiff.models.clip_vision import CLIPConvVisionModel
from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.transformer_2d import BasicTransformerBlock, Transformer2DModel
from tinydiff.models.unet import UNet2DModel
from tinydiff.models.unet_condition import UNet2DConditionModel
from tinydiff.models.vae import AutoencoderKL, DiagonalGaussian

__all__ = ["AutoencoderKL", "BasicTransformerBlock", "CLIPConvVisionModel", "CLIPModel", "CLIPTextModel",
           "CLIPTextModelWithProjection", "DiagonalGaussian", "MLPDenoiser", "Transformer2DModel",
           "UNet2DConditionModel", "UNet2DModel"]
