"""CLIPTextModel(WithProjection): every parameter's hand-written gradient against finite
differences (both kernel backends), the causal property, first-eos pooling, folders, and
the errors its config and input_ids get."""

import json

import numpy as np
import pytest

from tinydiff import kernels
from tinydiff.models import CLIPTextModel, CLIPTextModelWithProjection
from tinydiff.nn import Module
from tinydiff.nn.gradcheck import gradcheck

TINY = dict(vocab_size=11, hidden_size=6, intermediate_size=10, projection_dim=5, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=7, pad_token_id=0, bos_token_id=1,
            eos_token_id=3)
# rows with the eos early, twice (only the first is pooled), and last
IDS = np.array([[1, 3, 0, 0, 0, 0],
                [1, 5, 3, 9, 3, 0],
                [1, 4, 7, 8, 10, 3]])


def tiny(cls=CLIPTextModelWithProjection, seed=0, **changes):
    model = cls(rng=np.random.default_rng(seed), **{**TINY, **changes}).to(np.float64)
    # LayerNorms and biases start at 1 and 0: give them values so that their gradients are tested
    rng = np.random.default_rng(seed + 1)
    for name, p in model.named_parameters():
        if "norm" in name or name.endswith("bias"):
            p.data[...] += 0.3 * rng.standard_normal(p.shape)
    return model


class BothOutputs(Module):
    """The model's two outputs flattened into one (B, N*D + P) array, for gradcheck."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        first, second = self.model(input_ids)
        self.save_for_backward(first.shape)
        return np.concatenate([first.reshape(len(first), -1), second], axis=1)

    def backward(self, grad_out):
        (shape,) = self.saved()
        split = int(np.prod(shape[1:]))
        return self.model.backward(grad_out[:, :split].reshape(shape), grad_out[:, split:])


@pytest.mark.parametrize("backend", ["fast", "reference"])
@pytest.mark.parametrize("cls,hidden_act", [(CLIPTextModelWithProjection, "quick_gelu"),
                                            (CLIPTextModel, "gelu")])
def test_every_parameter_gradient_matches_finite_differences(cls, hidden_act, backend):
    model = tiny(cls, hidden_act=hidden_act)
    with kernels.use(backend):
        report = gradcheck(BothOutputs(model), (IDS,), np.random.default_rng(2), max_elements=60)
    assert len(report) == len(list(model.named_parameters()))


def test_backward_with_one_output_gradient_is_the_sum_of_its_parts():
    model = tiny()
    rng = np.random.default_rng(4)
    last, embeds = model(IDS)
    g_last, g_embeds = rng.standard_normal(last.shape), rng.standard_normal(embeds.shape)
    grads = []
    for pair in ((g_last, None), (None, g_embeds), (g_last, g_embeds)):
        model.zero_grad()
        model(IDS)
        model.backward(*pair)
        grads.append([p.grad.copy() for p in model.parameters()])
    for only_last, only_embeds, both in zip(*grads):
        np.testing.assert_allclose(only_last + only_embeds, both, rtol=1e-12, atol=1e-14)


def test_a_token_changes_no_earlier_position():
    model = tiny().eval()
    before, _ = model(IDS)
    for j in range(IDS.shape[1]):
        changed = IDS.copy()
        changed[:, j] = (changed[:, j] + 5) % TINY["vocab_size"]
        changed[:, -1] = TINY["eos_token_id"]  # keep an eos in every row
        after, _ = model(changed)
        np.testing.assert_array_equal(after[:, :j], before[:, :j])
        if j < IDS.shape[1] - 1:
            assert np.all(np.abs(after[:, j] - before[:, j]).max(axis=-1) > 1e-6)


def test_pools_the_first_eos_and_projects_it():
    plain = tiny(CLIPTextModel).eval()
    last, pooled = plain(IDS)
    np.testing.assert_array_equal(pooled, last[np.arange(3), [1, 2, 5]])
    projected = tiny(CLIPTextModelWithProjection).eval()
    last, embeds = projected(IDS)
    np.testing.assert_allclose(embeds, last[np.arange(3), [1, 2, 5]] @ projected.text_projection.weight.data.T,
                               rtol=1e-13)


def test_names_and_init_follow_transformers():
    model = CLIPTextModelWithProjection(**{**TINY, "hidden_size": 64, "num_attention_heads": 4},
                                        rng=np.random.default_rng(0))
    names = dict(model.named_parameters())
    for name in ("text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
                 "text_model.encoder.layers.1.self_attn.q_proj.bias", "text_model.encoder.layers.0.mlp.fc2.weight",
                 "text_model.encoder.layers.0.layer_norm2.weight", "text_model.final_layer_norm.bias",
                 "text_projection.weight"):
        assert name in names
    assert "text_projection.bias" not in names
    assert names["text_model.encoder.layers.0.self_attn.q_proj.weight"].dtype == np.float32
    # std 64^-1/2 (2 L)^-1/2 = 1/16 for q_proj, 64^-1/2 = 1/8 for out_proj, biases 0
    assert 0.055 < names["text_model.encoder.layers.0.self_attn.q_proj.weight"].data.std() < 0.07
    assert 0.11 < names["text_model.encoder.layers.0.self_attn.out_proj.weight"].data.std() < 0.14
    assert not names["text_model.encoder.layers.0.mlp.fc1.bias"].data.any()
    # the same generator seed draws the same weights
    again = CLIPTextModelWithProjection(**{**TINY, "hidden_size": 64, "num_attention_heads": 4},
                                        rng=np.random.default_rng(0))
    for (_, a), (_, b) in zip(model.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_folder_round_trip(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "text_encoder")
    config = json.loads((tmp_path / "text_encoder" / "config.json").read_text())
    assert config["model_type"] == "clip_text_model"
    assert config["architectures"] == ["CLIPTextModelWithProjection"]
    loaded = CLIPTextModelWithProjection.from_pretrained(tmp_path / "text_encoder")
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        np.testing.assert_array_equal(a.data.astype(np.float32), b.data, err_msg=name)
    config["dropout"] = 0.1
    (tmp_path / "text_encoder" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="dropout"):
        CLIPTextModelWithProjection.from_pretrained(tmp_path / "text_encoder")


@pytest.mark.parametrize("change,message", [
    (dict(eos_token_id=2), "eos_token_id=2 is refused"),
    (dict(eos_token_id=11), "eos_token_id=11 must be < vocab_size=11"),
    (dict(hidden_size=7), "hidden_size must be divisible by num_attention_heads=2"),
    (dict(hidden_act="relu"), "hidden_act must be one of"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
])
def test_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        CLIPTextModel(**{**TINY, **change})


@pytest.mark.parametrize("ids,error,message", [
    (IDS.astype(np.float64), TypeError, "input_ids must be a \\(B, N\\) integer array"),
    (IDS[0], TypeError, "input_ids must be a \\(B, N\\) integer array"),
    (np.full((1, 8), 3), ValueError, "N=8 tokens; at most max_position_embeddings=7"),
    (np.array([[1, 11, 3]]), ValueError, "must lie in \\[0, vocab_size=11\\)"),
    (np.array([[1, -1, 3]]), ValueError, "must lie in \\[0, vocab_size=11\\)"),
    (np.array([[1, 3], [1, 4]]), ValueError, "row\\(s\\) \\[1\\] hold no eos_token_id=3"),
])
def test_input_id_errors(ids, error, message):
    with pytest.raises(error, match=message):
        tiny()(ids)
