"""Sweeps: the local backend against a plain loop, and the Ray backend's overhead.

1. A 16-trial sweep of the tutorial MLP (notebook 12's seed sweep: spirals, two-layer MLP,
   minibatches of 64; here 4 widths × 4 seeds × 1000 Adam steps): ``run_sweep(backend=
   "local")`` (2 worker processes, the seeds of each width batched with vmap, every trial
   written as a run directory: 10 snapshots, history, checkpoints, final evaluation) against
   the loop a user writes — ``Trainer.run`` for each width and seed in turn, writing
   nothing. Goal: ≥ 1.8× on 2 cores. The same with full-batch steps, where vmap gains least
   (the step is compute-bound, not Python-bound). Interleaved repeats, medians; agreement =
   the largest difference of the final test loss over the 16 trials.
2. The Ray backend on a real cluster started here (head + a second node on 127.0.0.1, one CPU
   each; the recipe of tests/integration/sweep_support.py): cluster start time, and per trial
   the Ray sweep's wall time against the same trials run in this process. Goal: overhead
   under 1 s per trial after the cluster is up.

Run from bench/: ``python bench_sweep.py``. The machine may be shared: the load average is
printed with the table.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _harness import Bench, interleaved

from explorer.data import make_task
from explorer.models import MLP, MLPConfig
from explorer.train import TrainConfig, Trainer
from explorer.train.sweep import run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from sweep_support import RayCluster

torch.set_num_threads(1)
MODEL = MLPConfig(in_dim=2, out_dim=2, depth=2, width=16)
WIDTHS, SEEDS, STEPS = [8, 16, 32, 64], [0, 1, 2, 3], 1000
TRAIN = {"lr": 1e-2, "batch_size": 64, "eval_every": 50}


def ours(directory: Path, train: dict[str, object]) -> dict[tuple[int, int], float]:
    shutil.rmtree(directory, ignore_errors=True)
    result = run_sweep("spirals", MODEL, grid={"width": WIDTHS}, seeds=SEEDS, steps=STEPS,
                       train=train, directory=directory, progress=False)  # fmt: skip
    final = result.final("test_loss")
    return {(int(r.width), int(r.seed)): float(r.value) for r in final.itertuples()}


def plain_loop(train: dict[str, object]) -> dict[tuple[int, int], float]:
    task = make_task("spirals")
    out = {}
    for width in WIDTHS:
        for seed in SEEDS:
            cfg = TrainConfig(**train, total_steps=STEPS, seed=seed)
            factory = lambda s, w=width: MLP(MLPConfig(**{**MODEL.__dict__, "width": w, "seed": s}))  # noqa: E731
            trainer = Trainer(factory, task, cfg)
            for _ in trainer.run(STEPS):
                pass
            out[(width, seed)] = trainer.history[-1]["test_loss"]
    return out


def local_vs_loop(
    bench: Bench, tmp: Path, label: str, train: dict[str, object], *, goal: float | None
) -> None:
    """One summary row: the local backend against the plain loop, interleaved, 3 repeats."""
    got: dict[str, dict[tuple[int, int], float]] = {}
    row = bench.time(
        f"16-trial sweep, local backend ({label})",
        lambda: got.__setitem__("ours", ours(tmp / "local", train)),
        lambda: got.__setitem__("peer", plain_loop(train)),
        peer_name="plain loop over Trainer.run",
        repeat=3,
    )
    diff = max(abs(got["ours"][k] - got["peer"][k]) for k in got["peer"])
    bench.summary(row, size=f"4 widths × 4 seeds × {STEPS} steps, 2 workers",
                  agreement=f"max |Δ final test_loss| {diff:.1e}", goal_ratio=goal)  # fmt: skip


def main() -> None:
    bench = Bench("sweep")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        local_vs_loop(bench, tmp, "minibatch 64", TRAIN, goal=1.8)
        local_vs_loop(bench, tmp, "full batch", {**TRAIN, "batch_size": None}, goal=None)

        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        starts = []
        for _ in range(2):
            with RayCluster(nodes=2, cpus=1) as cluster:
                starts.append(cluster.started_s)
        bench.summary(case="Ray cluster start (head + 1 node)", size="2 × 1 CPU, 127.0.0.1",
                      ours_s=statistics.median(starts))  # fmt: skip
        # 8 configs × 1 seed: 8 Tune trials, one sweep trial each
        small = dict(grid={"lr": [1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2]}, seeds=[0],
                     steps=100)  # fmt: skip
        n = 8
        with RayCluster(nodes=2, cpus=1) as cluster:
            seen: dict[str, dict[tuple[float, int], float]] = {}

            def on_ray() -> None:
                shutil.rmtree(tmp / "ray", ignore_errors=True)
                r = run_sweep("spirals", MODEL, train=TRAIN, directory=tmp / "ray",
                              backend="ray", address=cluster.address, progress=False, **small)  # fmt: skip
                seen["ray"] = {(x.lr, int(x.seed)): x.value
                               for x in r.final("test_loss").itertuples()}  # fmt: skip

            def here() -> None:
                shutil.rmtree(tmp / "here", ignore_errors=True)
                r = run_sweep("spirals", MODEL, train=TRAIN, directory=tmp / "here",
                              workers=0, progress=False, **small)  # fmt: skip
                seen["here"] = {(x.lr, int(x.seed)): x.value
                                for x in r.final("test_loss").itertuples()}  # fmt: skip

            t_ray, t_here = interleaved([on_ray, here], [3, 3])
        ray_s, here_s = statistics.median(t_ray) / n, statistics.median(t_here) / n
        diff = max(abs(seen["ray"][k] - seen["here"][k]) for k in seen["here"])
        bench.summary(case="Ray Tune backend, per trial", size=f"{n} trials × 100 steps, 2 nodes",
                      ours_s=ray_s, peer="the same trials in this process", peer_s=here_s,
                      agreement=f"max |Δ final test_loss| {diff:.1e}")  # fmt: skip
        overhead = max(ray_s - here_s / 2, 0.0)  # the cluster runs two trials at a time
        bench.summary(case="Ray overhead per trial (after start)", size=f"{n} trials, 2 CPUs",
                      ours_s=overhead, peer="goal", peer_s=1.0, goal_ratio=1.0)  # fmt: skip
        bench.note("Ray overhead per trial (after start)", "seconds", overhead)
        bench.note("Ray sweep of 8 trials", "runs (s): ray, in-process", (t_ray, t_here))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bench.report()
    print("note: the machine may be shared; see the load average above.")


if __name__ == "__main__":
    np.seterr(all="ignore")
    t0 = time.perf_counter()
    main()
    print(f"bench_sweep took {time.perf_counter() - t0:.0f} s")
