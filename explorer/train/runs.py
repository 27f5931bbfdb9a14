"""A training run on disk: one directory that a trainer writes while it trains and that any lab
(or script) reads, replays and follows while it grows. A sweep writes one per trial.

Layout (version 1; every file is written to a temporary name and renamed, so a reader never
sees a half-written file; nothing here executes code on load)::

    run.json                        format, version, name, model config (``kind`` + fields, or
                                    null for a user's own module), train config, task (name,
                                    kind, generator keywords ``spec``, JSON-safe meta), probe
                                    layout, free-form ``params`` (e.g. a sweep trial's values)
    inputs.safetensors              ``x``/``y``: evaluation inputs (the first ``n_inputs`` test
                                    rows) every lab runs the model on; ``probe.inputs`` and
                                    ``probe.target`` of the recorder's probe
    task.safetensors                (user data only) the full splits, to continue training
    history.parquet                 tidy metric history: step, metric, value
    status.json                     state (running | done | diverged | failed), step, message
    checkpoints/step_00000100.safetensors   :func:`explorer.train.checkpoint.save_checkpoint`
                                    (model + optimizer + state ``{"step": 100}``)
    snapshots/step_00000100.safetensors     one :class:`~explorer.train.Snapshot`: tensors
                                    ``params.*``, ``activations.*``, ``attention.*``,
                                    ``predictions``; step and metrics in the metadata

Writing::

    writer = RunWriter("runs/trial-3", model=trainer.model, task=task, config=trainer.config,
                       params={"lr": 1e-2}, probe=recorder.probe)
    recorder.subscribe(writer.write_snapshot)         # every recorded snapshot goes to disk
    for _ in trainer.run(500):
        recorder.maybe_record()
    writer.save(trainer)                              # checkpoint + history + status
    writer.truncate(150)                              # resuming from step 150: drop later steps

Reading::

    run = Run("runs/trial-3")
    run.steps, run.checkpoint_steps, run.history_frame()
    snap = run.at(250)                 # the snapshot at (or just before) step 250
    model = run.model_at(250)          # a model holding those weights
    unsubscribe = run.subscribe(cb)    # cb(snapshot) for each new snapshot as the run grows
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from explorer.models.observe import model_at
from explorer.models.registry import build_model, config_to_dict, model_kind
from explorer.train.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_atomically,
)
from explorer.train.config import TaskLike, TrainConfig
from explorer.train.probes import Probe
from explorer.train.recorders import Snapshot

__all__ = ["RUN_FORMAT", "Run", "RunError", "RunTask", "RunWriter", "find_runs"]

RUN_FORMAT, RUN_VERSION = "explorer.run", 1
_SNAPSHOT_FORMAT = "explorer.snapshot"
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")
_GROUPS = ("params", "activations", "attention")
STATES = ("running", "done", "diverged", "failed")
MAX_TASK_BYTES = 64 * 2**20  # user data up to this size is stored to continue training


class RunError(ValueError):
    """A run directory is missing, of another format, or does not hold what was asked."""


# ---------------------------------------------------------------------- small file helpers
def _atomic(path: Path, write: Callable[[str], object]) -> Path:
    """``write(tmp)`` then rename over ``path``, through explorer's one atomic writer; no fsync
    (snapshots and history are rewritten often; a killed writer leaves the previous file whole,
    and checkpoints are fsynced by :func:`save_checkpoint` itself)."""
    return write_atomically(path, write, fsync=False)


def _write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data, indent=1, default=_json_default, allow_nan=True)
    return _atomic(path, lambda tmp: Path(tmp).write_text(text))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _json_safe(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``meta`` that survive JSON (tensors and arrays are left out)."""
    out = {}
    for key, value in meta.items():
        try:
            json.dumps(value, default=_json_default)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


def _step_files(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    found = {}
    for entry in os.scandir(folder):
        match = _STEP_FILE.match(entry.name)
        if match:
            found[int(match.group(1))] = Path(entry.path)
    return dict(sorted(found.items()))


def _step_name(step: int) -> str:
    return f"step_{int(step):08d}.safetensors"


def _tensors(group: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{group}.{k}": v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def _read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get("explorer")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise RunError(f"{path} is not a readable safetensors file: {err}") from err
    try:
        header = json.loads(raw) if raw else {}
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: metadata is not valid JSON ({err})") from err
    return header, tensors


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Run directories (holding a ``run.json``) under ``root``, sorted by path."""
    return sorted(p.parent for p in Path(root).glob("**/run.json"))


class RunTask:
    """What a run stores of its task: name, kind, meta, and evaluation inputs as the test split
    (``x_test``/``y_test``); the training split is empty unless the full data was stored.
    Enough for every lab; :meth:`Run.task` rebuilds the full task to continue training."""

    def __init__(
        self,
        name: str,
        kind: str,
        meta: dict[str, Any],
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        x_train: torch.Tensor | None = None,
        y_train: torch.Tensor | None = None,
    ) -> None:
        self.name, self.kind, self.meta = name, kind, meta
        self.x_test, self.y_test = x_test, y_test
        self.x_train = x_test[:0] if x_train is None else x_train
        self.y_train = y_test[:0] if y_train is None else y_train

    def __repr__(self) -> str:
        return f"RunTask({self.name!r}, {self.kind}, {len(self.x_test)} inputs)"


# ---------------------------------------------------------------------- writing
class RunWriter:
    """Create the run directory ``path`` and write a run into it (see the module docstring).

    ``model``: the model being trained (a built-in model's config is stored so a reader can
    rebuild it; a user's own module stores none and readers pass ``model=`` to :class:`Run`).
    ``task``: the task (its first ``n_inputs`` test rows become the evaluation inputs);
    ``task_spec``: the generator keywords that rebuild it with
    :func:`explorer.data.make_task` (``{"noise": 0.1}``) — without one, user data up to 64 MiB
    is stored whole so training can continue. ``config``: the :class:`TrainConfig`.
    ``params``: free-form JSON values (a sweep trial's hyper-parameters). ``probe``: the
    recorder's probe, stored so readers lay predictions out the same way. An existing run at
    ``path`` is refused unless ``exist_ok=True`` (then it is appended to).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: nn.Module | None = None,
        task: TaskLike | None = None,
        config: TrainConfig | None = None,
        name: str | None = None,
        task_spec: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        probe: Probe | None = None,
        n_inputs: int = 512,
        exist_ok: bool = False,
    ) -> None:
        self.path = Path(path)
        if (self.path / "run.json").exists() and not exist_ok:
            raise RunError(f"{self.path} already holds a run; pass exist_ok=True to append")
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs!r}")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "snapshots").mkdir(exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self._lock = threading.Lock()
        model_config, model_class = None, None
        if model is not None:
            model_class = type(model).__name__
            try:
                model_config = config_to_dict(model.config, model_kind(model))
            except (TypeError, AttributeError):  # not a built-in model: readers pass model=
                model_config = None
        header: dict[str, Any] = {
            "format": RUN_FORMAT,
            "version": RUN_VERSION,
            "name": name or self.path.name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": model_config,
            "model_class": model_class,
            "train": None if config is None else config.as_dict(),
            "task": None,
            "probe": None,
            "params": dict(params or {}),
        }
        tensors: dict[str, torch.Tensor] = {}
        if task is not None:
            header["task"] = {
                "name": getattr(task, "name", "task"),
                "kind": task.kind,
                "spec": None if task_spec is None else dict(task_spec),
                "meta": _json_safe(getattr(task, "meta", None) or {}),
            }
            tensors["x"] = torch.as_tensor(task.x_test[:n_inputs]).contiguous().clone()
            tensors["y"] = torch.as_tensor(task.y_test[:n_inputs]).contiguous().clone()
            if task_spec is None:
                self._store_task(task)
        if probe is not None:
            header["probe"] = {"kind": probe.kind, "shape": list(probe.shape),
                               "extent": probe.extent, "meta": _json_safe(probe.meta)}  # fmt: skip
            tensors["probe.inputs"] = probe.inputs.detach().cpu().contiguous().clone()
            if probe.target is not None:
                tensors["probe.target"] = probe.target.detach().cpu().contiguous().clone()
        if tensors:
            _atomic(self.path / "inputs.safetensors", lambda tmp: save_file(tensors, tmp))
        if not (self.path / "run.json").exists():
            _write_json(self.path / "run.json", header)
        self.set_status("running", 0)

    def _store_task(self, task: TaskLike) -> None:
        splits = {k: torch.as_tensor(getattr(task, k)).contiguous().clone()
                  for k in ("x_train", "y_train", "x_test", "y_test")}  # fmt: skip
        size = sum(t.element_size() * t.nelement() for t in splits.values())
        if size <= MAX_TASK_BYTES:
            _atomic(self.path / "task.safetensors", lambda tmp: save_file(splits, tmp))

    def write_snapshot(self, snap: Snapshot) -> Path:
        """Write one snapshot (replacing one at the same step). Usable as a Recorder callback:
        ``recorder.subscribe(writer.write_snapshot)``."""
        tensors: dict[str, torch.Tensor] = {}
        for group in _GROUPS:
            tensors.update(_tensors(group, getattr(snap, group)))
        if snap.predictions is not None:
            tensors["predictions"] = snap.predictions.detach().cpu().contiguous().clone()
        meta = {"format": _SNAPSHOT_FORMAT, "version": RUN_VERSION, "step": int(snap.step),
                "metrics": {k: float(v) for k, v in snap.metrics.items()}}  # fmt: skip
        metadata = {"explorer": json.dumps(meta, allow_nan=True)}
        path = self.path / "snapshots" / _step_name(snap.step)
        with self._lock:
            return _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    def write_checkpoint(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save model (+ optimizer) at ``step`` with :func:`save_checkpoint`."""
        path = self.path / "checkpoints" / _step_name(step)
        full_state = {"step": int(step), **dict(state or {})}
        with self._lock:
            return save_checkpoint(path, model, optimizer=optimizer, state=full_state)

    def write_history(self, history: pd.DataFrame | list[Mapping[str, float]]) -> Path:
        """Write the metric history (tidy frame, or one metric dict per step)."""
        frame = history if isinstance(history, pd.DataFrame) else _history_frame(history)
        with self._lock:
            return _atomic(
                self.path / "history.parquet", lambda tmp: frame.to_parquet(tmp, index=False)
            )

    def truncate(self, step: int) -> None:
        """Forget everything after ``step`` (snapshots, checkpoints, history rows): a run
        resumed from its checkpoint at ``step`` then never shows the lost steps twice."""
        step = int(step)
        with self._lock:
            for folder in ("snapshots", "checkpoints"):
                for s, path in _step_files(self.path / folder).items():
                    if s > step:
                        path.unlink(missing_ok=True)
            hist = self.path / "history.parquet"
            if hist.is_file():
                frame = pd.read_parquet(hist)
                kept = frame[frame["step"] <= step]
                _atomic(hist, lambda tmp: kept.to_parquet(tmp, index=False))

    def set_status(self, state: str, step: int, message: str = "") -> Path:
        """Record how the run stands: running, done, diverged or failed."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        data = {"state": state, "step": int(step), "message": message, "time": time.time()}
        return _write_json(self.path / "status.json", data)

    def save(self, trainer: Any, *, state: str = "running", message: str = "") -> Path:
        """Checkpoint ``trainer`` (model + optimizer at its step, and a :class:`Trainer`'s
        ``resume_state`` so ``trainer.restore`` continues it exactly), write its history and
        status. Returns the checkpoint path."""
        resume = getattr(trainer, "resume_state", None)  # a Trainer: batch order, generators…
        position = resume(history=False) if callable(resume) else None
        out = self.write_checkpoint(trainer.global_step, trainer.model, trainer.optimizer, position)
        self.write_history(trainer.history)
        self.set_status(state, trainer.global_step, message)
        return out


def _history_frame(history: list[Mapping[str, float]]) -> pd.DataFrame:
    """Tidy ``step, metric, value`` rows of a trainer's history (columns built directly: a
    500-step history in ~1 ms, rewritten at every snapshot of a followed sweep)."""
    steps: list[int] = []
    metrics: list[str] = []
    values: list[float] = []
    for m in history:
        step = int(m["step"])
        for k, v in m.items():
            if k != "step":
                steps.append(step)
                metrics.append(k)
                values.append(float(v))
    return pd.DataFrame({"step": np.array(steps, dtype=np.int64),
                         "metric": pd.Series(metrics, dtype=str),
                         "value": np.array(values, dtype=np.float64)})  # fmt: skip


# ---------------------------------------------------------------------- reading
class Run:
    """Read a run directory written by :class:`RunWriter` — also while it is being written.

    ``model``: for runs of a user's own module (no stored config), the module to load weights
    into (a template; it is copied, never changed) or a factory ``f()``. Snapshots are read
    lazily and the last ``cache`` of them kept. A source for every lab: ``steps``, ``at``,
    ``latest``, ``model_at``, ``history``, ``task``, ``probe``, ``subscribe``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model: nn.Module | Callable[[], nn.Module] | None = None,
        poll_s: float = 0.5,
        cache: int = 8,
    ) -> None:
        self.path = Path(path)
        head = self.path / "run.json"
        if not head.is_file():
            raise RunError(
                f"{str(path)!r} is not a run directory (no run.json); runs are written by "
                "explorer.train.runs.RunWriter (a TrainingLab's Save button, a sweep trial)"
            )
        try:
            self.config: dict[str, Any] = json.loads(head.read_text())
        except json.JSONDecodeError as err:
            raise RunError(f"{head} is not valid JSON ({err})") from err
        if self.config.get("format") != RUN_FORMAT or self.config.get("version") != RUN_VERSION:
            raise RunError(
                f"{head}: format {self.config.get('format')!r} version "
                f"{self.config.get('version')!r}; this explorer reads {RUN_FORMAT!r} v{RUN_VERSION}"
            )
        self.name = str(self.config.get("name") or self.path.name)
        self._template = model
        self._poll_s = float(poll_s)
        self._cache: OrderedDict[int, Snapshot] = OrderedDict()
        self._cache_size = max(1, int(cache))
        self._lock = threading.RLock()
        self._inputs: dict[str, torch.Tensor] | None = None
        self._subscribers: list[Callable[[Snapshot], None]] = []
        self._poller: threading.Thread | None = None
        self._wake = threading.Event()  # set: the poller looks at its subscribers now
        self._seen: int | None = None
        self.run_id = 0

    def __repr__(self) -> str:
        steps = self.steps
        span = f"steps {steps[0]}..{steps[-1]}" if steps else "no snapshots yet"
        return f"Run({str(self.path)!r}, {len(steps)} snapshots, {span})"

    # ------------------------------------------------------------------ contents
    @property
    def steps(self) -> list[int]:
        """Steps with a recorded snapshot (re-read from disk: grows while the run is written)."""
        return list(_step_files(self.path / "snapshots"))

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps with a checkpoint (model + optimizer)."""
        return list(_step_files(self.path / "checkpoints"))

    @property
    def status(self) -> dict[str, Any]:
        """The run's status.json (state, step, message); empty when absent."""
        try:
            return dict(json.loads((self.path / "status.json").read_text()))
        except (OSError, json.JSONDecodeError):
            return {}

    @property
    def notes(self) -> tuple[str, ...]:
        """A sentence for a lab's status line when the run diverged or failed."""
        st = self.status
        if st.get("state") in ("diverged", "failed"):
            return (f"the run {st['state']} at step {st.get('step')}: {st.get('message', '')}",)
        return ()

    @property
    def params(self) -> dict[str, Any]:
        """The free-form values the writer stored (e.g. a sweep trial's hyper-parameters)."""
        return dict(self.config.get("params") or {})

    @property
    def train_config(self) -> TrainConfig | None:
        cfg = self.config.get("train")
        return None if cfg is None else TrainConfig(**cfg)

    def snapshot(self, step: int) -> Snapshot:
        """The snapshot recorded exactly at ``step``."""
        step = int(step)
        with self._lock:
            if step in self._cache:
                self._cache.move_to_end(step)
                return self._cache[step]
        path = self.path / "snapshots" / _step_name(step)
        if not path.is_file():
            raise KeyError(f"{self.path} has no snapshot at step {step}; steps: {self.steps[-5:]}")
        header, tensors = _read_safetensors(path)
        if header.get("format") != _SNAPSHOT_FORMAT:
            raise RunError(f"{path} is not an explorer snapshot")
        groups: dict[str, dict[str, torch.Tensor]] = {g: {} for g in _GROUPS}
        for key, value in tensors.items():
            group, _, name = key.partition(".")
            if group in groups:
                groups[group][name] = value
        snap = Snapshot(
            step=int(header["step"]),
            metrics={k: float(v) for k, v in header.get("metrics", {}).items()},
            predictions=tensors.get("predictions"),
            **groups,
        )
        with self._lock:
            self._cache[step] = snap
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return snap

    def at(self, step: int) -> Snapshot:
        """The snapshot at ``step`` or the last one before it."""
        earlier = [s for s in self.steps if s <= int(step)]
        if not earlier:
            raise KeyError(f"no snapshot at or before step {step} in {self.path}")
        return self.snapshot(earlier[-1])

    @property
    def latest(self) -> Snapshot | None:
        steps = self.steps
        return self.snapshot(steps[-1]) if steps else None

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Snapshot]:
        return (self.snapshot(s) for s in self.steps)

    def history_frame(self) -> pd.DataFrame:
        """The tidy metric history (step, metric, value); empty before the first save."""
        path = self.path / "history.parquet"
        if not path.is_file():
            return _history_frame([])
        return pd.read_parquet(path)

    def history(self) -> list[dict[str, float]]:
        """The history as one metric dict per step (as ``Trainer.history``); steps without a
        saved history fall back to the snapshots' metrics."""
        frame = self.history_frame()
        if frame.empty:
            return [dict(s.metrics, step=float(s.step)) for s in self]
        wide = frame.pivot_table(index="step", columns="metric", values="value", sort=True)
        return [
            {"step": float(step), **{k: float(v) for k, v in row.items() if pd.notna(v)}}
            for step, row in wide.iterrows()
        ]

    # ------------------------------------------------------------------ inputs and task
    def _input_tensors(self) -> dict[str, torch.Tensor]:
        if self._inputs is None:
            path = self.path / "inputs.safetensors"
            self._inputs = _read_safetensors(path)[1] if path.is_file() else {}
        return self._inputs

    @property
    def probe(self) -> Probe | None:
        """The recorder's probe (inputs, layout and target of the snapshots' predictions)."""
        spec = self.config.get("probe")
        tensors = self._input_tensors()
        if spec is None or "probe.inputs" not in tensors:
            return None
        extent = spec.get("extent")
        return Probe(spec["kind"], tensors["probe.inputs"], tuple(spec.get("shape") or ()),
                     None if extent is None else tuple(extent), tensors.get("probe.target"),
                     dict(spec.get("meta") or {}))  # fmt: skip

    @property
    def task(self) -> RunTask | None:
        """The stored task: meta plus the evaluation inputs as its test split (and the full
        data when the writer stored it). ``None`` when the writer had no task."""
        spec = self.config.get("task")
        tensors = self._input_tensors()
        if spec is None or "x" not in tensors:
            return None
        full: dict[str, torch.Tensor] = {}
        if (self.path / "task.safetensors").is_file():
            full = _read_safetensors(self.path / "task.safetensors")[1]
        return RunTask(spec["name"], spec["kind"], dict(spec.get("meta") or {}), tensors["x"],
                       tensors["y"], full.get("x_train"), full.get("y_train"))  # fmt: skip

    def full_task(self) -> TaskLike:
        """The task to continue training on: rebuilt from its generator keywords (``spec``)
        with :func:`explorer.data.make_task`, or the stored data; RunError if neither."""
        spec = self.config.get("task") or {}
        if spec.get("spec") is not None:
            from explorer.data import make_task

            return make_task(spec["name"], **spec["spec"])
        path = self.path / "task.safetensors"
        if not path.is_file():
            raise RunError(
                f"{self.path} stores neither the task's generator keywords nor its data; pass "
                "the data again (TrainingLab.load(path, data=(x, y)))"
            )
        t = _read_safetensors(path)[1]
        from explorer.data import Task

        return Task(spec.get("name", "data"), spec["kind"], t["x_train"], t["y_train"],
                    t["x_test"], t["y_test"], meta=dict(spec.get("meta") or {}))  # fmt: skip

    # ------------------------------------------------------------------ models
    def template(self) -> nn.Module:
        """A fresh model of the run's architecture (from its config or the ``model=`` given)."""
        if self._template is not None:
            if isinstance(self._template, nn.Module):
                import copy

                return copy.deepcopy(self._template)
            return self._template()
        config = self.config.get("model")
        if config is None:
            raise RunError(
                f"{self.path} holds a {self.config.get('model_class') or 'user'} model without a "
                "stored config: pass the model, Run(path, model=my_module)"
            )
        return build_model(config)

    def model_at(self, step: int) -> nn.Module:
        """A model holding the weights at ``step`` (the checkpoint there, else the snapshot at
        or before it), in eval mode."""
        ckpts = _step_files(self.path / "checkpoints")
        if int(step) in ckpts:
            return self.load_checkpoint(int(step)).model.eval()
        snap = self.at(step)
        if not snap.params:
            raise RunError(
                f"the snapshot at step {snap.step} holds no parameters and there is no "
                f"checkpoint at step {step}; checkpoints: {list(ckpts)[-5:]}"
            )
        return model_at(self.template(), snap.params).eval()

    def checkpoint_path(self, step: int | None = None) -> Path:
        """The checkpoint file at ``step`` (default: the last), e.g. for ``Trainer.restore``."""
        ckpts = _step_files(self.path / "checkpoints")
        if not ckpts:
            raise RunError(f"{self.path} has no checkpoint yet")
        step = list(ckpts)[-1] if step is None else int(step)
        if step not in ckpts:
            raise RunError(f"{self.path} has no checkpoint at step {step}; have {list(ckpts)}")
        return ckpts[step]

    def load_checkpoint(
        self,
        step: int | None = None,
        *,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> Checkpoint:
        """Load the checkpoint at ``step`` (default: the last) into ``model`` (default: a
        fresh one of the run's architecture) and ``optimizer``."""
        path = self.checkpoint_path(step)
        target = model if model is not None else self.template()
        return load_checkpoint(path, target, optimizer=optimizer)

    # ------------------------------------------------------------------ following
    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` for every snapshot that appears from now on (a thread
        polls the directory every ``poll_s`` seconds while anyone is subscribed). The returned
        ``unsubscribe()`` stops the thread when the last subscriber leaves and waits for it."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._subscribers.append(callback)
            if self._seen is None:
                steps = self.steps
                self._seen = steps[-1] if steps else -1
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(
                    target=self._poll, name="xp-run-follow", daemon=True
                )
                self._poller.start()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
                poller = None if self._subscribers else self._poller
            if poller is not None and poller is not threading.current_thread():
                self._wake.set()
                poller.join(timeout=10)

        return unsubscribe

    def poll(self) -> list[Snapshot]:
        """Check for new snapshots now; notify subscribers of each, oldest first."""
        with self._lock:
            seen = -1 if self._seen is None else self._seen
            new = [s for s in self.steps if s > seen]
            if new:
                self._seen = new[-1]
            callbacks = list(self._subscribers)
        snaps = [self.snapshot(s) for s in new]
        for snap in snaps:
            for callback in callbacks:
                try:
                    callback(snap)
                except Exception as err:
                    warnings.warn(
                        f"run subscriber {callback!r} failed at step {snap.step}: "
                        f"{type(err).__name__}: {err}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        return snaps

    def _poll(self) -> None:
        while True:
            with self._lock:
                self._wake.clear()
                if not self._subscribers:
                    self._poller = None
                    return
            try:
                self.poll()
            except (RunError, KeyError, OSError):
                pass  # a file vanished or is being replaced: the next poll sees it whole
            self._wake.wait(self._poll_s)
