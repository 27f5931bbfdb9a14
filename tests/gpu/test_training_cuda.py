"""CUDA parity of training: the same seed on CPU and CUDA gives the same run (to float32
tolerance), batched seeds equal sequential seeds on CUDA, and divergence recovery works there."""

from __future__ import annotations

import pytest
import torch

from explorer.data import make_task
from explorer.models.mlp import MLP, MLPConfig
from explorer.models.transformer import Transformer, TransformerConfig
from explorer.train import MultiSeedTrainer, Recorder, Trainer, TrainingDiverged

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def mlp(seed: int) -> torch.nn.Module:
    return MLP(MLPConfig(in_dim=2, out_dim=2, depth=3, width=32, seed=seed))


def test_cpu_and_cuda_runs_agree():
    task = make_task("spirals", n=400)
    runs = {}
    for device in ("cpu", "cuda"):
        t = Trainer(mlp, task, lr=1e-2, device=device, batch_size=64)
        runs[device] = [m["loss"] for m in t.run(50)]
        assert t.model.layers[0].linear.weight.is_cuda == (device == "cuda")
    assert runs["cuda"] == pytest.approx(runs["cpu"], rel=1e-3, abs=1e-4)


def test_recorder_on_cuda_stores_cpu_snapshots():
    task = make_task("copy")
    cfg = TransformerConfig(
        vocab_size=task.meta["vocab_size"],
        n_ctx=task.meta["seq_len"],
        d_model=32,
        n_layers=2,
        n_heads=2,
    )
    t = Trainer(lambda s: Transformer(cfg), task, device="cuda", batch_size=32, lr=3e-3)
    r = Recorder(t, every=5)
    for _ in t.run(10):
        r.maybe_record()
    snap = r.latest
    assert not snap.predictions.is_cuda and all(not v.is_cuda for v in snap.attention.values())
    torch.testing.assert_close(
        snap.attention["blocks.0.attn.hook_pattern"].sum(-1), torch.ones(2, 2, task.meta["seq_len"])
    )


def test_batched_seeds_equal_sequential_on_cuda():
    task = make_task("moons", n=300)
    kw = dict(seeds=[0, 1, 2], lr=1e-2, batch_size=32, device="cuda", grad_clip=1.0)
    a = MultiSeedTrainer(mlp, task, mode="vmap", **kw)
    b = MultiSeedTrainer(mlp, task, mode="sequential", **kw)
    for _ in range(20):
        ra, rb = a.step(), b.step()
    assert [r["loss"] for r in ra] == pytest.approx([r["loss"] for r in rb], rel=1e-3, abs=1e-5)


def test_divergence_recovery_on_cuda():
    task = make_task("signal_1d")
    t = Trainer(lambda s: MLP(MLPConfig(in_dim=1, out_dim=1, depth=3, width=64, seed=s)), task,
                optimizer="sgd", lr=10.0, device="cuda")  # fmt: skip
    with pytest.raises(TrainingDiverged):
        for _ in t.run(100):
            pass
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
