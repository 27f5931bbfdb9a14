"""Reading a sweep's results directory — also while the sweep is still writing it.

:class:`SweepResult` gives one tidy frame of every trial's metric history (config columns,
seed, step, metric, value), a table of the trials (config, seed, state, error, final values),
and each trial's run directory and final evaluation. Files that changed since the last read are
read again; the others come from a cache, so following a live sweep stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import safe_open

from explorer.train.runs import Run
from explorer.train.sweep.plan import Trial
from explorer.train.sweep.store import FINISHED, SweepStore

__all__ = ["FinalEvaluation", "SweepResult", "load_sweep"]


class FinalEvaluation:
    """A trial's final evaluation: ``predictions`` (n, C) (class probabilities for
    cross-entropy, raw outputs otherwise), ``targets`` (n,) or (n, C), ``representations``
    ``{hook name: (n, d)}`` (token sequences mean-pooled), ``loss`` ("ce" | "mse")."""

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
