"""CLIPTextModelWithProjection against transformers' holding the same weights, in float64:
last_hidden_state, text_embeds and every parameter's gradient for a random upstream gradient
on both outputs; and folders crossing both ways by from_pretrained. Skipped where torch or
transformers is not installed."""

import numpy as np
import pytest

from tinydiff.models import CLIPTextModel, CLIPTextModelWithProjection

CONFIG = dict(vocab_size=23, hidden_size=16, intermediate_size=24, projection_dim=8, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=9, pad_token_id=0, bos_token_id=1,
              eos_token_id=22)
# first eos early (with pads after), twice (the first is pooled), at the end
IDS = np.array([[1, 5, 22, 0, 0, 0, 0, 0, 0],
                [1, 7, 22, 9, 22, 3, 3, 0, 0],
                [1, 4, 8, 12, 16, 20, 21, 2, 22]])
AGREEMENT = 1e-10  # float64 round-off over two blocks, measured against each output's scale


def max_abs(ours, theirs):
    return float(np.max(np.abs(ours - theirs)))


def perturbed(seed, hidden_act):
    """A float64 model whose LayerNorms and biases are not at their initial 1 and 0."""
    model = CLIPTextModelWithProjection(rng=np.random.default_rng(seed), hidden_act=hidden_act, **CONFIG)
    model.to(np.float64)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.named_parameters():
        if "norm" in name or name.endswith("bias"):
            p.data[...] += 0.3 * rng.standard_normal(p.shape)
    return model


@pytest.mark.parametrize("hidden_act", ["quick_gelu", "gelu"])
def test_outputs_and_every_gradient_match_transformers_in_float64(hidden_act):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours = perturbed(0, hidden_act)
    config = transformers.CLIPTextConfig(**ours.config, attention_dropout=0.0)
    theirs = transformers.CLIPTextModelWithProjection(config).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()}, strict=True)
    theirs.train()  # dropout is 0: train mode only keeps autograd's graph, as ours keeps caches

    last, embeds = ours(IDS)
    out = theirs(torch.tensor(IDS))
    assert max_abs(last, out.last_hidden_state.detach().numpy()) < AGREEMENT * np.abs(last).max()
    assert max_abs(embeds, out.text_embeds.detach().numpy()) < AGREEMENT * np.abs(embeds).max()

    rng = np.random.default_rng(3)
    g_last, g_embeds = rng.standard_normal(last.shape), rng.standard_normal(embeds.shape)
    ours.zero_grad()
    ours.backward(g_last, g_embeds)
    torch.autograd.backward([out.last_hidden_state, out.text_embeds], [torch.tensor(g_last), torch.tensor(g_embeds)])
    their_grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    assert sorted(their_grads) == sorted(name for name, _ in ours.named_parameters())
    # k_proj's bias gradient is zero in exact arithmetic (it adds the same number to all of a
    # query's logits): both sides hold round-off there, so errors are taken against the largest
    # gradient of the network
    scale = max(np.abs(grad).max() for grad in their_grads.values())
    errors = {name: max_abs(p.grad, their_grads[name]) for name, p in ours.named_parameters()}
    worst = max(errors, key=errors.get)
    assert errors[worst] < AGREEMENT * scale, f"{worst}: max abs error {errors[worst]:.1e} (scale {scale:.1e})"


@pytest.mark.parametrize("cls", [CLIPTextModel, CLIPTextModelWithProjection])
def test_transformers_loads_a_tinydiff_folder_and_back(cls, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ours = cls(rng=np.random.default_rng(5), **CONFIG)
    ours.save_pretrained(tmp_path / "ours")
    their_cls = getattr(transformers, cls.__name__)
    theirs, info = their_cls.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert theirs.config.eos_token_id == CONFIG["eos_token_id"]
    # transformers >= 5's CLIPTextModel has no text_model level (it maps the names on loading)
    their_params = {name if name.startswith(("text_model.", "text_projection.")) else f"text_model.{name}": p
                    for name, p in theirs.named_parameters()}
    assert sorted(their_params) == sorted(name for name, _ in ours.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_array_equal(their_params[name].detach().numpy(), p.data)
    # and the other way: a folder transformers wrote loads into tinydiff with the same outputs
    theirs.save_pretrained(tmp_path / "theirs")
    again = cls.from_pretrained(tmp_path / "theirs")
    assert again.config == ours.config
    with torch.no_grad():
        want = theirs(torch.tensor(IDS))
    got = again.eval()(IDS)
    assert max_abs(got[0], want.last_hidden_state.numpy()) < 1e-5
