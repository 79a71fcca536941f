"""CLIP's contrastive loss (tinydiff.nn.contrastive): its gradients against finite differences for
all three inputs, its value against a loop over the definition, and its properties."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinydiff.nn import Module, Parameter, clip_logits, clip_loss, clip_loss_backward
from tinydiff.nn.contrastive import INIT_LOGIT_SCALE, MAX_LOGIT_SCALE
from tinydiff.nn.gradcheck import gradcheck


class LossHarness(Module):
    """clip_loss as a module (logit_scale a parameter) so that gradcheck sees all three inputs."""

    def __init__(self, logit_scale):
        super().__init__()
        self.logit_scale = Parameter(np.array(logit_scale))

    def forward(self, image_embeds, text_embeds):
        loss, cache = clip_loss(image_embeds, text_embeds, self.logit_scale.data)
        self.save_for_backward(cache)
        return np.array([loss])

    def backward(self, grad_out):
        (cache,) = self.saved()
        d_image, d_text, d_scale = clip_loss_backward(cache, grad_out[0])
        self.logit_scale.grad += d_scale
        return d_image, d_text


def loop_loss(x, y, s):
    """The definition, one row and one column at a time."""
    t = min(np.exp(s), MAX_LOGIT_SCALE)
    B = len(x)
    cos = np.array([[x[i] @ y[j] / np.linalg.norm(x[i]) / np.linalg.norm(y[j]) for j in range(B)] for i in range(B)])
    rows = [-np.log(np.exp(t * cos[i, i]) / np.exp(t * cos[i]).sum()) for i in range(B)]
    cols = [-np.log(np.exp(t * cos[j, j]) / np.exp(t * cos[:, j]).sum()) for j in range(B)]
    return (np.mean(rows) + np.mean(cols)) / 2


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 5), width=st.integers(1, 6),
       logit_scale=st.floats(-1.0, 4.5))
def test_gradients_of_all_three_inputs_match_finite_differences(seed, batch, width, logit_scale):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, batch, width)) + 0.1  # away from a zero row
    report = gradcheck(LossHarness(logit_scale), (x, y), rng)
    assert set(report) == {"input 0", "input 1", "logit_scale"}


def test_the_clamp_at_100_passes_no_gradient_to_logit_scale():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 4, 3))
    above = np.log(MAX_LOGIT_SCALE) + 0.5
    gradcheck(LossHarness(above), (x, y), rng)  # finite differences see the flat clamp too
    loss, cache = clip_loss(x, y, above)
    assert clip_loss_backward(cache)[2] == 0.0
    assert loss == pytest.approx(clip_loss(x, y, np.log(MAX_LOGIT_SCALE))[0], rel=1e-12)
    assert clip_loss_backward(clip_loss(x, y, np.log(MAX_LOGIT_SCALE) - 0.5)[1])[2] != 0.0


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 5), width=st.integers(1, 4))
def test_value_matches_a_loop_over_the_definition(seed, batch, width):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, batch, width)) + 0.1
    s = rng.uniform(-1, 5)
    assert clip_loss(x, y, s)[0] == pytest.approx(loop_loss(x, y, s), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(clip_logits(x, y, s), [[min(np.exp(s), 100) * a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                                                       for b in y] for a in x], rtol=1e-12)


def test_perfectly_matched_pairs_at_a_high_scale_give_a_loss_near_zero():
    x = np.eye(6, 8)  # six orthogonal directions
    y = 3.0 * x  # the same directions, another length: only the direction counts
    loss, _ = clip_loss(x, y, np.log(MAX_LOGIT_SCALE))
    assert 0 <= loss < 1e-40
    assert clip_loss(x, y, INIT_LOGIT_SCALE)[0] > 1e-7  # at t = 14.3 the negatives still weigh
    assert clip_loss(x, y[::-1].copy(), np.log(MAX_LOGIT_SCALE))[0] > 50  # mismatched pairs cost


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(2, 6))
def test_permuting_the_pairs_leaves_the_loss_and_permutes_the_gradients(seed, batch):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, batch, 3))
    perm = rng.permutation(batch)
    loss, cache = clip_loss(x, y, 1.3)
    loss_p, cache_p = clip_loss(x[perm], y[perm], 1.3)
    assert loss_p == pytest.approx(loss, rel=1e-12)
    dx, dy, ds = clip_loss_backward(cache)
    dx_p, dy_p, ds_p = clip_loss_backward(cache_p)
    np.testing.assert_allclose(dx_p, dx[perm], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dy_p, dy[perm], rtol=1e-10, atol=1e-14)
    assert ds_p == pytest.approx(ds, rel=1e-10, abs=1e-14)
    # permuting only one side breaks the pairing: the loss changes
    assert clip_loss(x, y[np.roll(np.arange(batch), 1)], 1.3)[0] != pytest.approx(loss, rel=1e-6)


def test_float32_in_float32_out():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 4, 5)).astype(np.float32)
    loss, cache = clip_loss(x, y, np.float32(INIT_LOGIT_SCALE))
    dx, dy, _ = clip_loss_backward(cache)
    assert dx.dtype == dy.dtype == np.float32
    assert loss == pytest.approx(clip_loss(x.astype(np.float64), y.astype(np.float64), INIT_LOGIT_SCALE)[0], rel=1e-5)


def test_clear_errors():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"text_embeds: expected image_embeds' shape"):
        clip_loss(x, np.ones((2, 4)), 1.0)
    with pytest.raises(TypeError, match="text_embeds: expected dtype float64"):
        clip_loss(x, np.ones((3, 4), np.float32), 1.0)
    with pytest.raises(ValueError, match="image_embeds: expected a 2-D array"):
        clip_loss(np.ones((3, 4, 1)), np.ones((3, 4, 1)), 1.0)
    with pytest.raises(ValueError, match="text_embeds: row 1 is all zeros"):
        clip_loss(x, np.array([[1.0, 0, 0, 0], [0, 0, 0, 0], [0, 1.0, 0, 0]]), 1.0)
    with pytest.raises(TypeError, match="logit_scale: expected one float"):
        clip_loss(x, x, np.ones(2))
    with pytest.raises(ValueError, match="logit_scale: expected a finite number"):
        clip_loss(x, x, np.nan)
    with pytest.raises(ValueError, match="text_embeds: expected width P = 4"):
        clip_logits(x, np.ones((5, 3)), 1.0)
