"""Attention variants: mixing matrix reproduces the output, fused == explicit, masks, RoPE/ALiBi."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.models import ATTENTION_VARIANTS, Transformer, TransformerConfig, capture
from explorer.models.attention import (
    AttentionParams,
    allowed_mask,
    attend_fast,
    orthogonal_features,
    pattern,
)
from explorer.models.positional import alibi_bias, apply_rope, sinusoidal_table

NAMES = ["blocks.*.attn.hook_pattern", "blocks.*.attn.hook_v", "blocks.*.attn.hook_z"]


def _qkv(b=2, h=3, t=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, t, d, generator=g, dtype=torch.float64) for _ in range(3)]


def _configs():
    for variant in ATTENTION_VARIANTS:
        for causal in (True, False):
            for pos in ("learned", "rope", "alibi"):
                if pos == "alibi" and variant in ("linear", "performer"):
                    continue
                yield variant, causal, pos


@pytest.mark.parametrize(("variant", "causal", "pos"), list(_configs()))
def test_mixing_matrix_reproduces_output_and_fused_path(variant, causal, pos):
    model = Transformer(
        TransformerConfig(vocab_size=11, n_ctx=12, d_model=16, n_heads=2, n_layers=2,
                          attention=variant, causal=causal, pos=pos, window=3, stride=3, topk=3)
    )  # fmt: skip
    tokens = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(1))
    fused = model(tokens)
    cache = capture(model, tokens, NAMES)
    for i in range(2):
        a = cache[f"blocks.{i}.attn.hook_pattern"]  # (B, H, T, T)
        assert a.shape == (3, 2, 12, 12)
        assert torch.all(a >= 0)
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, 12))
        if causal:
            assert torch.all(a.triu(1) == 0)
        z = a @ cache[f"blocks.{i}.attn.hook_v"]
        torch.testing.assert_close(z, cache[f"blocks.{i}.attn.hook_z"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(cache.output, fused, atol=2e-5, rtol=1e-4)


def test_fused_path_skips_pattern_and_explicit_path_is_taken_when_observed(monkeypatch):
    calls = []
    import explorer.models.transformer as tr

    real = tr.pattern
    monkeypatch.setattr(tr, "pattern", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = Transformer(n_layers=2)
    tokens = torch.randint(0, 16, (2, 5))
    model(tokens)
    assert calls == []
    capture(model, tokens, ["blocks.1.attn.hook_pattern"])
    assert calls == [1]  # only the observed layer materialises its pattern


def test_softmax_pattern_matches_numpy_oracle_with_temperature():
    q, k, _ = _qkv()
    p = AttentionParams("softmax", causal=True, temperature=0.5)
    got = pattern(p, q, k).numpy()
    s = np.einsum("bhid,bhjd->bhij", q.numpy(), k.numpy()) / (math.sqrt(8) * 0.5)
    s[..., np.triu(np.ones((7, 7), bool), 1)] = -np.inf
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-12, atol=1e-14)


def test_linear_attention_matches_elu_feature_oracle():
    q, k, v = _qkv()
    p = AttentionParams("linear", causal=False)
    fq, fk = (np.where(x > 0, x + 1, np.exp(x)) for x in (q.numpy(), k.numpy()))
    a = np.einsum("bhif,bhjf->bhij", fq, fk)
    a /= a.sum(-1, keepdims=True)
    np.testing.assert_allclose(pattern(p, q, k).numpy(), a, rtol=1e-12)
    np.testing.assert_allclose(attend_fast(p, q, k, v).numpy(), a @ v.numpy(), rtol=1e-10)


def test_performer_estimates_softmax_with_many_features():
    q, k, _ = _qkv(b=1, h=1, t=6, d=4, seed=3)
    q, k = q * 0.5, k * 0.5
    soft = pattern(AttentionParams("softmax", causal=False), q, k)
    perf = pattern(
        AttentionParams("performer", causal=False), q, k,
        projection=orthogonal_features(8192, 4, seed=0).double(),
    )  # fmt: skip
    assert (perf - soft).abs().max() < 0.02
    few = pattern(
        AttentionParams("performer", causal=False), q, k,
        projection=orthogonal_features(4, 4, seed=0).double(),
    )  # fmt: skip
    assert (few - soft).abs().max() > (perf - soft).abs().max()


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("sliding", lambda i, j: abs(i - j) < 3),
        ("strided", lambda i, j: abs(i - j) < 3 or (i - j) % 3 == 0),
        ("softmax", lambda i, j: True),
    ],
)
@pytest.mark.parametrize("causal", [True, False])
def test_allowed_masks(variant, expected, causal):
    p = AttentionParams(variant, causal=causal, window=3, stride=3)
    mask = allowed_mask(p, 9).numpy()
    oracle = np.array(
        [[expected(i, j) and (j <= i or not causal) for j in range(9)] for i in range(9)]
    )
    np.testing.assert_array_equal(mask, oracle)


def test_topk_keeps_k_keys_per_row_and_none_is_identity():
    q, k, v = _qkv(t=9)
    a = pattern(AttentionParams("topk", causal=False, topk=3), q, k)
    assert torch.all((a > 0).sum(-1) == 3)
    a = pattern(AttentionParams("topk", causal=True, topk=3), q, k)
    np.testing.assert_array_equal((a > 0).sum(-1)[0, 0].numpy(), np.minimum(np.arange(1, 10), 3))
    eye = pattern(AttentionParams("none", causal=True), q, k)
    torch.testing.assert_close(eye[1, 2], torch.eye(9, dtype=eye.dtype))
    assert attend_fast(AttentionParams("none", causal=True), q, k, v) is v


@settings(max_examples=25, deadline=None)
@given(
    variant=st.sampled_from(ATTENTION_VARIANTS),
    causal=st.booleans(),
    t=st.integers(1, 9),
    heads=st.integers(1, 3),
    temperature=st.floats(0.2, 5.0),
)
def test_fast_equals_explicit_for_any_shape(variant, causal, t, heads, temperature):
    q, k, v = _qkv(b=1, h=heads, t=t, d=4, seed=t)
    p = AttentionParams(variant, causal=causal, temperature=temperature, window=2, stride=2)
    proj = orthogonal_features(16, 4, seed=1).double()
    explicit = pattern(p, q, k, projection=proj) @ v
    torch.testing.assert_close(attend_fast(p, q, k, v, projection=proj), explicit)


def test_rope_scores_depend_only_on_relative_position():
    g = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(16, generator=g, dtype=torch.float64),
        torch.randn(16, generator=g, dtype=torch.float64),
    )

    def score(m, n):
        rq = apply_rope(q[None], torch.tensor([m]))[0]
        rk = apply_rope(k[None], torch.tensor([n]))[0]
        return float(rq @ rk)

    for m, n in [(0, 0), (5, 2), (2, 5), (11, 3)]:
        for shift in (1, 7, 40):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), rel=1e-12, abs=1e-12)
    assert score(5, 2) != pytest.approx(score(2, 5))
    x = torch.randn(3, 10, 16, generator=g, dtype=torch.float64)
    torch.testing.assert_close(apply_rope(x, torch.arange(10)).norm(dim=-1), x.norm(dim=-1))
    with pytest.raises(ValueError, match="even head dimension"):
        apply_rope(torch.ones(2, 3), torch.arange(2))


def test_rope_transformer_scores_are_shift_invariant():
    model = Transformer(vocab_size=5, n_ctx=16, pos="rope", n_layers=1, causal=False)
    tokens = torch.tensor([[1, 2, 3, 4] * 4])
    cache = capture(model, tokens, ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k"])
    s = cache["blocks.0.attn.hook_q"][0] @ cache["blocks.0.attn.hook_k"][0].transpose(-1, -2)
    # tokens are 4-periodic and RoPE scores depend on i - j only: shifting both by 4 is a no-op
    torch.testing.assert_close(s[:, :12, :12], s[:, 4:, 4:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(s[:, :14, :14], s[:, 2:, 2:], atol=1e-3)


def test_alibi_and_sinusoidal_oracles():
    bias = alibi_bias(4, 5)
    assert bias.shape == (4, 5, 5)
    assert bias[0, 3, 1].item() == pytest.approx(-2 * 2 ** (-2))
    assert bias[3, 1, 4].item() == pytest.approx(-3 * 2 ** (-8))
    table = sinusoidal_table(6, 8)
    assert table[3, 2].item() == pytest.approx(math.sin(3 / 10000 ** (2 / 8)), rel=1e-6)
    assert table[3, 5].item() == pytest.approx(math.cos(3 / 10000 ** (4 / 8)), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attention": "flash"}, "attention variant must be one of"),
        ({"attention": ["softmax"], "n_layers": 2}, "one per layer"),
        ({"pos": "alibi", "attention": "linear"}, "alibi"),
        ({"temperature": 0.0}, "temperature"),
        ({"window": 0}, "window"),
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"pos": "spiral"}, "pos must be one of"),
    ],
)
def test_bad_transformer_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerConfig(**kwargs)


@pytest.mark.parametrize("variant", ["linear", "performer"])
def test_causal_kernel_attention_across_chunks(variant):
    q, k, v = _qkv(b=1, h=2, t=150, d=4, seed=5)  # 150 tokens: three chunks of 64
    p = AttentionParams(variant, causal=True)
    proj = orthogonal_features(8, 4, seed=2).double()
    torch.testing.assert_close(
        attend_fast(p, q, k, v, projection=proj), pattern(p, q, k, projection=proj) @ v
    )
