"""Training the project's own models on its own tasks: multi-seed batching, recorded attention,
signal probes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.data import make_task
from explorer.models.mlp import MLP, MLPConfig
from explorer.models.transformer import Transformer, TransformerConfig
from explorer.train import MultiSeedTrainer, Recorder, Trainer


def small_mlp(seed: int) -> nn.Module:
    return MLP(MLPConfig(in_dim=2, out_dim=2, depth=2, width=16, seed=seed))


@pytest.mark.parametrize(
    ("batch_size", "optimizer", "clip"),
    [(None, "adam", None), (64, "sgd", 0.05), (32, "adamw", 1.0)],
)
def test_batched_seeds_equal_sequential_seeds(batch_size, optimizer, clip):
    task = make_task("spirals", n=300, seed=1)
    kw = dict(
        seeds=[0, 1, 2],
        lr=0.02,
        batch_size=batch_size,
        optimizer=optimizer,
        grad_clip=clip,
        eval_every=5,
    )
    batched = MultiSeedTrainer(small_mlp, task, mode="vmap", **kw)
    seq = MultiSeedTrainer(small_mlp, task, mode="sequential", **kw)
    for _ in range(20):
        rb, rs = batched.step(), seq.step()
    assert batched.mode == "vmap" and seq.mode == "sequential"
    for a, b in zip(rb, rs, strict=True):
        assert a["seed"] == b["seed"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-6)
    for ma, mb in zip(batched.models(), seq.models(), strict=True):
        for pa, pb in zip(ma.parameters(), mb.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)
    # seeds really differ, and each equals a single Trainer with that seed
    single = Trainer(
        small_mlp,
        task,
        seed=2,
        lr=0.02,
        batch_size=batch_size,
        optimizer=optimizer,
        grad_clip=clip,
        eval_every=5,
    )
    for _ in single.run(20):
        pass
    assert rb[2]["loss"] == pytest.approx(single.history[-1]["loss"], rel=1e-4, abs=1e-6)
    assert rb[0]["loss"] != rb[1]["loss"]
    df = batched.history_frame()
    assert list(df.columns[:2]) == ["seed", "step"] and set(df.seed) == {0, 1, 2}


def test_dropout_model_falls_back_to_sequential_with_a_reason():
    def factory(seed: int) -> nn.Module:
        return nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.2), nn.Linear(8, 2))

    task = make_task("moons", n=100)
    ms = MultiSeedTrainer(factory, task, seeds=[0, 1])
    assert ms.mode == "sequential" and "dropout" in ms.fallback_reason
    assert len(ms.step()) == 2
    with pytest.raises(ValueError, match="dropout"):
        MultiSeedTrainer(factory, task, seeds=[0, 1], mode="vmap")
    with pytest.raises(ValueError, match="distinct"):
        MultiSeedTrainer(factory, task, seeds=[1, 1])


def test_transformer_on_a_sequence_task_records_attention_patterns():
    task = make_task("copy")
    cfg = TransformerConfig(
        vocab_size=task.meta["vocab_size"],
        n_ctx=task.meta["seq_len"],
        d_model=32,
        n_layers=2,
        n_heads=2,
    )
    t = Trainer(lambda s: Transformer(cfg), task, lr=3e-3, batch_size=32, eval_samples=64)
    r = Recorder(t, every=5)
    for _ in t.run(10):
        r.maybe_record()
    snap = r.latest
    assert r.probe.kind == "sequence" and snap.step == 10
    pat = snap.attention["blocks.1.attn.hook_pattern"]
    assert pat.shape == (2, 2, task.meta["seq_len"], task.meta["seq_len"])
    torch.testing.assert_close(pat.sum(-1), torch.ones(pat.shape[:-1]))
    assert torch.triu(pat, diagonal=1).abs().max() == 0  # causal
    assert snap.predictions.shape == (2, task.meta["seq_len"], task.meta["vocab_size"])


def test_signal_fit_probe_is_the_full_grid():
    task = make_task("signal_1d")
    t = Trainer(
        lambda s: MLP(MLPConfig(in_dim=1, out_dim=1, depth=2, width=32, seed=s)), task, lr=1e-2
    )
    r = Recorder(t, every=10)
    first = r.record()
    for _ in t.run(30):
        r.maybe_record()
    n = task.meta["shape"][0]
    assert (
        r.probe.kind == "field"
        and first.predictions.shape == (n, 1)
        and r.probe.target.shape == (n, 1)
    )
    err0 = float((first.predictions - r.probe.target).pow(2).mean())
    err = float((r.latest.predictions - r.probe.target).pow(2).mean())
    assert err < err0


@pytest.mark.parametrize(("batch_size", "optimizer"), [(None, "adam"), (50, "sgd")])
def test_seed_trainers_split_off_and_batch_again_exactly(batch_size, optimizer):
    """seed_trainer() hands one seed to a Trainer and from_trainers() batches Trainers again;
    either way each seed continues exactly as the uninterrupted batched run."""
    task = make_task("spirals", n=300, seed=1)
    kw = dict(lr=0.02, batch_size=batch_size, optimizer=optimizer, eval_every=5)
    whole = MultiSeedTrainer(small_mlp, task, seeds=[0, 1, 2], **kw)
    for _ in whole.run(30):
        pass
    part = MultiSeedTrainer(small_mlp, task, seeds=[0, 1, 2], **kw)
    for _ in part.run(12):
        pass
    alone = part.seed_trainer(1)
    assert isinstance(alone, Trainer) and alone.global_step == 12 and len(alone.history) == 12
    for _ in alone.run(18):
        pass
    again = MultiSeedTrainer.from_trainers([part.seed_trainer(0), part.seed_trainer(2)])
    assert again.mode == "vmap" and again.seeds == [0, 2] and again.global_step == 12
    for _ in again.run(18):
        pass
    ref = whole.history_frame().set_index(["seed", "step", "metric"])["value"]
    got = again.history_frame().set_index(["seed", "step", "metric"])["value"]
    got_alone = alone.history_frame().assign(seed=1).set_index(["seed", "step", "metric"])["value"]
    for frame in (got, got_alone):
        frame = frame.drop(index="seconds", level="metric")
        assert len(frame) == len(ref.loc[frame.index])
        assert (frame - ref.loc[frame.index]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="same step"):
        MultiSeedTrainer.from_trainers([part.seed_trainer(0), whole.seed_trainer(2)])


@pytest.mark.parametrize(("batch_size", "why"), [(None, "slow per-sample"), (64, ".item()")])
def test_transformer_seeds_fall_back_to_sequential_with_the_reason(batch_size, why):
    """vmap cannot run the transformer on per-seed minibatches (``.item()`` in the embedding)
    and runs CPU attention through torch's slow per-sample fallback: "auto" trains the seeds
    one after another and says why."""
    task = make_task("induction")
    cfg = TransformerConfig(vocab_size=task.meta["vocab_size"], n_ctx=task.meta["seq_len"],
                            d_model=32, n_layers=1, n_heads=2)  # fmt: skip
    ms = MultiSeedTrainer(lambda s: Transformer(cfg), task, seeds=[0, 1], batch_size=batch_size)
    assert ms.mode == "sequential" and why in ms.fallback_reason
    assert [r["seed"] for r in ms.step()] == [0, 1]
