"""Run directories (RunWriter → Run) and snapshot sources: written, read back bit-exact,
followed while they grow, and every kind of source turned into one protocol."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from explorer.data import make_task, user_task
from explorer.models.registry import model_for_task
from explorer.train import (
    ModelSource,
    Recorder,
    RecorderSource,
    Run,
    RunWriter,
    Trainer,
    as_source,
)
from explorer.train.runs import RunError, find_runs


def _trained(tmp_path, steps: int = 30, name: str = "run"):
    task = make_task("copy", n=200)
    trainer = Trainer(model_for_task(task, d_model=16, n_heads=2, n_layers=1), task, lr=3e-3)
    recorder = Recorder(trainer, every=10)
    writer = RunWriter(tmp_path / name, model=trainer.model, task=task, config=trainer.config,
                       task_spec={"n": 200}, params={"lr": 3e-3}, probe=recorder.probe)  # fmt: skip
    recorder.subscribe(writer.write_snapshot)
    recorder.record()
    for _ in trainer.run(steps):
        recorder.maybe_record()
    writer.save(trainer, state="done")
    return trainer, recorder, writer


def test_a_written_run_reads_back_exactly(tmp_path):
    trainer, recorder, _ = _trained(tmp_path)
    run = Run(tmp_path / "run")
    assert run.steps == recorder.steps == [0, 10, 20, 30] and run.checkpoint_steps == [30]
    assert run.params == {"lr": 3e-3} and run.status["state"] == "done" and run.notes == ()
    for step in run.steps:
        a, b = run.snapshot(step), recorder.at(step)
        assert a.metrics == pytest.approx(b.metrics)
        for group in ("params", "attention"):
            ga, gb = getattr(a, group), getattr(b, group)
            assert ga.keys() == gb.keys() and all(torch.equal(ga[k], gb[k]) for k in ga)
        assert torch.equal(a.predictions, b.predictions)
    assert run.at(25).step == 20 and run.latest.step == 30
    with pytest.raises(KeyError, match="no snapshot at or before step -1"):
        run.at(-1)
    hist = run.history()
    assert len(hist) == 30 and hist[-1]["loss"] == pytest.approx(trainer.history[-1]["loss"])
    assert set(run.history_frame().columns) == {"step", "metric", "value"}
    x = torch.randint(0, 9, (4, 16))
    with torch.no_grad():
        np.testing.assert_allclose(run.model_at(30)(x), trainer.model.eval()(x), atol=1e-6)
        at20 = run.model_at(20)(x)  # from the snapshot's parameters: no checkpoint at 20
    assert not torch.allclose(at20, run.model_at(30)(x))
    assert run.probe.kind == "sequence" and torch.equal(run.probe.inputs, recorder.probe.inputs)
    assert run.task.x_test.shape[1] == 16 and run.task.meta["vocab"] == trainer.task.meta["vocab"]
    full = run.full_task()  # rebuilt from the generator keywords
    assert torch.equal(full.x_train, trainer.task.x_train)
    assert find_runs(tmp_path) == [tmp_path / "run"]


def test_truncate_forgets_everything_after_a_step(tmp_path):
    _trained(tmp_path)
    writer = RunWriter(tmp_path / "run", exist_ok=True)
    writer.write_checkpoint(20, Run(tmp_path / "run").model_at(20))
    writer.truncate(20)
    run = Run(tmp_path / "run")
    assert run.steps == [0, 10, 20] and run.checkpoint_steps == [20]
    assert run.history_frame().step.max() == 20 and len(run.history()) == 20


def test_writing_twice_to_a_run_is_refused_unless_appending(tmp_path):
    _trained(tmp_path)
    with pytest.raises(RunError, match="already holds a run"):
        RunWriter(tmp_path / "run")
    RunWriter(tmp_path / "run", exist_ok=True).set_status("diverged", 31, "loss became inf")
    run = Run(tmp_path / "run")
    assert run.steps == [0, 10, 20, 30] and "diverged at step 31" in run.notes[0]


def _followers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "xp-run-follow"]


def test_a_run_is_followed_while_it_grows(tmp_path):
    task = make_task("moons", n=100)
    trainer = Trainer(model_for_task(task, depth=1, width=4), task)
    recorder = Recorder(trainer, every=5)
    writer = RunWriter(tmp_path / "live", model=trainer.model, task=task, probe=recorder.probe)
    recorder.subscribe(writer.write_snapshot)
    recorder.record()
    run = Run(tmp_path / "live", poll_s=0.05)
    seen: list[int] = []
    others = set(_followers())  # (other tests' runs may still be followed in this process)
    unsubscribe = run.subscribe(lambda s: seen.append(s.step))
    (poller,) = set(_followers()) - others
    for _ in trainer.run(20):
        recorder.maybe_record()
    deadline = time.monotonic() + 10
    while seen[-1:] != [20] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen == [5, 10, 15, 20]  # the snapshot at step 0 was there before subscribing
    unsubscribe()  # the last subscriber gone: the polling thread has ended when this returns
    assert not poller.is_alive()
    # no temporary file is ever listed as a step; a file never seen half-written
    (tmp_path / "live" / "snapshots" / ".step_00000025.safetensors.x.tmp").write_bytes(b"junk")
    assert run.steps == [0, 5, 10, 15, 20]


def test_user_module_runs_need_the_model_to_rebuild(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    task = user_task((x, (x[:, 0] > 0).astype(int)))
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    trainer = Trainer(net, task)
    writer = RunWriter(tmp_path / "mine", model=net, task=task, config=trainer.config)
    for _ in trainer.run(3):
        pass
    writer.save(trainer)
    with pytest.raises(RunError, match="pass the model"):
        Run(tmp_path / "mine").model_at(3)
    template = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model = Run(tmp_path / "mine", model=template).model_at(3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), net.parameters()))
    assert not torch.equal(template[0].weight, net[0].weight)  # the template is not changed
    full = Run(tmp_path / "mine").full_task()  # user data is stored whole
    assert torch.equal(full.x_train, task.x_train) and full.meta["n_classes"] == 2


def test_foreign_and_broken_directories_fail_clearly(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        Run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(RunError, match=r"this explorer reads 'explorer\.run'"):
        Run(tmp_path)


def test_sources_from_every_kind_of_input(tmp_path):
    trainer, recorder, _ = _trained(tmp_path)
    src = as_source(recorder)
    assert isinstance(src, RecorderSource) and src.steps == recorder.steps
    assert src.task is trainer.task and src.history()[-1] == trainer.history[-1]
    assert isinstance(as_source(tmp_path / "run"), Run)
    lab_like = type("LabLike", (), {"recorder": recorder})()
    assert as_source(lab_like).recorder is recorder
    model = trainer.model
    ms = as_source((model, trainer.task.x_test[:3]))
    assert isinstance(ms, ModelSource) and ms.steps == [0]
    assert list(ms.latest.attention) == ["blocks.0.attn.hook_pattern"]
    assert ms.latest.predictions.shape == (3, 16, 9) and ms.model_at(0) is model
    bare = as_source(model)
    assert bare.latest.params.keys() == dict(model.named_parameters()).keys()
    assert bare.latest.predictions is None
    with pytest.raises(TypeError, match="cannot follow a int"):
        as_source(3)
    with pytest.raises(FileNotFoundError, match="no run directory or model folder"):
        as_source(tmp_path / "nothing")


def test_recorder_source_follows_a_rebuilt_trainer_not_a_frozen_task(tmp_path):
    task_a, task_b = make_task("moons", n=100), make_task("circles", n=120)
    trainer = Trainer(model_for_task(task_a), task_a)
    recorder = Recorder(trainer, every=5)
    src = as_source(recorder)
    run0 = src.run_id
    recorder.retarget(Trainer(model_for_task(task_b), task_b))
    assert src.task is task_b and src.run_id != run0
