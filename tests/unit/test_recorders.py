"""Recorder: snapshots, replay lookup, memory bound policies, probes, thread safety."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from explorer.train import Probe, Recorder, Trainer, default_probe


def blob_task(n: int = 120, n_classes: int = 3) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, n)
    x = (rng.normal(size=(n, 2)) * 0.3 + np.stack([np.cos(y * 2.1), np.sin(y * 2.1)], 1)).astype(
        np.float32
    )
    return SimpleNamespace(
        name="blobs",
        kind="classification",
        x_train=x[:90],
        y_train=y[:90],
        x_test=x[90:],
        y_test=y[90:],
        meta={"loss": "ce", "n_classes": n_classes},
    )


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))


def test_maybe_record_follows_every_and_at_finds_the_last_snapshot_before():
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=5, probe=Probe("points", torch.zeros(4, 2)))
    assert r.maybe_record() is not None  # step 0
    assert r.maybe_record() is None  # same step twice
    for _ in t.run(23):
        r.maybe_record()
    assert r.steps == [0, 5, 10, 15, 20]
    assert r.at(14).step == 10 and r.at(15).step == 15 and r.at(10_000).step == 20
    assert r.latest is r.at(20)
    with pytest.raises(KeyError, match="no snapshot"):
        r.at(-1)
    assert r.at(20).metrics["step"] == 20


def test_snapshots_are_copies_and_predictions_are_probabilities_on_the_grid():
    task = blob_task()
    t = Trainer(mlp, task, lr=0.05)
    r = Recorder(t, every=1, activations=["1"])
    snap = r.record()
    assert r.probe.kind == "surface" and r.probe.shape == (64, 64)
    assert snap.predictions.shape == (64 * 64, 3)
    torch.testing.assert_close(snap.predictions.sum(1), torch.ones(64 * 64))
    assert snap.activations["1"].shape == (64 * 64, 8) and (snap.activations["1"] >= 0).all()
    ref = t.predict(r.probe.inputs).softmax(-1)
    torch.testing.assert_close(snap.predictions, ref)
    w = snap.params["0.weight"].clone()
    for _ in t.run(5):
        pass
    assert torch.equal(snap.params["0.weight"], w)
    assert not torch.equal(t.model[0].weight.detach(), w)
    assert snap.nbytes == sum(v.nelement() * 4 for v in snap.params.values()) + 4 * (
        64 * 64 * 3 + 64 * 64 * 8
    )


def test_surface_probe_covers_the_data_with_rows_along_the_second_coordinate():
    task = blob_task()
    p = default_probe(task, resolution=5, margin=0.0)
    x = np.concatenate([task.x_train, task.x_test])
    assert p.extent == pytest.approx(
        (x[:, 0].min(), x[:, 0].max(), x[:, 1].min(), x[:, 1].max()), rel=1e-6
    )
    grid = p.inputs.reshape(5, 5, 2)
    assert torch.all(grid[:, 1:, 0] > grid[:, :-1, 0])  # columns: first coordinate increases
    assert torch.all(grid[1:, :, 1] > grid[:-1, :, 1])  # rows: second coordinate increases
    with pytest.raises(ValueError, match="resolution"):
        default_probe(task, resolution=1)


def test_points_probe_for_non_2d_inputs():
    rng = np.random.default_rng(0)
    task = SimpleNamespace(
        name="d",
        kind="classification",
        x_train=rng.normal(size=(50, 5)).astype(np.float32),
        y_train=rng.integers(0, 2, 50),
        x_test=rng.normal(size=(20, 5)).astype(np.float32),
        y_test=rng.integers(0, 2, 20),
        meta={},
    )
    p = default_probe(task, n_points=8)
    assert p.kind == "points" and p.inputs.shape == (8, 5) and p.target.shape == (8,)


@pytest.mark.parametrize("policy", ["ring", "thin"])
def test_memory_bound(policy):
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=1, probe=None)
    one = r.record().nbytes
    r.clear()
    r = Recorder(t, every=1, probe=None, max_bytes=one * 10, policy=policy)
    for _ in range(40):
        r.maybe_record()
        t.step()
    assert r.nbytes <= one * 10 and len(r) <= 10
    if policy == "ring":
        assert r.steps == list(range(30, 40))
    else:
        steps = r.steps
        assert steps[0] == 0 and steps[-1] >= 32  # still spans the whole run
        assert len(set(np.diff(steps[:-1]))) == 1  # evenly spaced
        assert r.every > 1


def test_oversized_snapshot_and_bad_arguments_are_rejected():
    t = Trainer(mlp, blob_task())
    with pytest.raises(ValueError, match="max_bytes"):
        Recorder(t, max_bytes=64).record()
    with pytest.raises(ValueError, match="policy"):
        Recorder(t, policy="lru")
    with pytest.raises(ValueError, match="every"):
        Recorder(t, every=0)
    with pytest.raises(ValueError, match="attention=True"):
        Recorder(t, attention=True).record()
    with pytest.raises(ValueError, match="no module"):
        Recorder(t, activations=["blocks.*"]).record()


def test_concurrent_recording_and_reading():
    t = Trainer(mlp, blob_task())
    r = Recorder(t, every=1, probe=None, max_bytes=20 * 1024, policy="thin")
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                steps = r.steps
                if steps:
                    assert r.at(steps[-1]).step <= steps[-1]
                    list(r)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    th = threading.Thread(target=reader)
    th.start()
    for _ in range(60):
        t.step()
        r.maybe_record()
    done.set()
    th.join()
    assert not errors and r.nbytes <= 20 * 1024


def test_subscribe_calls_back_after_every_recording_until_unsubscribed():
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=5)
    seen: list[int] = []
    unsubscribe = r.subscribe(lambda s: seen.append(s.step))
    r.record()
    for _ in t.run(10):
        r.maybe_record()
    assert seen == [0, 5, 10]
    unsubscribe()
    unsubscribe()  # twice is fine
    r.record()
    assert seen == [0, 5, 10]
    with pytest.raises(TypeError, match="callable"):
        r.subscribe(3)  # type: ignore[arg-type]


def test_a_failing_subscriber_warns_and_recording_goes_on():
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=1)
    seen: list[int] = []

    def broken(_snap):
        raise RuntimeError("view gone")

    r.subscribe(broken)
    r.subscribe(lambda s: seen.append(s.step))
    with pytest.warns(RuntimeWarning, match="view gone"):
        r.record()
    assert seen == [0] and len(r) == 1


def test_run_id_changes_with_a_new_run_and_truncate_restore_keep_order():
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=2)
    r.record()
    for _ in t.run(6):
        r.maybe_record()
    snaps = list(r)
    run = r.run_id
    r.truncate(3)
    assert r.steps == [0, 2] and r.nbytes == sum(s.nbytes for s in snaps[:2])
    r.clear()
    assert r.run_id == run + 1 and len(r) == 0
    r.restore(reversed(snaps))
    assert r.steps == [0, 2, 4, 6] and r.latest is snaps[-1]
