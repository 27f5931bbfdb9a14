"""Reading a sweep's results directory — also while the sweep is still writing it.

:class:`SweepResult` gives one tidy frame of every trial's metric history (config columns,
seed, step, metric, value), a table of the trials (config, seed, state, error, final values),
and each trial's run directory and final evaluation. Files that changed since the last read are
read again; the others come from a cache, so following a live sweep stays cheap.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import safe_open

from explorer.train.runs import Run
from explorer.train.sweep.plan import Trial
from explorer.train.sweep.progress import SweepProgress, Tracker
from explorer.train.sweep.store import FINISHED, SweepStore

__all__ = ["FinalEvaluation", "SweepResult", "SweepSnapshot", "SweepSource", "load_sweep"]


class FinalEvaluation:
    """A trial's final evaluation: ``predictions`` (n, C) (class probabilities for
    cross-entropy, raw outputs otherwise), ``targets`` (n,) or (n, C), ``representations``
    ``{hook name: array}`` as captured ((n, d), (n, T, d) token sequences, (n, C, H, W) maps;
    :mod:`explorer.analysis.sweep` pools them), ``loss`` ("ce" | "mse")."""

    def __init__(self, path: Path) -> None:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        self.loss = meta.get("loss", "ce")
        self.step = int(meta.get("step", -1))
        self.predictions: np.ndarray = tensors["predictions"].numpy()
        self.targets: np.ndarray = tensors["targets"].numpy()
        self.representations: dict[str, np.ndarray] = {
            k[len("reps.") :]: v.numpy() for k, v in tensors.items() if k.startswith("reps.")
        }


class SweepResult:
    """The results of the sweep in ``directory`` (see :mod:`explorer.train.sweep.store`)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.store = SweepStore(directory)
        self.spec = self.store.spec()
        self._histories: dict[str, tuple[float, pd.DataFrame]] = {}

    @property
    def directory(self) -> Path:
        return self.store.path

    @property
    def metric(self) -> str:
        return str(self.spec["metric"])

    @property
    def mode(self) -> str:
        return str(self.spec["mode"])

    @property
    def swept(self) -> list[str]:
        """The names of the swept hyper-parameters (the config columns)."""
        return list(self.spec["swept"])

    def refresh(self) -> SweepResult:
        """Re-read sweep.json (a later call may have added configs or seeds)."""
        self.spec = self.store.spec()
        return self

    def planned(self) -> list[Trial]:
        return [Trial(dict(c), int(s)) for c in self.spec["configs"] for s in self.spec["seeds"]]

    # ------------------------------------------------------------------ tables
    def trials(self) -> pd.DataFrame:
        """One row per planned trial: trial_id, config columns, seed, state (``pending``
        when not started), step, attempt, error, seconds, and the final value of every metric
        (``final_<name>``)."""
        records = self.store.records()
        rows = []
        for t in self.planned():
            rec = records.get(t.trial_id, {})
            row: dict[str, Any] = {"trial_id": t.trial_id, **t.config, "seed": t.seed}
            row["state"] = rec.get("state", "pending")
            row["step"] = rec.get("step", 0)
            row["attempt"] = rec.get("attempt", 0)
            row["error"] = rec.get("error")
            row["seconds"] = rec.get("seconds")
            for k, v in (rec.get("final") or {}).items():
                row[f"final_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)

    def _history(self, trial_id: str) -> pd.DataFrame:
        path = self.store.run_path(trial_id) / "history.parquet"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return pd.DataFrame(columns=["step", "metric", "value"])
        cached = self._histories.get(trial_id)
        if cached is None or cached[0] != mtime:
            cached = (mtime, pd.read_parquet(path))
            self._histories[trial_id] = cached
        return cached[1]

    def frame(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Tidy metric histories of every trial that has written one: config columns, seed,
        step, metric, value (wall-clock ``seconds`` left out: it is not a result).
        ``metrics`` keeps only those metrics."""
        parts = []
        for t in self.planned():
            h = self._history(t.trial_id)
            if h.empty:
                continue
            h = h[h["metric"] != "seconds"]
            if metrics is not None:
                h = h[h["metric"].isin(metrics)]
            h = h.assign(**{k: v for k, v in t.config.items()}, seed=t.seed)
            parts.append(h)
        columns = [*self.swept, "seed", "step", "metric", "value"]
        if not parts:
            return pd.DataFrame(columns=columns)
        out = pd.concat(parts, ignore_index=True)
        return out[columns].sort_values([*self.swept, "seed", "step", "metric"], kind="stable",
                                        ignore_index=True)  # fmt: skip

    def final(self, metric: str | None = None) -> pd.DataFrame:
        """The last value of ``metric`` (default: the sweep's) of every trial that reported
        it: trial_id, config columns, seed, state, step, value."""
        metric = metric or self.metric
        columns = ["trial_id", *self.swept, "seed", "state", "step", "value"]
        frame = self.frame([metric])
        if frame.empty:
            return pd.DataFrame(columns=columns)
        last = frame.groupby([*self.swept, "seed"], sort=False, dropna=False).tail(1)
        table = self.trials()[["trial_id", *self.swept, "seed", "state"]]
        merged = last.drop(columns="metric").merge(table, on=[*self.swept, "seed"])
        return merged[columns].reset_index(drop=True)

    def summary(self, metric: str | None = None) -> pd.DataFrame:
        """Per config: mean, std, min, max and count over seeds of the final ``metric``."""
        final = self.final(metric)
        keys = self.swept or None
        if keys is None:
            final = final.assign(config="all")
            keys = ["config"]
        return (
            final.groupby(keys, dropna=False)["value"]
            .agg(["mean", "std", "min", "max", "count"])
            .reset_index()
        )

    def best(self, metric: str | None = None, mode: str | None = None) -> pd.Series:
        """The trial with the best final ``metric`` (``mode`` "min" or "max")."""
        final = self.final(metric)
        if final.empty:
            raise ValueError(f"no trial has reported {metric or self.metric!r} yet")
        mode = mode or self.mode
        i = final["value"].idxmin() if mode == "min" else final["value"].idxmax()
        return final.loc[i]

    def progress(self) -> SweepProgress:
        """The trial counts and the best final value, from the trial records."""
        records = self.store.records()
        planned = self.planned()
        tracker = Tracker(len(planned), self.metric, self.mode, None)
        for t in planned:
            rec = records.get(t.trial_id)
            if rec is None:
                continue
            event = "running" if rec.get("state") == "running" else "finished"
            value = (rec.get("final") or {}).get(self.metric)
            tracker.event({"event": event, "trial_id": t.trial_id, "state": rec.get("state"),
                           "value": value})  # fmt: skip
        return tracker.state

    # ------------------------------------------------------------------ per trial
    def finished(self) -> list[str]:
        records = self.store.records()
        return [t.trial_id for t in self.planned()
                if (records.get(t.trial_id) or {}).get("state") in FINISHED]  # fmt: skip

    def run(self, trial_id: str, **kwargs: Any) -> Run:
        """The trial's run directory as a :class:`~explorer.train.runs.Run` (a source for
        every lab; pass ``model=`` for a sweep of your own model factory)."""
        return Run(self.store.run_path(trial_id), **kwargs)

    def evaluation(self, trial_id: str) -> FinalEvaluation:
        """The trial's final evaluation (predictions, targets, representations)."""
        path = self.store.final_path(trial_id)
        if not path.is_file():
            state = (self.store.record(trial_id) or {}).get("state", "pending")
            raise FileNotFoundError(
                f"trial {trial_id} has no final evaluation (state: {state}); only trials that "
                "trained to the end have one"
            )
        return FinalEvaluation(path)

    def __repr__(self) -> str:
        counts = self.trials()["state"].value_counts().to_dict()
        return f"SweepResult({str(self.directory)!r}, {counts})"


def load_sweep(directory: str | os.PathLike[str]) -> SweepResult:
    """Open the results directory of a sweep (finished or still running)."""
    return SweepResult(directory)


@dataclass(frozen=True)
class SweepSnapshot:
    """How a sweep stands at one training ``step``: per trial, the last value of the sweep's
    metric at or before it (``frame``: trial_id, config columns, seed, state, step, value),
    and the trial counts (``progress``)."""

    step: int
    frame: pd.DataFrame
    progress: SweepProgress


class SweepSource:
    """A sweep's results directory as a source a lab follows (see
    :mod:`explorer.train.sources`): ``steps`` are the evaluation steps, ``at(step)`` a
    :class:`SweepSnapshot`, and ``subscribe(cb)`` polls the directory every ``poll_s``
    seconds and calls ``cb(latest)`` when a trial record or history changed — so a lab
    follows a sweep that another process, or a Ray cluster, is writing."""

    def __init__(self, directory: str | os.PathLike[str], *, poll_s: float = 1.0) -> None:
        self.result = SweepResult(directory)
        self.name = self.result.directory.name
        self.run_id = 0
        self._poll_s = float(poll_s)
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[SweepSnapshot], None]] = []
        self._poller: threading.Thread | None = None
        self._signature: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        return f"SweepSource({str(self.result.directory)!r})"

    @property
    def notes(self) -> tuple[str, ...]:
        """A sentence per failed trial (the lab's status line shows them)."""
        table = self.result.trials()
        failed = table[table["state"] == "failed"]
        return tuple(
            f"trial {r.trial_id} failed: {str(r.error).strip().splitlines()[-1][:160]}"
            for r in failed.itertuples()
        )

    def _metric_frame(self) -> pd.DataFrame:
        return self.result.frame([self.result.metric])

    @property
    def steps(self) -> list[int]:
        """The training steps at which some trial reported the sweep's metric."""
        return sorted(int(s) for s in self._metric_frame()["step"].unique())

    @property
    def latest(self) -> SweepSnapshot | None:
        steps = self.steps
        return self.at(steps[-1]) if steps else None

    def at(self, step: int, *, metric: str | None = None) -> SweepSnapshot:
        """The sweep at ``step``: each trial's last value of ``metric`` (default: the
        sweep's) at or before it."""
        self.result.refresh()
        frame = self.result.frame([metric or self.result.metric])
        frame = frame[frame["step"] <= int(step)]
        keys = [*self.result.swept, "seed"]
        last = frame.groupby(keys, sort=False, dropna=False).tail(1)
        table = self.result.trials()[["trial_id", *keys, "state"]]
        merged = table.merge(last.drop(columns="metric"), on=keys, how="inner")
        columns = ["trial_id", *keys, "state", "step", "value"]
        return SweepSnapshot(int(step), merged[columns].reset_index(drop=True),
                             self.result.progress())  # fmt: skip

    def model_at(self, step: int) -> Any:
        raise TypeError(
            "a sweep holds one model per trial: open a trial's run directory "
            "(SweepResult.run(trial_id)) to get a model at a step"
        )

    def history(self) -> list[dict[str, float]]:
        return []

    # ------------------------------------------------------------------ following
    def _changed(self) -> bool:
        root = self.result.directory
        stamps = []
        for folder, pattern in ((root / "trials", "*.json"), (root / "runs", "*/history.parquet")):
            for path in folder.glob(pattern):
                try:
                    stamps.append((path.name, path.parent.name, path.stat().st_mtime_ns))
                except FileNotFoundError:
                    continue
        signature = tuple(sorted(stamps))
        changed = signature != self._signature
        self._signature = signature
        return changed

    def subscribe(self, callback: Callable[[SweepSnapshot], None]) -> Callable[[], None]:
        """Call ``callback(latest snapshot)`` whenever the directory changes."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._subscribers.append(callback)
            if not self._signature:
                self._changed()
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(target=self._poll, name="xp-sweep-follow",
                                                daemon=True)  # fmt: skip
                self._poller.start()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def poll(self) -> SweepSnapshot | None:
        """Look at the directory now; notify the subscribers if it changed."""
        with self._lock:
            if not self._changed():
                return None
            callbacks = list(self._subscribers)
        snap = self.latest
        if snap is None:
            return None
        for callback in callbacks:
            try:
                callback(snap)
            except Exception as err:
                warnings.warn(f"sweep subscriber {callback!r} failed: {type(err).__name__}: "
                              f"{err}", RuntimeWarning, stacklevel=2)  # fmt: skip
        return snap

    def _poll(self) -> None:
        while True:
            with self._lock:
                if not self._subscribers:
                    self._poller = None
                    return
            try:
                self.poll()
            except (OSError, ValueError, KeyError):
                pass  # a file being replaced: the next poll reads it whole
            time.sleep(self._poll_s)
