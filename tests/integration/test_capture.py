"""Capture on every built-in model: no hooks left behind, streaming over a task, and the fused
attention path trains exactly like the explicit one."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from explorer.data import make_task
from explorer.models import (
    CNN,
    MLP,
    ConvDecoder,
    NeuralField,
    Transformer,
    TransformerConfig,
    ViT,
    capture,
    capture_stream,
    hook_names,
)

MODELS = [
    (MLP, torch.randn(4, 2)),
    (NeuralField, torch.rand(4, 2)),
    (Transformer, torch.randint(0, 16, (2, 6))),
    (CNN, torch.rand(2, 1, 8, 8)),
    (ConvDecoder, torch.rand(1, 32, 4, 4)),
    (ViT, torch.rand(2, 1, 8, 8)),
]


@pytest.mark.parametrize(("cls", "inputs"), MODELS, ids=[c.__name__ for c, _ in MODELS])
def test_capture_everything_then_no_hooks_remain(cls, inputs):
    model = cls()
    cache = capture(model, inputs)
    assert list(cache) == hook_names(model)
    assert all(torch.isfinite(t).all() for t in cache.values())
    assert not any(m._forward_hooks for m in model.modules())
    torch.testing.assert_close(cache.output, model(inputs))


def test_stream_layer_means_over_a_task_equal_full_batch():
    task = make_task("shapes", n=400, size=8)
    model = ViT(n_classes=6)
    sums: dict[str, torch.Tensor] = {}

    def accumulate(_i, cache):
        for name, t in cache.items():
            sums[name] = sums.get(name, 0) + t[:, 0].double().sum(0)  # CLS token

    batches = (x for x, _ in task.batches(32, split="test", shuffle=False))
    capture_stream(model, batches, ["blocks.*.hook_resid_post"], accumulate)
    full = capture(model, task.x_test, ["blocks.*.hook_resid_post"])
    for name, total in sums.items():
        torch.testing.assert_close(total / task.n_test, full[name][:, 0].double().mean(0))


def _train(model, task, steps, observe: bool):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    handles = []
    if observe:  # an attached hook switches every layer to the explicit path
        for block in model.blocks:
            handles.append(block.attn.hook_pattern.register_forward_hook(lambda *a: None))
    losses = []
    try:
        for step in range(steps):
            x, y = next(task.batches(32, seed=step))
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        for h in handles:
            h.remove()
    return losses


def test_fused_and_explicit_paths_train_the_same_and_learn():
    task = make_task("copy", n=256, length=4, n_symbols=4)
    cfg = TransformerConfig(vocab_size=task.meta["vocab_size"], n_ctx=16, d_model=32,
                            n_heads=2, n_layers=2, attention=["softmax", "linear"], seed=0)  # fmt: skip
    fused = _train(Transformer(cfg), task, 25, observe=False)
    explicit = _train(Transformer(cfg), task, 25, observe=True)
    assert fused == pytest.approx(explicit, rel=2e-3, abs=2e-4)
    assert sum(fused[-5:]) / 5 < 0.85 * sum(fused[:5]) / 5
