"""A small MLP denoiser for 2-D data: eps_theta(x_t, t) for the toy data sets.

    features = [x_t, sinusoidal(t)]            (B, D + E)
    h = SiLU(Linear(features)); h = h + SiLU(Linear(h)) (num_blocks times); out = Linear(h)

The residual hidden blocks keep a deeper MLP easy to train; the timestep enters through its
sinusoidal features (Vaswani et al. 2017) concatenated onto the input.
"""

import numpy as np

from tinydiff.models.checks import check_model_size, config_int
from tinydiff.nn import Linear, Module, ModuleList, SiLU, SinusoidalTimestepEmbedding
from tinydiff.nn.checks import check_float_array
from tinydiff.nn.init import generator


def validate_config(c):
    """Check an MLPDenoiser config dict (see tinydiff.models.checks)."""
    owner = "MLPDenoiser"
    for key in ("data_dim", "hidden", "time_embed_dim"):
        c[key] = config_int(c[key], key, owner)
    c["num_blocks"] = config_int(c["num_blocks"], "num_blocks", owner, minimum=0)
    hidden = c["hidden"]
    parameters = (c["data_dim"] * 2 + c["time_embed_dim"]) * hidden + c["num_blocks"] * hidden**2
    check_model_size(owner, parameters, "hidden and num_blocks")
    return c


class MLPDenoiser(Module):
    """forward(x (B, D), timestep (B,) or scalar) -> (B, D); backward(dout) -> dx.

    Parameters
    ----------
    data_dim : int
    hidden : int
    num_blocks : int
        Residual hidden blocks after the input layer.
    time_embed_dim : int
    """

    def __init__(self, data_dim=2, hidden=128, num_blocks=3, time_embed_dim=32, rng=None):
        super().__init__()
        self.config = validate_config(dict(data_dim=data_dim, hidden=hidden, num_blocks=num_blocks,
                                           time_embed_dim=time_embed_dim))
        data_dim, hidden, num_blocks, time_embed_dim = (self.config[k] for k in ("data_dim", "hidden", "num_blocks",
                                                                                 "time_embed_dim"))
        rng = generator(rng)
        self.time_proj = SinusoidalTimestepEmbedding(time_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.linear_in = Linear(data_dim + time_embed_dim, hidden, rng=rng)
        self.act_in = SiLU()
        self.blocks = ModuleList([Linear(hidden, hidden, rng=rng) for _ in range(num_blocks)])
        self.acts = ModuleList([SiLU() for _ in range(num_blocks)])
        self.linear_out = Linear(hidden, data_dim, rng=rng)

    def forward(self, x, timestep):
        check_float_array(x, "x", ndim=2, dtype=self.linear_in.weight.dtype)
        if x.shape[1] != self.config["data_dim"]:
            raise ValueError(f"MLPDenoiser: x must be (B, data_dim={self.config['data_dim']}), got shape {x.shape}")
        t = np.broadcast_to(np.asarray(timestep), (x.shape[0],))
        features = np.concatenate([x, self.time_proj(t)], axis=1)  # (B, D + E)
        h = self.act_in(self.linear_in(features))
        for linear, act in zip(self.blocks, self.acts):
            h = h + act(linear(h))
        return self.linear_out(h)

    def backward(self, grad_out):
        g = self.linear_out.backward(grad_out)
        for linear, act in zip(reversed(list(self.blocks)), reversed(list(self.acts))):
            g = g + linear.backward(act.backward(g))
        dfeatures = self.linear_in.backward(self.act_in.backward(g))
        self.time_proj.saved()  # timesteps are conditioning: release, do not differentiate
        return dfeatures[:, : self.config["data_dim"]]
