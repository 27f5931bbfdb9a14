"""The results directory of a sweep: its description, one status record and one run directory
per trial, and each trial's final evaluation. Every file is written atomically (temporary file
+ rename), so a process killed at any moment leaves a readable directory::

    sweep.json                     what was swept (plan.describe()): base, configs, seeds, metric
    trials/<trial_id>.json         status record: state, attempt, step, pid, host, times, error,
                                   final metric values
    runs/<trial_id>/               the trial's run directory (explorer.train.runs): snapshots,
                                   checkpoints, history — any lab follows it
    final/<trial_id>.safetensors   final evaluation on the test split: ``predictions``,
                                   ``targets``, ``reps.<layer>`` (the final representations)

States: ``running``, ``done``, ``diverged`` (the training diverged: an outcome of the config,
kept), ``stopped`` (ended early by a scheduler such as ASHA), ``failed`` (an error or a dead
worker: run again on the next call). A trial without a record has not started.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from explorer.train.checkpoint import write_atomically
from explorer.train.sweep.plan import FORMAT, VERSION, SweepPlan

__all__ = ["FINISHED", "STATES", "SweepStore"]

STATES = ("running", "done", "diverged", "stopped", "failed")
FINISHED = ("done", "diverged", "stopped")  # skipped when the sweep runs again


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    """Explorer's one atomic writer (dead writers' temps swept); records and final
    evaluations are rewritten often, so without fsync (like run directories' files)."""
    write_atomically(path, write, fsync=False)


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=1, allow_nan=True)
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); was it edited by hand?") from err


class SweepStore:
    """Paths and status records of one sweep directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory)

    # ------------------------------------------------------------------ layout
    @property
    def spec_path(self) -> Path:
        return self.path / "sweep.json"

    def record_path(self, trial_id: str) -> Path:
        return self.path / "trials" / f"{trial_id}.json"

    def run_path(self, trial_id: str) -> Path:
        return self.path / "runs" / trial_id

    def final_path(self, trial_id: str) -> Path:
        return self.path / "final" / f"{trial_id}.safetensors"

    # ------------------------------------------------------------------ the sweep
    def spec(self) -> dict[str, Any]:
        data = read_json(self.spec_path)
        if data is None:
            raise FileNotFoundError(
                f"{self.path} holds no sweep (no sweep.json); sweeps are written by "
                "explorer.train.sweep.run_sweep(..., directory=...)"
            )
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(
                f"{self.spec_path}: format {data.get('format')!r} version {data.get('version')!r};"
                f" this explorer reads {FORMAT!r} version {VERSION}"
            )
        return dict(data)

    def prepare(self, plan: SweepPlan) -> None:
        """Create the directory for ``plan``, or check that the sweep already there has the
        same base (task, model, training config, fixed values, steps) and add the new configs
        and seeds to it. Nothing is written when they differ."""
        new = plan.describe()
        if self.spec_path.exists():
            old = self.spec()
            diffs = [k for k in plan.fingerprint() if old.get(k) != new[k]]
            if diffs:
                detail = "; ".join(f"{k}: {old.get(k)!r} → {new[k]!r}" for k in diffs[:3])
                raise ValueError(
                    f"{self.path} holds a sweep with a different base ({detail}). Its trials "
                    "would not be comparable: use a new directory, or the same base."
                )
            configs = list(old["configs"])
            configs += [c for c in new["configs"] if c not in configs]
            new["configs"] = configs
            new["seeds"] = list(dict.fromkeys([*old["seeds"], *new["seeds"]]))
            new["names"] = list(dict.fromkeys([*old["names"], *new["names"]]))
            new["swept"] = list(dict.fromkeys([*old["swept"], *new["swept"]]))
        for sub in ("trials", "runs", "final"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        write_json(self.spec_path, new)

    # ------------------------------------------------------------------ trial records
    def record(self, trial_id: str) -> dict[str, Any] | None:
        return read_json(self.record_path(trial_id))

    def records(self) -> dict[str, dict[str, Any]]:
        folder = self.path / "trials"
        out: dict[str, dict[str, Any]] = {}
        if not folder.is_dir():
            return out
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    data = read_json(Path(entry.path))
                except ValueError:
                    continue  # a record being replaced is read whole on the next look
                if data is not None:
                    out[entry.name[: -len(".json")]] = data
        return out

    def update(self, trial_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the trial's record (``state`` must be one of STATES)."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {fields['state']!r}")
        record = self.record(trial_id) or {"trial_id": trial_id, "attempt": 0}
        record.update(fields, time=time.time())
        write_json(self.record_path(trial_id), record)
        return record

    def start(
        self, trial_id: str, config: Mapping[str, Any], seed: int, **fields: Any
    ) -> dict[str, Any]:
        """Mark a trial running in this process (a new attempt)."""
        old = self.record(trial_id) or {}
        return self.update(
            trial_id,
            config=dict(config),
            seed=int(seed),
            state="running",
            attempt=int(old.get("attempt", 0)) + 1,
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
            error=None,
            **fields,
        )

    def is_finished(self, trial_id: str) -> bool:
        record = self.record(trial_id)
        return record is not None and record.get("state") in FINISHED
