"""The Ray backend: one Ray Tune trial per group of seeds of a config (see
:meth:`SweepPlan.groups`; by default all seeds of a config, batched with vmap as the local
backend does), on a local Ray or a cluster.

Tune's trial runner does the scheduling, so its schedulers (ASHA early stopping, ...) and
resources (``cpus_per_trial``, ``gpus_per_trial``) work unchanged; each Tune trial runs
:func:`explorer.train.sweep.runner.run_config` on its group — the code and the batches the
local backend runs — and reports ``step`` and the sweep's metric (the mean over the group's
seeds) at every evaluation. A Tune trial whose worker dies is retried by Tune
(``max_failures``) and its seeds resume from their last checkpoints in the results directory;
past that they are recorded as failed. Ray is optional: ``pip install 'explorer[scale]'``
(imported only here, on first use).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cloudpickle

from explorer.errors import optional_import
from explorer.train.sweep.plan import SweepPlan, Trial
from explorer.train.sweep.progress import Tracker
from explorer.train.sweep.runner import run_config
from explorer.train.sweep.store import SweepStore

__all__ = ["import_ray", "run_ray"]


def import_ray() -> tuple[Any, Any]:
    """``(ray, ray.tune)``, or MissingDependencyError with the install hint."""
    ray = optional_import("ray", "scale", "ray[tune]")
    tune = optional_import("ray.tune", "scale", "ray[tune]")
    return ray, tune


def _group_key(group: list[Trial]) -> str:
    return ",".join(t.trial_id for t in group)


def _trainable(config: dict[str, Any], payload: bytes, directory: str) -> None:
    """One Tune trial: a group of seeds of one config, reporting at every evaluation."""
    import ray
    from ray import tune

    plan: SweepPlan = cloudpickle.loads(payload)
    store = SweepStore(directory)
    trials = [plan.trial(tid) for tid in config["group"].split(",")]

    def emit(ev: dict[str, Any]) -> None:
        if ev["event"] == "step":
            values = list(ev["values"].values())
            tune.report({"step": ev["step"], plan.metric: sum(values) / len(values)})

    node = ray.get_runtime_context().get_node_id()
    run_config(plan, store, trials, emit, where={"node": node})


def _callback(tune: Any, store: SweepStore, tracker: Tracker, metric: str) -> Any:
    """A Tune callback (in the driver) that keeps the progress and the trial records."""

    class _Progress(tune.Callback):
        def on_trial_start(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            for tid in trial.config["group"].split(","):
                tracker.event({"event": "running", "trial_id": tid})

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            if metric in result:
                for tid in trial.config["group"].split(","):
                    tracker.event({"event": "progress", "trial_id": tid,
                                   "value": float(result[metric])})  # fmt: skip

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            for tid in trial.config["group"].split(","):
                record = store.record(tid) or {}
                if record.get("state") == "running":  # the scheduler ended it early
                    record = store.update(tid, state="stopped", ended=time.time())
                value = (record.get("final") or {}).get(metric)
                tracker.event({"event": "finished", "trial_id": tid,
                               "state": record.get("state", "failed"), "value": value})  # fmt: skip

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            error = "the Ray worker running this trial failed"
            if trial.error_file and Path(trial.error_file).is_file():
                error = Path(trial.error_file).read_text()[-4000:]
            for tid in trial.config["group"].split(","):
                if store.is_finished(tid):
                    continue
                store.update(tid, state="failed", error=error, ended=time.time())
                tracker.event({"event": "finished", "trial_id": tid, "state": "failed",
                               "error": error})  # fmt: skip

    return _Progress()


def run_ray(
    plan: SweepPlan,
    store: SweepStore,
    groups: list[list[Trial]],
    tracker: Tracker,
    *,
    address: str | None,
    cpus_per_trial: float,
    gpus_per_trial: float,
    scheduler: Any,
    max_failures: int,
    ray_init: dict[str, Any],
) -> None:
    """Run each group of ``groups`` as a Tune trial; connects to (or starts) Ray unless
    already connected, and disconnects at the end if it connected."""
    ray, tune = import_ray()
    connected_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False}
        if address is not None:
            kwargs["address"] = address
        else:  # a private local Ray (or the cluster named by RAY_ADDRESS)
            kwargs["include_dashboard"] = False
        kwargs.update(ray_init)
        ray.init(**kwargs)
        connected_here = True
    try:
        directory = str(store.path.resolve())
        trainable = tune.with_parameters(
            _trainable, payload=cloudpickle.dumps(plan), directory=directory
        )
        trainable = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space={"group": tune.grid_search([_group_key(g) for g in groups])},
            tune_config=tune.TuneConfig(
                metric=plan.metric, mode=plan.mode, scheduler=scheduler, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name=f"tune-{int(time.time() * 1000)}",
                storage_path=str(Path(directory) / "ray"),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=[_callback(tune, store, tracker, plan.metric)],
                verbose=0,
            ),
        )
        tuner.fit()
    finally:
        if connected_here:
            ray.shutdown()
