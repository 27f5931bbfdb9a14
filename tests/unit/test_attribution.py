"""Attribution through Captum: closed forms on a linear model, Captum called directly on a
hand-written embedding forward, integrated-gradients completeness on tokens and pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from torch import nn

from explorer import interventions as iv
from explorer.models import CNN, CNNConfig, Transformer, TransformerConfig


def test_linear_model_closed_forms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    w = model[1].weight[1].detach().view(2, 4, 4)
    ig = iv.attribute(model, x, target=1, baseline=0.5, n_steps=8)
    # exact for a linear f, up to Captum's float32 quadrature weights (they sum to 1 ± 1e-8)
    np.testing.assert_allclose(ig.raw, ((x - 0.5) * w).numpy(), rtol=1e-7, atol=0)
    assert ig.values.shape == (2, 4, 4) and ig.is_complete(1e-6)
    np.testing.assert_allclose(ig.values, ((x - 0.5) * w).sum(1).numpy(), rtol=1e-7, atol=1e-12)
    gxi = iv.attribute(model, x, target=1, method="gradient_x_input")
    np.testing.assert_allclose(gxi.raw, (x * w).numpy(), atol=1e-12)
    assert np.isnan(gxi.completeness()).all()
    sal = iv.attribute(model, x, target=1, method="saliency")
    np.testing.assert_allclose(sal.raw, w.abs().expand_as(x).numpy(), atol=1e-12)
    occ = iv.attribute(model, x, target=1, method="occlusion", window=2)
    patch_sum = (x * w).view(2, 2, 2, 2, 2, 2).sum((1, 3, 5))  # (B, 2, 2) per 2×2 patch
    expected = patch_sum.repeat_interleave(2, 1).repeat_interleave(2, 2)
    np.testing.assert_allclose(occ.raw[:, 0], expected.numpy(), atol=1e-12)  # every channel
    frame = ig.frame()
    assert list(frame.columns) == ["row", "y", "x", "value", "method"] and len(frame) == 32


@pytest.fixture(scope="module")
def lm() -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=12, n_ctx=16, d_model=32, n_layers=2,
                                         n_heads=4)).double().eval()  # fmt: skip


def test_tokens_equal_captum_on_a_hand_written_embedding_forward(lm):
    x = torch.randint(0, 12, (3, 10), generator=torch.Generator().manual_seed(1))

    def from_embeddings(e: torch.Tensor) -> torch.Tensor:
        s = e + lm.pos_embed[: e.shape[1]]
        return lm.unembed(lm.run_blocks(s))[:, -1, 4]

    emb = lm.embed(x).detach()
    expected, delta = IntegratedGradients(from_embeddings).attribute(
        emb, baselines=torch.zeros_like(emb), n_steps=64, return_convergence_delta=True
    )
    got = iv.attribute(lm, x, target=4, vocab=list("abcdefghijkl"))
    np.testing.assert_allclose(got.raw, expected.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(got.delta, delta.numpy(), atol=1e-6)  # Captum's, in float32
    np.testing.assert_allclose(got.values, expected.detach().sum(-1).numpy(), atol=1e-10)
    assert got.is_complete(1e-3), got.completeness()
    with torch.no_grad():
        np.testing.assert_allclose(got.output, from_embeddings(emb).numpy(), atol=1e-12)
    frame = got.frame()
    assert frame.token.iloc[0] == "abcdefghijkl"[int(x[0, 0])] and len(frame) == 30
    for method in ("gradient_x_input", "saliency", "occlusion"):
        r = iv.attribute(lm, x, target=4, method=method)
        assert r.values.shape == (3, 10) and np.isfinite(r.values).all()
    occ = iv.attribute(lm, x, target=4, method="occlusion")
    zeroed = emb.clone()
    zeroed[1, 6] = 0
    with torch.no_grad():
        drop = from_embeddings(emb)[1] - from_embeddings(zeroed)[1]
    assert occ.values[1, 6] == pytest.approx(float(drop), abs=1e-7)  # Captum sums in float32
    assert all(not m._forward_hooks for m in lm.modules())


def test_pixels_of_a_cnn_pass_completeness_and_callable_targets():
    cnn = CNN(CNNConfig(in_channels=1, n_classes=3, channels=(4, 8))).double().eval()
    img = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    r = iv.attribute(cnn, img, target=lambda out: out[:, 2] - out[:, 0], n_steps=128)
    assert r.values.shape == (2, 8, 8)
    assert r.is_complete(0.02), r.completeness()


def test_bad_attribution_input(lm):
    x = torch.randint(0, 12, (1, 5))
    with pytest.raises(ValueError, match="method must be one of"):
        iv.attribute(lm, x, target=1, method="lime")
    with pytest.raises(ValueError, match="no pad token"):
        iv.attribute(lm, x, target=1, baseline="pad")
    with pytest.raises(ValueError, match="cannot tell which module"):
        iv.attribute(nn.Sequential(nn.Embedding(4, 2), nn.Flatten()), x % 4, target=0)
