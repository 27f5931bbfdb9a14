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


def bn_mlp() -> nn.Module:  # running statistics: buffers that change while training
    return nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("factory", [mlp, bn_mlp])
def test_deferred_observations_equal_eager_ones_and_run_only_when_read(factory):
    task = blob_task()
    recorders = []
    for lazy in (True, False):
        torch.manual_seed(0)
        t = Trainer(factory, task, lr=0.05, seed=0)
        r = Recorder(t, every=3, activations=["0"], lazy=lazy)
        calls = [0]
        t.model[0].register_forward_hook(lambda *_, c=calls: c.__setitem__(0, c[0] + 1))
        for _ in t.run(30):
            r.maybe_record()
        recorders.append((r, calls[0]))
    (lazy_r, lazy_calls), (eager_r, eager_calls) = recorders
    # the same training forwards in both; one per snapshot eagerly, only the first's lazily
    assert eager_calls - lazy_calls == len(eager_r) - 1 > 5
    assert "deferred" in repr(lazy_r.at(15)) and "observed" in repr(eager_r.at(15))
    assert lazy_r.steps == eager_r.steps
    for step in reversed(lazy_r.steps):  # any order: each loads its own parameters and buffers
        a, b = lazy_r.at(step), eager_r.at(step)
        assert torch.equal(a.predictions, b.predictions)
        assert a.activations.keys() == b.activations.keys() == {"0"}
        assert torch.equal(a.activations["0"], b.activations["0"])
    assert "observed" in repr(lazy_r.at(15))
    assert not torch.equal(lazy_r.at(3).predictions, lazy_r.at(30).predictions)


def test_a_deferred_snapshot_counts_its_observations_in_the_memory_bound():
    t = Trainer(bn_mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=1)
    first = r.record()
    for _ in t.run(1):
        pass
    deferred = r.record()
    assert "deferred" in repr(deferred)
    buffers = sum(b.nelement() * b.element_size() for b in t.model.buffers())
    assert deferred.nbytes == first.nbytes + buffers  # fixed before it is observed
    assert deferred.predictions.shape == first.predictions.shape
    assert r.nbytes == first.nbytes + deferred.nbytes


def test_a_deferred_snapshot_read_from_many_threads_is_observed_once():
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=1)
    r.record()
    for _ in t.run(2):
        pass
    snap = r.record()
    shadow = r._shadow[0].model  # the model copy that observes deferred snapshots
    calls = [0]
    shadow.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    barrier = threading.Barrier(4)
    seen = []

    def read() -> None:
        barrier.wait()
        seen.append(snap.predictions)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert calls[0] == 1 and all(p is seen[0] for p in seen)


def test_observations_stay_eager_where_deferring_would_not_be_exact():
    task = blob_task()
    t64 = Trainer(lambda: mlp().double(), task, lr=0.05)  # float32 copies round float64
    r64 = Recorder(t64, every=1)
    r64.record()
    assert "observed" in repr(r64.record())
    no_params = Recorder(Trainer(mlp, task, lr=0.05), every=1, params=False)
    no_params.record()
    assert "observed" in repr(no_params.record())
    with pytest.raises(TypeError, match="lazy"):
        Recorder(t64, lazy="yes")


def test_settings_changed_mid_run_take_effect_at_the_next_snapshot():
    t = Trainer(mlp, blob_task(), lr=0.05)
    r = Recorder(t, every=1)
    r.record()
    assert "deferred" in repr(r.record())
    r.lazy = False
    assert "observed" in repr(r.record())
    r.lazy, r.keep_params = True, False
    snap = r.record()
    assert not snap.params and snap.predictions is not None and "observed" in repr(snap)
