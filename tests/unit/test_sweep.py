"""Sweeps on the local backend, in this process: configs, name routing, the results directory,
resume and skip, failures kept apart, and the frames every view reads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from explorer.data import make_task
from explorer.models import MLPConfig
from explorer.train.runs import Run
from explorer.train.sweep import (
    Choice,
    LogUniform,
    RandInt,
    SweepPlan,
    SweepProgress,
    Uniform,
    expand_grid,
    load_sweep,
    run_sweep,
    sample_space,
)

MLP = MLPConfig(in_dim=2, out_dim=2, depth=2, width=8)
FAST = dict(steps=20, train={"eval_every": 5, "lr": 0.02}, progress=False, workers=0)


def test_grid_and_samples_expand_deterministically():
    grid = expand_grid({"width": [8, 16], "lr": [1e-3, 1e-2, 1e-1]})
    assert len(grid) == 6 and grid[0] == {"width": 8, "lr": 1e-3} and grid[-1]["width"] == 16
    space = {"lr": LogUniform(1e-4, 1e-1), "width": RandInt(4, 64), "act": ["relu", "tanh"],
             "p": Uniform(0.0, 0.5), "c": Choice((1, 2))}  # fmt: skip
    a, b = sample_space(space, 20, seed=3), sample_space(space, 20, seed=3)
    assert a == b and a != sample_space(space, 20, seed=4)
    assert all(1e-4 <= c["lr"] <= 1e-1 and 4 <= c["width"] <= 64 for c in a)
    assert {c["act"] for c in a} == {"relu", "tanh"}
    for bad, err in [({"w": []}, ValueError), ({"w": 3}, TypeError), ({"w": [1, 1]}, ValueError),
                     ({"w": [float("nan")]}, ValueError), ({"w": [[1]]}, TypeError)]:  # fmt: skip
        with pytest.raises(err):
            expand_grid(bad)
    with pytest.raises(ValueError, match="low < high"):
        LogUniform(1.0, 0.1)


def test_names_route_to_task_model_and_training_config():
    plan = SweepPlan("spirals", MLP, configs=[{"width": 16, "lr": 0.1, "noise": 0.3}],
                     seeds=[0, 1], steps=10, base={"depth": 3})  # fmt: skip
    assert plan.routes == {"depth": ("model", "depth"), "width": ("model", "width"),
                           "lr": ("train", "lr"), "noise": ("task", "noise")}  # fmt: skip
    task, factory, train = plan.build(plan.configs[0])
    assert train.lr == 0.1 and train.total_steps == 10 and task.meta["seed"] == 0
    model = factory(1)
    assert model.config.width == 16 and model.config.depth == 3 and model.config.seed == 1
    assert plan.trials[0].trial_id.endswith("-s0") and len(plan.trials) == 2
    with pytest.raises(ValueError, match="not a parameter"):
        SweepPlan("spirals", MLP, configs=[{"widht": 3}], seeds=[0], steps=5)
    with pytest.raises(ValueError, match="seeds="):
        SweepPlan("spirals", MLP, configs=[{"seed": 3}], seeds=[0], steps=5)
    with pytest.raises(ValueError, match="both fixed"):
        SweepPlan("spirals", MLP, configs=[{"width": 3}], seeds=[0], steps=5, base={"width": 4})
    with pytest.raises(ValueError, match="width"):  # a bad value fails here, not in a worker
        SweepPlan("spirals", MLP, configs=[{"width": 0}], seeds=[0], steps=5)
    with pytest.raises(TypeError, match="fresh model"):
        SweepPlan("spirals", nn.Linear(2, 2), configs=[{}], seeds=[0], steps=5)


def test_local_sweep_writes_frames_and_run_directories(tmp_path):
    seen: list[SweepProgress] = []
    result = run_sweep("spirals", MLP, grid={"width": [4, 8]}, seeds=[0, 1],
                       directory=tmp_path, **{**FAST, "progress": seen.append})  # fmt: skip
    trials = result.trials()
    assert list(trials["state"]) == ["done"] * 4 and (trials["step"] == 20).all()
    frame = result.frame()
    assert list(frame.columns) == ["width", "seed", "step", "metric", "value"]
    assert {"loss", "test_loss", "test_acc"} <= set(frame["metric"])
    assert set(frame["seed"]) == {0, 1} and frame["step"].max() == 20
    assert "seconds" not in set(frame["metric"])
    summary = result.summary()
    assert list(summary["width"]) == [4, 8] and (summary["count"] == 2).all()
    best = result.best()
    assert best["value"] == result.final()["value"].min()
    # progress: counts and the best value seen while running
    assert seen[-1].finished == 4 and seen[-1].running == 0 and seen[-1].best is not None
    assert any(p.running > 0 for p in seen) and "4/4 finished" in seen[-1].describe()
    # every trial is a run directory any lab can follow (labs' format)
    run = result.run(best["trial_id"])
    assert isinstance(run, Run) and run.steps[0] == 0 and run.steps[-1] == 20
    assert run.status["state"] == "done" and run.params["seed"] == best["seed"]
    model = run.model_at(20)
    assert model.config.width == best["width"] and model.config.seed == best["seed"]
    ev = result.evaluation(best["trial_id"])
    assert ev.predictions.shape[1] == 2 and np.allclose(ev.predictions.sum(1), 1, atol=1e-5)
    assert list(ev.representations) == ["layers.1.hook_post"]
    assert ev.representations["layers.1.hook_post"].shape == (len(ev.targets), best["width"])
    # the same numbers as a plain Trainer run of that seed
    from explorer.train import Trainer

    t = Trainer(lambda s: __import__("explorer.models").models.MLP(
        MLPConfig(**{**MLP.__dict__, "width": int(best["width"]), "seed": s})),
        make_task("spirals"), lr=0.02, eval_every=5, total_steps=20, seed=int(best["seed"]))  # fmt: skip
    for _ in t.run(20):
        pass
    assert t.history[-1]["test_loss"] == pytest.approx(best["value"], abs=1e-5)


def test_rerun_skips_finished_trials_and_adds_new_ones(tmp_path):
    kw = dict(task="spirals", model=MLP, grid={"width": [4]}, directory=tmp_path, **FAST)
    run_sweep(**kw, seeds=[0])
    record = tmp_path / "trials"
    before = {p.name: p.read_text() for p in record.glob("*.json")}
    again = run_sweep(**kw, seeds=[0, 1])
    after = {p.name: p.read_text() for p in record.glob("*.json")}
    assert {k: after[k] for k in before} == before  # untouched: skipped
    assert len(after) == 2 and list(again.trials()["state"]) == ["done", "done"]
    spec = json.loads((tmp_path / "sweep.json").read_text())
    assert spec["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="different base"):
        run_sweep(**{**kw, "steps": 30}, seeds=[0])
    with pytest.raises(ValueError, match="different base"):
        run_sweep(**{**kw, "model": MLPConfig(in_dim=2, out_dim=2, depth=3)}, seeds=[0])


def _nan_for_seed_one(width: int, seed: int) -> nn.Module:
    model = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))
    if seed == 1:
        with torch.no_grad():
            model[0].weight[0, 0] = float("nan")
    if width == 5:
        raise RuntimeError("this config cannot be built")
    return model


def test_a_failing_trial_is_recorded_and_the_others_go_on(tmp_path):
    result = run_sweep("moons", _nan_for_seed_one, grid={"width": [4, 5]}, seeds=[0, 1, 2],
                       directory=tmp_path, **FAST)  # fmt: skip
    table = result.trials().set_index(["width", "seed"])["state"]
    # seed 1 diverges inside the vmap batch of width 4; seeds 0 and 2 finish; width 5 fails
    assert table[(4, 0)] == table[(4, 2)] == "done"
    assert table[(4, 1)] == "diverged"
    assert (table.loc[5] == "failed").all()
    errors = result.trials().set_index(["width", "seed"])["error"]
    assert errors[(4, 1)].startswith("TrainingDiverged") and "cannot be built" in errors[(5, 0)]
    assert "Traceback" in errors[(5, 0)]
    # failed trials run again on the next call; finished and diverged ones do not
    again = run_sweep("moons", _nan_for_seed_one, grid={"width": [4, 5]}, seeds=[0, 1, 2],
                      directory=tmp_path, **FAST)  # fmt: skip
    attempts = again.trials().set_index(["width", "seed"])["attempt"]
    assert attempts[(4, 0)] == attempts[(4, 1)] == 1 and attempts[(5, 0)] == 2
    # a user model without hook points: its last child's output (observe.default_layers)
    ev = again.evaluation(again.trials().set_index(["width", "seed"]).loc[(4, 0), "trial_id"])
    assert list(ev.representations) == ["2"] and ev.predictions.shape[1] == 2
    assert ev.representations["2"].shape == (len(ev.predictions), 2)


def test_a_trial_resumes_exactly_from_its_last_checkpoint(tmp_path):
    kw = dict(task="spirals", model=MLP, grid={"width": [8]}, seeds=[0, 1], checkpoint_every=5,
              **{**FAST, "train": {"eval_every": 5, "lr": 0.02, "batch_size": 32}})  # fmt: skip
    whole = run_sweep(**kw, directory=tmp_path / "whole")
    part = run_sweep(**kw, directory=tmp_path / "part")
    # emulate the worker of this config killed at step 13: roll both seeds back to their
    # checkpoint at step 10, leaving the snapshots, history rows and final files a dead
    # worker would have left behind
    for tid in part.trials()["trial_id"]:
        rundir = tmp_path / "part" / "runs" / tid
        for step in (15, 20):
            (rundir / "checkpoints" / f"step_{step:08d}.safetensors").unlink()
        stale = rundir / "snapshots" / f"step_{13:08d}.safetensors"  # off the record schedule
        shutil.copy(rundir / "snapshots" / f"step_{14:08d}.safetensors", stale)
        path = tmp_path / "part" / "trials" / f"{tid}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "state": "running"}))
    again = run_sweep(**kw, directory=tmp_path / "part")
    assert (again.trials()["attempt"] == 2).all()
    assert not stale.exists() and again.run(tid).steps == whole.run(tid).steps
    a, b = whole.frame(), again.frame()
    assert len(a) == len(b) and np.abs(a["value"].to_numpy() - b["value"].to_numpy()).max() < 1e-6


def test_bad_arguments_fail_before_anything_is_written(tmp_path):
    target = tmp_path / "nothing"
    for kwargs, err in [
        (dict(backend="spark"), ValueError),
        (dict(workers=-1), ValueError),
        (dict(max_failures=-1), ValueError),
        (dict(samples={"lr": LogUniform(1e-3, 1e-1)}), ValueError),  # no n_samples
        (dict(seeds=[0, 0]), ValueError),
        (dict(mode="best"), ValueError),
        (dict(progress="yes"), TypeError),
    ]:
        with pytest.raises(err):
            run_sweep("spirals", MLP, directory=target, **{**FAST, **kwargs})
    assert not target.exists()
    with pytest.raises(FileNotFoundError, match="no sweep"):
        load_sweep(tmp_path)


def test_streamed_cka_equals_all_at_once_and_holds_two_blocks_at_most():
    import weakref

    from explorer.analysis.alignment import cka_matrix
    from explorer.analysis.sweep import stream_cka

    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 6))
    reps = {f"t{i}": base @ rng.normal(size=(6, 5 + i)) + 0.3 * i * rng.normal(size=(64, 5 + i))
            for i in range(7)}  # fmt: skip
    live, peak = [0], [0]

    def load(tid: str) -> np.ndarray:
        arr = reps[tid].copy()
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        weakref.finalize(arr, lambda: live.__setitem__(0, live[0] - 1))
        return arr

    full = cka_matrix(list(reps.values()))
    for block in (1, 2, 3, 7):
        peak[0] = 0
        got = stream_cka(load, list(reps), block=block)
        np.testing.assert_allclose(got, full, atol=1e-12)
        assert peak[0] <= 2 * block, (block, peak[0])
    assert live[0] == 0
    reps["t3"] = np.zeros((64, 8))  # a dead layer: no CKA with anything, the rest unchanged
    got = stream_cka(load, list(reps), block=2)
    assert np.isnan(got[3]).all() and np.isnan(got[:, 3]).all()
    keep = [0, 1, 2, 4, 5, 6]
    np.testing.assert_allclose(got[np.ix_(keep, keep)], full[np.ix_(keep, keep)], atol=1e-12)


def test_seed_and_config_cka_and_disagreement_of_a_sweep(tmp_path):
    from explorer.analysis.sweep import (
        config_cka,
        disagreement_summary,
        seed_cka,
        seed_disagreement,
    )

    result = run_sweep("spirals", MLP, grid={"width": [8, 16]}, seeds=[0, 1, 2],
                       directory=tmp_path, **{**FAST, "steps": 40})  # fmt: skip
    sc = seed_cka(result)
    assert list(sc.columns) == ["width", "seed_a", "seed_b", "metric", "value"]
    mats = {w: g.pivot(index="seed_a", columns="seed_b", values="value").to_numpy()
            for w, g in sc.groupby("width")}  # fmt: skip
    for m in mats.values():
        assert m.shape == (3, 3) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T)
        assert (m[~np.eye(3, dtype=bool)] < 1 - 1e-6).all()  # seeds really differ
    # one entry checked against the CKA function on the stored representations
    from explorer.analysis.alignment import linear_cka

    ids = result.trials().set_index(["width", "seed"])["trial_id"]
    reps = [result.evaluation(ids[(8, s)]).representations["layers.1.hook_post"] for s in (0, 2)]
    assert mats[8][0, 2] == pytest.approx(linear_cka(*reps), abs=1e-10)
    cc = config_cka(result, seeds=[1])
    assert set(cc["config_a"]) == {"width=8", "width=16"} and len(cc) == 4
    dis = seed_disagreement(result).pivot_table(index=["width", "example"], columns="metric",
                                                values="value")  # fmt: skip
    assert set(np.round(dis["disagreement"] * 3, 6)) <= {0, 2}  # 0 or 2 of 3 pairs disagree
    assert set(np.round(dis["error"] * 3, 6)) <= {0, 1, 2, 3}
    summary = disagreement_summary(result)
    assert list(summary["width"]) == [8, 16]
    assert np.allclose(summary["error"], dis.groupby(level="width")["error"].mean())
