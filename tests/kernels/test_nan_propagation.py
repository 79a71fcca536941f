"""A NaN in a kernel's input comes out as NaN where arithmetic puts it -- never an exception
from inside a kernel, never silently finite numbers (the loss check downstream relies on it)."""

import numpy as np
import pytest

from tinydiff import kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_in_gives_nan_out(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    x[0, 1, 1, 1] = np.nan
    y, mean, rstd = kernels.group_norm_forward(x, np.ones(4, dtype), np.zeros(4, dtype), 2, 1e-5)
    assert np.isnan(y[0, :2]).all() and np.isfinite(y[1]).all()  # the NaN's group, not the other sample
    dx, _, _ = kernels.group_norm_backward(np.ones_like(y), x, np.ones(4, dtype), mean, rstd, 2)
    assert np.isnan(dx[0, :2]).all()

    q = rng.standard_normal((1, 2, 4, 3)).astype(dtype)
    q[0, 0, 1, 0] = np.nan
    out, lse = kernels.attention_forward(q, q, q)
    assert np.isnan(out[0, 0]).any() and np.isfinite(out[0, 1]).all()

    w = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    assert np.isnan(kernels.conv2d_forward(x, w, None, 1, 1)[0]).any()
    assert np.isnan(kernels.silu_forward(x)).sum() == 1
