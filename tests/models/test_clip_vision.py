"""CLIPConvVisionModel, CLIP's image tower: every parameter's gradient against finite
differences, its config checks, and its model folder round trip."""

import numpy as np
import pytest

from tinydiff.models import CLIPConvVisionModel
from tinydiff.nn.gradcheck import gradcheck
from tinydiff.pipelines.checkpoint import load_model, save_model

TINY = dict(in_channels=3, block_out_channels=(4, 6), layers_per_block=1, norm_num_groups=2, projection_dim=3)


def test_every_parameter_and_the_images_gradient_match_finite_differences():
    rng = np.random.default_rng(0)
    model = CLIPConvVisionModel(**TINY, rng=rng)
    images = rng.uniform(-1, 1, (2, 3, 4, 6))
    report = gradcheck(model, (images,), rng, max_elements=12)
    assert len(report) == 1 + len(model.parameters())
    assert "visual_projection.weight" in report and "down_blocks.0.downsamplers.0.conv.weight" in report
    assert "visual_projection.bias" not in dict(model.named_parameters())  # CLIP projects without bias


def test_shapes_names_and_default_size():
    model = CLIPConvVisionModel(rng=np.random.default_rng(1))
    out = model(np.zeros((2, 3, 32, 32), np.float32))
    assert out.shape == (2, 64) and out.dtype == np.float32
    assert model.backward(np.ones_like(out)).shape == (2, 3, 32, 32)
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "conv_in.weight" and names[-1] == "visual_projection.weight"
    assert "down_blocks.1.resnets.0.conv_shortcut.weight" in names and "norm_out.weight" in names
    assert 1e5 < model.num_parameters() < 1e6


def test_saves_and_loads_through_the_model_folder(tmp_path):
    rng = np.random.default_rng(2)
    model = CLIPConvVisionModel(**TINY, rng=rng).eval()
    save_model(model, tmp_path / "vision")
    loaded = load_model(tmp_path / "vision").eval()
    assert type(loaded) is CLIPConvVisionModel and loaded.config == model.config
    images = rng.uniform(-1, 1, (3, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded(images), model(images))


@pytest.mark.parametrize("change,error,fragment", [
    (dict(block_out_channels=(4, 5)), ValueError, "divisible by norm_num_groups=2"),
    (dict(projection_dim=0), ValueError, "CLIPConvVisionModel: projection_dim"),
    (dict(block_out_channels=()), ValueError, "non-empty"),
    (dict(layers_per_block="1"), TypeError, "layers_per_block"),
])
def test_config_errors_name_the_argument(change, error, fragment):
    with pytest.raises(error, match=fragment):
        CLIPConvVisionModel(**{**TINY, **change})


def test_input_errors_are_clear():
    model = CLIPConvVisionModel(**TINY, rng=np.random.default_rng(3))
    with pytest.raises(ValueError, match=r"images must have shape \(B >= 1, 3, H, W\) with H and W multiples of 2"):
        model(np.zeros((1, 3, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"got \(1, 1, 8, 8\)"):
        model(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="images: expected a 4-D array"):
        model(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="images: expected dtype float32"):
        model(np.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="images: expected a float32 or float64 array"):
        model(np.zeros((1, 3, 8, 8), np.uint8))
