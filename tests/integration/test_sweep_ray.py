"""A sweep on a real two-node Ray cluster (head + a second ``ray start --address`` node on
127.0.0.1): a worker killed mid-sweep takes down one Tune trial (the seeds of one config,
batched) — they are recorded as failed, the others finish; a rerun skips the finished trials
and resumes the killed ones from their checkpoints; the numbers equal the local backend's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.models import MLPConfig
from explorer.train.sweep import run_sweep

pytest.importorskip(
    "ray.tune", reason="the scale extra is not installed: pip install -e '.[scale]'"
)

from sweep_support import RayCluster, WorkerKiller

SWEEP = dict(
    task="spirals",
    model=MLPConfig(in_dim=2, out_dim=2, depth=2, width=16),
    grid={"width": [8, 16]},
    seeds=[0, 1, 2],
    steps=240,
    checkpoint_every=40,
    train={"batch_size": 64, "lr": 0.02, "eval_every": 20},
    progress=False,
)


def test_ray_sweep_survives_a_killed_worker_and_resumes(tmp_path, monkeypatch):
    directory = tmp_path / "sweep"
    with RayCluster(nodes=2, cpus=1) as cluster:
        monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        with WorkerKiller(directory, min_step=80) as killer:
            first = run_sweep(
                **SWEEP, directory=directory, backend="ray", address=cluster.address,
                max_failures=0,
            )  # fmt: skip
        killed = killer.killed
        assert killed, "no trial was running past step 80 to kill: the test proved nothing"
        table = first.trials().set_index("trial_id")
        killed_config = str(killed["trial"]).rsplit("-s", 1)[0]
        hit = table.index.str.startswith(killed_config)
        assert set(table["state"]) <= {"done", "failed"}
        assert (table[hit]["state"] == "failed").all() and hit.sum() == 3
        assert all("fail" in e.lower() for e in table[hit]["error"])
        assert (table[~hit]["state"] == "done").all()
        nodes = {json.loads(p.read_text()).get("node") for p in (directory / "trials").glob("*")}
        assert len(nodes) == 2, f"the trials ran on {len(nodes)} node(s), expected both"
        done_before = {
            tid: (directory / "trials" / f"{tid}.json").read_text()
            for tid in table.index[table["state"] == "done"]
        }

        second = run_sweep(**SWEEP, directory=directory, backend="ray", address=cluster.address)
    table = second.trials().set_index("trial_id")
    assert (table["state"] == "done").all()
    for tid, text in done_before.items():  # finished trials were skipped, records untouched
        assert (directory / "trials" / f"{tid}.json").read_text() == text
    assert (table[hit]["attempt"] == 2).all() and (table[~hit]["attempt"] == 1).all()

    # the killed trials resumed from their last checkpoints: every step once, and the numbers
    # of the whole sweep equal the local backend's (the same groups of seeds, batched)
    history = second.run(str(killed["trial"])).history_frame()
    steps = history[history["metric"] == "loss"]["step"]
    assert list(steps) == list(range(1, SWEEP["steps"] + 1))
    local = run_sweep(**SWEEP, directory=tmp_path / "local", backend="local", workers=0)
    a, b = second.frame(), local.frame()
    assert len(a) == len(b) > 0
    assert (a.drop(columns="value") == b.drop(columns="value")).all().all()
    assert np.abs(a["value"].to_numpy() - b["value"].to_numpy()).max() < 1e-5
