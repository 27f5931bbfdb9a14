"""The local backend with real worker processes: configs spread over the pool, a worker
killed mid-sweep costs only its trials' steps since their last checkpoint (they resume on a
fresh worker), and the numbers equal an in-process run of the same seeds."""

from __future__ import annotations

import numpy as np
from sweep_support import WorkerKiller

from explorer.models import MLPConfig
from explorer.train.sweep import run_sweep

SWEEP = dict(
    task="spirals",
    model=MLPConfig(in_dim=2, out_dim=2, depth=2, width=16),
    grid={"width": [8, 16]},
    seeds=[0, 1],
    steps=200,
    checkpoint_every=25,
    train={"batch_size": 64, "lr": 0.02, "eval_every": 20},
    progress=False,
)


def test_worker_pool_survives_a_killed_worker(tmp_path):
    with WorkerKiller(tmp_path / "pool", min_step=50) as killer:
        pool = run_sweep(**SWEEP, directory=tmp_path / "pool", workers=2, max_failures=1)
    assert killer.killed, "no trial was running past step 50 to kill: the test proved nothing"
    table = pool.trials().set_index("trial_id")
    assert (table["state"] == "done").all()
    assert table.loc[killer.killed["trial"], "attempt"] == 2  # resumed on a fresh worker
    assert len(set(table["attempt"])) == 2  # the other worker's trials ran once
    history = pool.run(str(killer.killed["trial"])).history_frame()
    assert list(history[history["metric"] == "loss"]["step"]) == list(range(1, 201))
    here = run_sweep(**SWEEP, directory=tmp_path / "here", workers=0)
    a, b = pool.frame(), here.frame()
    assert len(a) == len(b) > 0 and (a.drop(columns="value") == b.drop(columns="value")).all().all()
    assert np.abs(a["value"].to_numpy() - b["value"].to_numpy()).max() < 1e-5
