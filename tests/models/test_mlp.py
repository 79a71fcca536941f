import numpy as np

from tinydiff.models import MLPDenoiser
from tinydiff.nn.gradcheck import gradcheck


def test_mlp_denoiser_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    model = MLPDenoiser(data_dim=2, hidden=8, num_blocks=2, time_embed_dim=6, rng=rng)
    gradcheck(model, (rng.standard_normal((5, 2)), rng.integers(0, 1000, 5)), rng)
