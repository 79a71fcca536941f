"""The residual block of diffusion UNets (Ho et al. 2020, appendix B; diffusers' ResnetBlock2D):

    h   = conv1(silu(norm1(x)))
    h   = h + time_emb_proj(silu(temb))[:, :, None, None]      (only with temb_channels)
    h   = conv2(dropout(silu(norm2(h))))
    out = (shortcut(x) + h) / output_scale_factor

shortcut is a 1x1 convolution when the channel count changes, the identity otherwise.
silu(norm1(.)) and silu(norm2(.)) are each one GroupNormSiLU layer: the group norm and the SiLU
after it in one fused kernel (the same numbers as GroupNorm then SiLU, in less time). The
layers keep diffusers' names norm1 and norm2, so the parameters are norm1.weight, norm1.bias...
With temb_channels=None the block has no time embedding at all (no time_emb_proj), as in
the encoder and decoder of diffusers' AutoencoderKL.
"""

from tinydiff.nn import Conv2d, Dropout, GroupNorm, Linear, Module, SiLU


class GroupNormSiLU(GroupNorm):
    """silu(group_norm(x)), x (B, C, *spatial) -> same shape: GroupNorm(silu=True) by the name of
    what it computes (the fused kernel is tinydiff.kernels.norm_silu)."""

    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__(num_groups, num_channels, eps, silu=True)


class ResnetBlock2D(Module):
    """forward(x (B, C_in, H, W), temb (B, T_emb)) -> (B, C_out, H, W);
    backward(dout) -> (dx, dtemb).

    With temb_channels=None: forward(x) -> (B, C_out, H, W) and backward(dout) -> dx."""

    def __init__(self, in_channels, out_channels, temb_channels, groups=32, eps=1e-5, dropout=0.0,
                 output_scale_factor=1.0, rng=None):
        super().__init__()
        self.norm1 = GroupNormSiLU(groups, in_channels, eps)
        self.conv1 = Conv2d(in_channels, out_channels, 3, padding=1, rng=rng)
        self.time_emb_proj = Linear(temb_channels, out_channels, rng=rng) if temb_channels is not None else None
        self.norm2 = GroupNormSiLU(groups, out_channels, eps)
        self.dropout = Dropout(dropout, rng=rng)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, rng=rng)
        self.conv_shortcut = Conv2d(in_channels, out_channels, 1, rng=rng) if in_channels != out_channels else None
        self.act_temb = SiLU()
        self.output_scale_factor = float(output_scale_factor)

    def forward(self, x, temb=None):
        if (temb is None) != (self.time_emb_proj is None):
            raise ValueError(
                "ResnetBlock2D: pass temb exactly when the block was built with temb_channels "
                f"(temb_channels={'None' if self.time_emb_proj is None else self.time_emb_proj.weight.shape[1]}, "
                f"temb {'missing' if temb is None else 'given'})")
        # h is each time a new array no layer keeps, so the additions below go in place
        h = self.conv1(self.norm1(x))  # conv1(silu(norm1(x))): norm1 is a GroupNormSiLU
        if self.time_emb_proj is not None:
            h += self.time_emb_proj(self.act_temb(temb))[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        h = self.conv2(self.dropout(self.norm2(h)))  # conv2(dropout(silu(norm2(h))))
        out = h
        out += x if self.conv_shortcut is None else self.conv_shortcut(x)
        if self.output_scale_factor != 1.0:  # a full pass over the activations saved when it is 1
            out /= self.output_scale_factor
        return out

    def backward(self, grad_out):
        g = grad_out if self.output_scale_factor == 1.0 else grad_out / self.output_scale_factor
        dh = self.norm2.backward(self.dropout.backward(self.conv2.backward(g)))  # through silu(norm2(.))
        dx = self.norm1.backward(self.conv1.backward(dh))  # through silu(norm1(.))
        dx += g if self.conv_shortcut is None else self.conv_shortcut.backward(g)
        if self.time_emb_proj is None:
            return dx
        dtemb = self.act_temb.backward(self.time_emb_proj.backward(dh.sum(axis=(2, 3))))
        return dx, dtemb
