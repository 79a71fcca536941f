"""CLIP's image tower as a small convolutional network (Radford et al. 2021, sec. 2.4, train
ResNet image encoders as well as ViTs; this one is sized for 32x32 images on a CPU):

    images (B, C, H, W) in [-1, 1]
      -> conv_in (3x3)                                          (B, c_0, H, W)
      -> down_blocks: DownEncoderBlock2D per level (ResnetBlock2D x layers_per_block, then a
         stride-2 convolution except after the last level)      (B, c_L, H / 2^(L-1), W / 2^(L-1))
      -> norm_out: GroupNorm then SiLU
      -> pool: the mean over positions                          (B, c_L)
      -> visual_projection: Linear without bias, as in CLIP     (B, projection_dim) = image_embeds

The blocks are the VAE encoder's (tinydiff.models.vae_blocks), so the names read like diffusers'
(down_blocks.0.resnets.0.conv1.weight); visual_projection is transformers' CLIPModel's name.
It is not transformers' CLIPVisionModel (a ViT): these weights do not load there.
"""

from tinydiff.models.checks import check_divisible, check_model_size, config_int, config_ints
from tinydiff.models.resnet import GroupNormSiLU
from tinydiff.models.vae_blocks import DownEncoderBlock2D
from tinydiff.nn import Conv2d, GlobalAvgPool2d, Linear, Module, ModuleList
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator


def validate_config(c):
    """Check a CLIPConvVisionModel config dict (see tinydiff.models.checks) before any weight
    is allocated; block_out_channels becomes a tuple."""
    owner = "CLIPConvVisionModel"
    for key in ("in_channels", "layers_per_block", "norm_num_groups", "projection_dim"):
        c[key] = config_int(c[key], key, owner)
    c["block_out_channels"] = config_ints(c["block_out_channels"], "block_out_channels", owner)
    check_divisible(c["block_out_channels"], "every block_out_channels entry", c["norm_num_groups"],
                    "norm_num_groups", owner)
    widths = (c["in_channels"],) + c["block_out_channels"]
    convs = sum(9 * a * b + 9 * b * b * c["layers_per_block"] for a, b in zip(widths[:-1], widths[1:]))
    check_model_size(owner, convs + widths[-1] * c["projection_dim"],
                     "block_out_channels, layers_per_block and projection_dim")
    return c


class CLIPConvVisionModel(Module):
    """forward(images (B, in_channels, H, W)) -> image_embeds (B, projection_dim);
    backward(grad_image_embeds (B, projection_dim)) -> d_images (B, in_channels, H, W).

    H and W must be multiples of 2^(L-1), L = len(block_out_channels) (each level but the last
    halves them).

    Parameters
    ----------
    in_channels : int
    block_out_channels : tuple of int
        Channels of each level, c_0 ... c_L.
    layers_per_block : int
        ResnetBlock2D per level.
    norm_num_groups : int
        GroupNorm groups; divides every block_out_channels entry.
    projection_dim : int
        P, the width of the joint image-text embedding space (the text tower's projection_dim).
    rng : numpy.random.Generator, optional
    """

    def __init__(self, in_channels=3, block_out_channels=(32, 64, 128), layers_per_block=1, norm_num_groups=8,
                 projection_dim=64, rng=None):
        super().__init__()
        self.config = validate_config(dict(in_channels=in_channels, block_out_channels=block_out_channels,
                                           layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
                                           projection_dim=projection_dim))
        channels, groups = self.config["block_out_channels"], self.config["norm_num_groups"]
        rng = generator(rng)
        self.conv_in = Conv2d(self.config["in_channels"], channels[0], 3, padding=1, rng=rng)
        widths = (channels[0],) + channels  # level i maps widths[i] -> widths[i + 1]
        self.down_blocks = ModuleList([
            DownEncoderBlock2D(widths[i], widths[i + 1], self.config["layers_per_block"], i < len(channels) - 1,
                               groups, rng=rng)
            for i in range(len(channels))
        ])
        self.norm_out = GroupNormSiLU(groups, channels[-1])
        self.pool = GlobalAvgPool2d()
        self.visual_projection = Linear(channels[-1], self.config["projection_dim"], bias=False, rng=rng)

    def check_images(self, images):
        check_float_array(images, "images", ndim=4, dtype=self.conv_in.weight.dtype)
        factor = 2 ** (len(self.config["block_out_channels"]) - 1)
        C = self.config["in_channels"]
        if images.shape[1] != C or images.shape[2] % factor or images.shape[3] % factor or images.shape[0] == 0:
            raise ValueError(f"CLIPConvVisionModel: images must have shape (B >= 1, {C}, H, W) with H and W "
                             f"multiples of {factor}, got {images.shape}")

    def forward(self, images):
        # 1. stem
        self.check_images(images)
        h = self.conv_in(images)  # (B, C, H, W) -> (B, c_0, H, W)
        # 2. levels, halving H and W after each but the last
        for block in self.down_blocks:
            h = block(h)  # -> (B, c_L, H / 2^(L-1), W / 2^(L-1)) after the last
        # 3. one vector per image, projected into the joint embedding space
        pooled = self.pool(self.norm_out(h))  # (B, c_L, h, w) -> (B, c_L)
        return self.visual_projection(pooled)  # (B, c_L) -> (B, projection_dim)

    def backward(self, grad_out):
        g = self.norm_out.backward(self.pool.backward(self.visual_projection.backward(grad_out)))
        for block in reversed(list(self.down_blocks)):
            g = block.backward(g)
        return self.conv_in.backward(g)
