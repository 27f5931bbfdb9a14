"""Model zoo: shapes, hook names from the contract, deterministic init, encodings, bad configs."""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pytest
import torch

from explorer.models import (
    ACTIVATIONS,
    CNN,
    ENCODINGS,
    MLP,
    CNNConfig,
    ConvDecoder,
    ConvDecoderConfig,
    MLPConfig,
    NeuralField,
    Transformer,
    TransformerConfig,
    ViT,
    ViTConfig,
    build_model,
    config_from_dict,
    config_to_dict,
    hook_names,
)
from explorer.models.layers import Encoding


def _params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize(
    ("factory", "inputs", "out_shape"),
    [
        (lambda s: MLP(seed=s), torch.randn(5, 2), (5, 2)),
        (lambda s: NeuralField(seed=s), torch.rand(7, 2) * 2 - 1, (7, 1)),
        (lambda s: Transformer(seed=s), torch.randint(0, 16, (2, 9)), (2, 9, 16)),
        (lambda s: CNN(seed=s), torch.rand(3, 1, 8, 8), (3, 10)),
        (lambda s: ConvDecoder(seed=s), torch.rand(1, 32, 4, 4), (1, 1, 32, 32)),
        (lambda s: ViT(seed=s), torch.rand(2, 1, 8, 8), (2, 10)),
    ],
)
def test_default_models_shapes_and_seeded_init(factory, inputs, out_shape):
    model = factory(0)
    out = model(inputs)
    assert out.shape == out_shape
    assert torch.isfinite(out).all()
    assert _params_equal(model, factory(0))
    assert not _params_equal(model, factory(1))
    state = torch.random.get_rng_state()
    factory(3)
    assert torch.equal(state, torch.random.get_rng_state())  # init does not consume global RNG


def test_contract_hook_names():
    t = set(hook_names(Transformer(n_layers=2)))
    for name in [
        "hook_embed", "hook_pos_embed", "blocks.1.hook_resid_pre", "blocks.1.attn.hook_pattern",
        "blocks.1.hook_attn_out", "blocks.1.mlp.hook_pre", "blocks.1.mlp.hook_post",
        "blocks.1.hook_resid_post",
    ]:  # fmt: skip
        assert name in t
    m = set(hook_names(MLP(depth=2)))
    assert {"layers.0.hook_pre", "layers.1.hook_post", "hook_out"} <= m
    assert {"layers.0.hook_pre", "hook_out"} <= set(hook_names(NeuralField()))
    assert {"blocks.0.hook_out", "blocks.1.hook_out"} <= set(hook_names(CNN()))
    assert {"hook_embed", "blocks.0.attn.hook_pattern"} <= set(hook_names(ViT()))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_mlp_every_activation_and_encoding(activation, encoding):
    model = MLP(in_dim=2, out_dim=3, depth=2, width=16, activation=activation, encoding=encoding,
                n_fourier=8, residual=True, layernorm=True)  # fmt: skip
    x = torch.rand(4, 2, requires_grad=True)
    out = model(x)
    assert out.shape == (4, 3)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_fourier_encoding_matches_formula_and_learned_variant_trains():
    enc = Encoding("fourier", in_dim=2, n_features=5, scale=3.0, seed=4).double()
    x = torch.rand(6, 2, dtype=torch.float64)
    b = enc.B.double().numpy()
    proj = 2 * np.pi * x.numpy() @ b.T
    np.testing.assert_allclose(
        enc(x).numpy(), np.concatenate([np.cos(proj), np.sin(proj)], 1), rtol=1e-12, atol=1e-12
    )
    assert enc.B.std().item() == pytest.approx(3.0, rel=0.6)
    assert "B" in dict(enc.named_buffers())
    learned = Encoding("learned_fourier", in_dim=2, n_features=5, scale=3.0, seed=4)
    assert "B" in dict(learned.named_parameters())
    torch.testing.assert_close(learned.B.detach().double(), enc.B)
    pos = Encoding("positional", in_dim=2, n_features=3)
    assert pos(torch.zeros(1, 2)).shape == (1, 2 * (1 + 6))


def test_siren_initialisation_bounds():
    model = MLP(in_dim=2, width=32, depth=3, activation="sine", omega0=30.0)
    first = model.layers[0].linear.weight
    assert first.abs().max() <= 1 / 2
    hidden = model.layers[1].linear.weight
    assert hidden.abs().max() <= math.sqrt(6 / 32) / 30 + 1e-7
    assert hidden.abs().max() > 0.5 * math.sqrt(6 / 32) / 30


def test_neural_field_render_matches_forward_on_grid():
    field = NeuralField(in_dim=2, out_dim=3, width=16, depth=2)
    img = field.render((4, 5))
    assert img.shape == (4, 5, 3)
    corner = field(torch.tensor([[-1.0, -1.0 + 2 / 5]]))
    torch.testing.assert_close(img[0, 1], corner[0])
    with pytest.raises(ValueError, match="axes"):
        field.render(8)


def test_decoder_upsampling_variants_and_padding():
    for up in ("nearest", "bilinear", "transposed", "zero_insert"):
        dec = ConvDecoder(ConvDecoderConfig(channels=(8, 8), upsample=up, padding_mode="reflect"))
        z = dec.noise_input(size=4)
        assert dec(z).shape == (1, 1, 16, 16)
    zi = ConvDecoder(channels=(4,), upsample="zero_insert")
    up = zi.blocks[0]._up(torch.ones(1, 32, 2, 2))
    assert up[0, 0].tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_vit_cls_token_and_patches():
    vit = ViT(ViTConfig(image_size=8, patch_size=4, attention=["softmax", "linear"]))
    from explorer.models import capture

    cache = capture(vit, torch.rand(2, 1, 8, 8), ["hook_embed", "blocks.*.attn.hook_pattern"])
    assert cache["hook_embed"].shape == (2, 5, 64)
    torch.testing.assert_close(cache["hook_embed"][0, 0], vit.cls[0, 0])
    assert cache["blocks.1.attn.hook_pattern"].shape == (2, 4, 5, 5)


@pytest.mark.parametrize(
    "config",
    [
        MLPConfig(width=8, encoding="fourier"),
        CNNConfig(channels=(4, 8)),
        ConvDecoderConfig(channels=(4,)),
        ViTConfig(patch_size=4, pos="rope"),
    ],
)
def test_config_dict_round_trip_and_build(config):
    data = config_to_dict(config)
    assert config_from_dict(data) == config
    assert _params_equal(build_model(data), build_model(config))


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown kind"):
        build_model({"kind": "rnn"})
    with pytest.raises(TypeError, match="needs a CNNConfig"):
        build_model(MLPConfig(), kind="cnn")
    with pytest.raises(ValueError, match="unknown field"):
        config_from_dict({"kind": "mlp", "widht": 3})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MLPConfig(activation="swish"), "activation must be one of"),
        (lambda: MLPConfig(encoding="hash"), "encoding must be one of"),
        (lambda: MLPConfig(depth=0), "depth must be an integer >= 1"),
        (lambda: MLPConfig(encoding="fourier", fourier_scale=-1.0), "fourier_scale"),
        (lambda: MLP(encoding="fourier", fourier_scale=-1.0), "fourier_scale"),
        (lambda: CNNConfig(kernel_size=2), "odd"),
        (lambda: CNNConfig(channels=()), "at least one"),
        (lambda: CNNConfig(padding_mode="mirror"), "padding_mode"),
        (lambda: ConvDecoderConfig(upsample="pixelshuffle"), "upsample must be one of"),
        (lambda: ViTConfig(image_size=10, patch_size=4), "multiple of patch_size"),
    ],
)
def test_bad_configs_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


_BAD_VALUES = {
    int: [-1, True, 2.5, "3", None],
    float: [math.nan, math.inf, -1.0, True, "x", None],
    str: ["bogus", 3, None],
    bool: [2, "yes", None],
}


@pytest.mark.parametrize(
    "config", [MLPConfig, TransformerConfig, CNNConfig, ConvDecoderConfig, ViTConfig]
)
def test_every_config_field_refuses_bad_values_before_a_model_is_built(config):
    """Issue 19: TransformerConfig(performer_features=0) failed only in forward, a bogus
    activation only when built, strings and numbers passed for flags and seeds."""
    hints = typing.get_type_hints(config)
    checked = 0
    for field in dataclasses.fields(config):
        for value in _BAD_VALUES.get(hints[field.name], []):
            with pytest.raises((ValueError, TypeError)):
                config(**{field.name: value})
            checked += 1
    assert checked >= 20
    with pytest.raises(ValueError, match="performer_features must be an integer >= 1"):
        TransformerConfig(attention="performer", performer_features=0)


@pytest.mark.parametrize(
    ("model", "bad", "match"),
    [
        (MLP(in_dim=3), torch.rand(4, 2), "3 feature"),
        (Transformer(vocab_size=8), torch.tensor([[1, 9]]), r"tokens must lie in \[0, 8\)"),
        (Transformer(n_ctx=4), torch.zeros(1, 5, dtype=torch.long), "exceeds n_ctx=4"),
        (Transformer(), torch.rand(1, 3), "integer tokens"),
        (CNN(in_channels=3), torch.rand(1, 1, 8, 8), r"\(batch, 3, height, width\)"),
        (ViT(image_size=8), torch.rand(1, 1, 16, 16), "8×8 images"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, bad, match):
    with pytest.raises(ValueError, match=match):
        model(bad)
