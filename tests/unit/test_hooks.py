"""Capture: selective, glob names, no hooks left behind (even on error), streaming, interventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.models import MLP, ActivationCache, HookPoint, Transformer, capture, capture_stream
from explorer.models.hooks import hook_names


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.hook_mid = HookPoint()

    def forward(self, x):
        self.hook_mid(self.lin(x))
        raise RuntimeError("boom")


def test_capture_only_what_was_asked_and_matches_manual_forward():
    model = MLP(depth=2, width=8)
    x = torch.randn(5, 2)
    cache = capture(model, x, ["layers.*.hook_post"])
    assert list(cache) == ["layers.0.hook_post", "layers.1.hook_post"]
    manual = model.layers[0].act(model.layers[0].linear(x))
    torch.testing.assert_close(cache["layers.0.hook_post"], manual)
    torch.testing.assert_close(cache.output, model(x))
    assert cache.nbytes == 2 * 5 * 8 * 4
    assert _hooks_left(model) == 0


def test_default_names_capture_every_hook_point_and_any_module_by_name():
    model = Transformer(n_layers=1)
    tokens = torch.randint(0, 16, (2, 4))
    assert set(capture(model, tokens)) == set(hook_names(model))
    cache = capture(model, tokens, "blocks.0.attn.W_o")  # a plain nn.Linear
    assert cache["blocks.0.attn.W_o"].shape == (2, 4, 64)


def test_hooks_removed_when_forward_raises():
    model = Exploding()
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, torch.randn(1, 2), ["hook_mid", "lin"])
    assert _hooks_left(model) == 0
    assert not model.hook_mid.is_observed


def test_is_observed_follows_attached_hooks():
    hp = HookPoint()
    assert not hp.is_observed
    handle = hp.register_forward_hook(lambda *a: None)
    assert hp.is_observed
    handle.remove()
    assert not hp.is_observed


def test_device_dtype_and_detach_options():
    model = MLP(width=4, depth=1)
    x = torch.randn(3, 2)
    cache = capture(model, x, ["hook_out"], dtype=torch.float64)
    assert cache["hook_out"].dtype == torch.float64 and not cache["hook_out"].requires_grad
    live = capture(model, x, ["hook_out"], detach=False)
    live["hook_out"].sum().backward()
    assert model.head.weight.grad is not None


def test_hook_can_intervene_on_attention_pattern():
    model = Transformer(n_layers=1, causal=True)
    tokens = torch.randint(0, 16, (1, 6))
    uniform = torch.tril(torch.ones(6, 6)) / torch.arange(1, 7)[:, None]

    def replace(_mod, _inp, out):
        return uniform.expand_as(out)

    handle = model.blocks[0].attn.hook_pattern.register_forward_hook(replace)
    try:
        patched = model(tokens)
        z = capture(model, tokens, ["blocks.0.attn.hook_z", "blocks.0.attn.hook_v"])
    finally:
        handle.remove()
    torch.testing.assert_close(z["blocks.0.attn.hook_z"], uniform @ z["blocks.0.attn.hook_v"])
    assert not torch.allclose(patched, model(tokens))


def test_capture_stream_matches_one_big_capture():
    model = MLP(width=8, depth=2)
    x = torch.randn(10, 2)
    seen: list[tuple[int, torch.Tensor]] = []
    n = capture_stream(
        model, x.split(4), ["layers.1.hook_post"],
        lambda i, c: seen.append((i, c["layers.1.hook_post"])),
    )  # fmt: skip
    assert n == 3 and [i for i, _ in seen] == [0, 1, 2]
    full = capture(model, x, ["layers.1.hook_post"])["layers.1.hook_post"]
    torch.testing.assert_close(torch.cat([t for _, t in seen]), full)
    assert _hooks_left(model) == 0


def test_inputs_as_tuple_or_dict():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.hook_sum = HookPoint()

        def forward(self, a, b=0):
            return self.hook_sum(a + b)

    m = Two()
    one = torch.ones(2)
    assert capture(m, (one, one))["hook_sum"].tolist() == [2.0, 2.0]
    assert capture(m, {"a": one, "b": 2 * one})["hook_sum"].tolist() == [3.0, 3.0]


def test_cache_errors_and_stack():
    model = MLP(depth=3, width=4)
    cache = capture(model, torch.randn(2, 2), ["layers.*.hook_pre"])
    assert isinstance(cache, ActivationCache)
    assert cache.stack("layers.*.hook_pre").shape == (3, 2, 4)
    with pytest.raises(KeyError, match=r"was not captured.*names="):
        cache["layers.0.hook_post"]
    with pytest.raises(KeyError, match="no captured name matches"):
        cache.stack("hook_out")
    assert "MiB" in repr(cache)


@pytest.mark.parametrize(
    ("names", "err", "match"),
    [
        (["blocks.*"], ValueError, "no module of MLP matches 'blocks.\\*'"),
        ([], ValueError, "must not be empty"),
        ([3], TypeError, "glob patterns"),
    ],
)
def test_bad_names(names, err, match):
    with pytest.raises(err, match=match):
        capture(MLP(), torch.randn(1, 2), names)


def test_model_without_hook_points_needs_names():
    with pytest.raises(ValueError, match="no HookPoint modules"):
        capture(nn.Sequential(nn.Linear(2, 2)), torch.randn(1, 2))
    cache = capture(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), torch.randn(1, 2), ["1"])
    assert torch.all(cache["1"] >= 0)


def test_array_inputs_are_checked_and_cast_to_the_models_dtype():
    """Issue 19: float64 data raised torch's "mat1 and mat2 must have the same dtype"; complex
    or NaN inputs ran through."""
    model = MLP(in_dim=2, out_dim=3)
    x = np.random.default_rng(0).standard_normal((5, 2))  # numpy's float64
    got = capture(model, x, ["hook_out"])["hook_out"]
    want = capture(model, torch.as_tensor(x, dtype=torch.float32), ["hook_out"])["hook_out"]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(TypeError, match="complex"):
        capture(model, x + 1j)
    with pytest.raises(ValueError, match="NaN"):
        capture(model, np.where(np.eye(5, 2) > 0, np.nan, x))
    tokens = torch.tensor([[1, 2, 3]])  # integer ids pass as they are
    assert capture(Transformer(vocab_size=8), tokens).output.shape[:2] == (1, 3)
