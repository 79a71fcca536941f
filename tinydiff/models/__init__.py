"""Models: wiring of tinydiff.nn layers, with diffusers' structure and parameter names."""

from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.unet import UNet2DModel

__all__ = ["MLPDenoiser", "UNet2DModel"]
