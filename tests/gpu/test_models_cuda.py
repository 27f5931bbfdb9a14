"""CUDA parity: every model and attention variant gives the CPU result on the GPU, and the fused
(SDPA / linear-time) path equals the explicit one there too. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from explorer.models import (
    ATTENTION_VARIANTS,
    CNN,
    MLP,
    ConvDecoder,
    NeuralField,
    Transformer,
    TransformerConfig,
    ViT,
    capture,
)

pytestmark = pytest.mark.cuda

MODELS = [
    (MLP, torch.randn(64, 2)),
    (NeuralField, torch.rand(64, 2)),
    (CNN, torch.rand(4, 1, 8, 8)),
    (ConvDecoder, torch.rand(1, 32, 4, 4)),
    (ViT, torch.rand(4, 1, 8, 8)),
]


@pytest.mark.parametrize(("cls", "inputs"), MODELS, ids=[c.__name__ for c, _ in MODELS])
def test_models_match_cpu(cls, inputs):
    model = cls()
    expected = model(inputs)
    got = model.cuda()(inputs.cuda())
    torch.testing.assert_close(got.cpu(), expected, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("variant", ATTENTION_VARIANTS)
@pytest.mark.parametrize("pos", ["learned", "rope", "alibi"])
def test_attention_variants_on_cuda(variant, pos):
    if pos == "alibi" and variant in ("linear", "performer"):
        pytest.skip("alibi needs score-based attention")
    cfg = TransformerConfig(vocab_size=32, n_ctx=64, d_model=64, n_heads=4, attention=variant,
                            pos=pos, causal=True)  # fmt: skip
    model = Transformer(cfg)
    tokens = torch.randint(0, 32, (4, 64))
    cpu = model(tokens)
    model = model.cuda()
    fused = model(tokens.cuda())
    cache = capture(model, tokens.cuda(), ["blocks.*.attn.hook_pattern"], device=None)
    assert cache["blocks.0.attn.hook_pattern"].is_cuda
    torch.testing.assert_close(fused.cpu(), cpu, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(cache.output, fused, atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(
        cache["blocks.1.attn.hook_pattern"].sum(-1), torch.ones(4, 4, 64, device="cuda")
    )


def test_capture_moves_to_cpu_by_default():
    model = MLP().cuda()
    cache = capture(model, torch.randn(8, 2, device="cuda"), ["hook_out"])
    assert cache["hook_out"].device.type == "cpu"
