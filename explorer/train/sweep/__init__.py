"""Sweeps: a base config × a grid (or random samples) of hyper-parameters × seeds, run locally
(seeds batched with vmap, configs over a process pool) or on a Ray cluster (Ray Tune's trial
runner, schedulers and resources), into one results directory that any lab can follow::

    from explorer.models import MLPConfig
    from explorer.train.sweep import run_sweep

    result = run_sweep(
        "spirals", MLPConfig(in_dim=2, out_dim=2, width=32),
        grid={"width": [16, 32, 64], "lr": [1e-3, 1e-2]}, seeds=range(3), steps=500,
        directory="runs/width-lr",                # rerun: finished trials are skipped
    )                                              # backend="ray" for a cluster
    result.frame()      # tidy: width, lr, seed, step, metric, value
    result.summary()    # final test_loss per config: mean/std over seeds

Every trial is a run directory (:mod:`explorer.train.runs`): ``result.run(trial_id)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from explorer.train.config import TrainConfig
from explorer.train.sweep.local import available_cores, run_local
from explorer.train.sweep.plan import SweepPlan, Trial
from explorer.train.sweep.progress import ProgressCallback, SweepProgress, Tracker, tqdm_progress
from explorer.train.sweep.results import FinalEvaluation, SweepResult, SweepSource, load_sweep
from explorer.train.sweep.space import (
    Choice,
    Distribution,
    LogUniform,
    RandInt,
    Uniform,
    expand_grid,
    sample_space,
)
from explorer.train.sweep.store import FINISHED, SweepStore

__all__ = [
    "BACKENDS",
    "Choice",
    "Distribution",
    "FinalEvaluation",
    "LogUniform",
    "RandInt",
    "SweepPlan",
    "SweepProgress",
    "SweepResult",
    "SweepSource",
    "SweepStore",
    "Trial",
    "Uniform",
    "available_cores",
    "load_sweep",
    "run_sweep",
]

BACKENDS = ("local", "ray")


def _configs(
    grid: Mapping[str, Sequence[Any]] | None,
    samples: Mapping[str, Any] | None,
    n_samples: int | None,
    sample_seed: int,
) -> list[dict[str, Any]]:
    configs = expand_grid(grid) if grid else [{}]
    if samples:
        if n_samples is None:
            raise ValueError("samples= needs n_samples= (how many random configs to draw)")
        drawn = sample_space(samples, n_samples, seed=sample_seed)
        configs = [{**g, **s} for g in configs for s in drawn]
    elif n_samples is not None:
        raise ValueError("n_samples= without samples=: give the distributions to draw from")
    return configs


def _progress(progress: bool | ProgressCallback | None) -> ProgressCallback | None:
    if progress is True:
        return tqdm_progress()
    if progress is False or progress is None:
        return None
    if not callable(progress):
        raise TypeError(f"progress must be True, False or a callable, got {progress!r}")
    return progress


def run_sweep(
    task: Any,
    model: Any,
    *,
    directory: str | os.PathLike[str],
    grid: Mapping[str, Sequence[Any]] | None = None,
    samples: Mapping[str, Any] | None = None,
    n_samples: int | None = None,
    sample_seed: int = 0,
    base: Mapping[str, Any] | None = None,
    train: TrainConfig | Mapping[str, Any] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 1000,
    metric: str = "test_loss",
    mode: str = "min",
    record_every: int | None = None,
    checkpoint_every: int | None = None,
    layers: Sequence[str] | None = None,
    final_samples: int = 512,
    seeds_per_group: int | None = None,
    backend: str = "local",
    workers: int | None = None,
    max_failures: int = 1,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    scheduler: Any = None,
    ray_init: Mapping[str, Any] | None = None,
    progress: bool | ProgressCallback | None = True,
) -> SweepResult:
    """Train every config × seed and return the results (see :class:`SweepResult`).

    **What runs.** ``task``: a task name (``"spirals"``, keywords sweepable), a ``Task``, or a
    callable returning one. ``model``: an explorer model config (``MLPConfig(...)``, fields
    sweepable) or a factory ``f(**params) -> nn.Module`` (its keywords sweepable; built under
    torch's generator seeded with the trial seed, and given ``seed=`` if it takes one).
    ``grid`` ({name: [values]}, every combination) and/or ``samples`` ({name: Uniform(...) |
    LogUniform(...) | RandInt(...) | [values]}, ``n_samples`` draws seeded by ``sample_seed``)
    make the configs; ``base`` fixes values by the same names; ``train`` is the base
    :class:`TrainConfig` (``total_steps`` defaults to ``steps``). Names go to the task, the
    model or the training config; prefix ``task.``/``model.``/``train.`` when ambiguous.
    Every config runs under every seed in ``seeds``; ``steps`` updates each.

    **Results** go to ``directory`` (see :mod:`explorer.train.sweep.store`): per trial a run
    directory with snapshots every ``record_every`` steps (default: 10 per run) and
    checkpoints every ``checkpoint_every`` steps (default: at the first snapshot after 10 s of
    training since the last one; always at the end), and a final evaluation on up to
    ``final_samples`` test inputs with the representations at ``layers`` (default: the
    model's last layer). ``metric``/``mode`` name the value to optimise (progress, schedulers).

    **Again into the same directory**: finished trials (done, diverged, stopped early) are
    skipped; failed and interrupted ones resume from their last checkpoint; new configs and
    seeds are added. A different base (task, model, training config, steps) is refused.

    **Backends.** The seeds of a config train together, batched with vmap (in groups of
    ``seeds_per_group``, default all; smaller groups spread one config over more workers).
    ``"local"``: the groups over ``workers`` processes (default: one per core);
    ``workers=0`` runs them in this process. A dead worker's trials are retried from their
    checkpoints up to ``max_failures`` times. ``"ray"``: one Ray Tune trial per group on the
    cluster at ``address`` (default: a local Ray started with ``ray.init(**ray_init)``, or
    the cluster ``RAY_ADDRESS`` names) with ``cpus_per_trial``/``gpus_per_trial`` and an
    optional Tune ``scheduler`` (e.g. ``ASHAScheduler(time_attr="step")``; Tune trials report
    ``step`` and ``metric``, the mean over the group's seeds); needs ``pip install
    'explorer[scale]'`` and a ``directory`` every node can write (one machine, or a shared
    file system). Both backends train the same groups, so they give the same numbers.

    ``progress``: True draws a ``tqdm.auto`` bar (finished/running/failed, best value so far),
    or pass a callable receiving :class:`SweepProgress` (``widgets.SweepLab`` follows the
    directory itself).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise ValueError(f"max_failures must be an integer >= 0, got {max_failures!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise ValueError(f"workers must be an integer >= 0 or None (one per core), got {workers!r}")
    plan = SweepPlan(
        task,
        model,
        configs=_configs(grid, samples, n_samples, sample_seed),
        seeds=list(seeds),
        steps=steps,
        train=train,
        base=base,
        metric=metric,
        mode=mode,
        record_every=record_every,
        checkpoint_every=checkpoint_every,
        layers=layers,
        final_samples=final_samples,
        seeds_per_group=seeds_per_group,
    )
    callback = _progress(progress)
    if backend == "ray":  # import (and fail with the install hint) before writing anything
        from explorer.train.sweep import raytune

        raytune.import_ray()
    store = SweepStore(directory)
    store.prepare(plan)
    records = store.records()
    pending = [
        t for t in plan.trials if (records.get(t.trial_id) or {}).get("state") not in FINISHED
    ]
    tracker = Tracker(len(plan.trials), metric, mode, callback)
    for t in plan.trials:
        rec = records.get(t.trial_id) or {}
        if rec.get("state") in FINISHED:
            value = (rec.get("final") or {}).get(metric)
            tracker.event({"event": "finished", "trial_id": t.trial_id, "state": rec["state"],
                           "value": value})  # fmt: skip
    try:
        if not pending:
            pass
        elif backend == "local":
            n = available_cores() if workers is None else workers
            groups = plan.groups(pending)
            run_local(plan, store, groups, tracker, workers=min(n, len(groups)),
                      max_failures=max_failures)  # fmt: skip
        else:
            raytune.run_ray(
                plan,
                store,
                plan.groups(pending),
                tracker,
                address=address,
                cpus_per_trial=cpus_per_trial,
                gpus_per_trial=gpus_per_trial,
                scheduler=scheduler,
                max_failures=max_failures,
                ray_init=dict(ray_init or {}),
            )
    finally:
        if isinstance(callback, tqdm_progress):
            callback.close()
    return SweepResult(directory)
