"""The live training lab: configure a task and a model — or bring your own ``nn.Module`` and
data — press Play, watch it learn, scrub back, save a run and load it again.

Training runs in one background thread (never more: every start, stop and rebuild goes
through one lock and joins the old thread first). The thread steps the :class:`Trainer`,
records snapshots, and refreshes the views at most ``refresh_hz`` times a second and never
more than :data:`UI_BUDGET` of the wall time; dense maps go to
:class:`~widgets.canvas.HeatmapGrid` as binary float32. The lab is a source: other labs
follow it (``GeometryLab(source=lab)``), through its :class:`~explorer.train.Recorder`.

Views (by task): ``metrics`` (losses, accuracy), ``predictions`` (decision surface, fitted
signal or image, predicted classes of sample images), ``residual_spectrum`` (signals and
images: residual power per frequency over training), ``attention`` (sequence tasks).
"""

from __future__ import annotations

import atexit
import inspect
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from explorer.data import TASKS, make_task, user_task
from explorer.device import torch_threads
from explorer.models.registry import FAMILIES, model_for_task, task_families
from explorer.train import Recorder, TrainConfig, Trainer, TrainingDiverged
from explorer.train.runs import Run, RunWriter
from explorer.train.sources import RecorderSource
from explorer.validation import check_positive_int
from widgets._lab import Lab, close_tree
from widgets._residual import ResidualRows
from widgets._training_controls import (
    FIELD_WIDTH,
    GROUP_DEFAULTS,
    GROUP_TRAIN,
    TASK_CHOICES,
    USER_DATA,
    TrainingControls,
    check_value,
    group_of,
)
from widgets.canvas import HeatmapGrid
from widgets.figures import spectra as spectra_figs
from widgets.figures import training as figs

__all__ = ["TASK_CHOICES", "TrainingLab"]

UI_BUDGET = 0.02  # share of the training thread's time the live views may take
N_TILES = 16  # sample images in the predictions view of an image classification task
_LABS: weakref.WeakSet[TrainingLab] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # a kernel shutdown leaves no training thread behind
    for lab in list(_LABS):
        lab.pause()


class TrainingLab(Lab):
    """Train a model on a task live in the notebook.

    ``task``: one of :data:`TASK_CHOICES` (2-D toys, ``signal_1d``/``image`` fits, ``digits``/
    ``shapes`` image classes, sequence tasks) with ``task_kwargs`` for its generator.
    ``data``: your own data instead — ``(x, y)`` arrays/tensors, a DataFrame (name the columns
    with ``features=`` and ``target=``), a .csv path, or a :class:`~explorer.data.Task`;
    integer/string targets classify, float targets regress. ``model``: the architecture knobs
    of ``family`` (see :data:`explorer.models.registry.FAMILIES`; default: the task's natural
    family), or your own ``nn.Module`` or factory ``f(seed)``. A model that does not fit the
    data (feature count, output width vs classes) is refused here, before any step.
    ``train``: a :class:`TrainConfig` or a dict of its fields. Every ``record_every`` steps a
    snapshot is recorded (``max_bytes`` bounds them, oldest dropped first); views refresh at
    most ``refresh_hz`` times a second. ``threads``: torch threads of the training thread
    (default: 1 for the built-in models, torch's count for yours). Values outside what the
    controls offer raise a ValueError naming the field and its range.

    Why one thread for the built-in models: they are tiny, so their ops gain little from a
    second thread, and a training thread beside the kernel's own starts a second OpenMP team;
    with more OpenMP threads than cores, OpenMP stops spinning between ops and sleeps instead.
    On 2 cores, 2 threads trained the tiny transformer 1.7–1.9× and a 32-wide MLP 4× slower
    than 1.

    Plain-Python control: :meth:`play`, :meth:`pause`, :meth:`step`, :meth:`reset`,
    :meth:`configure`, :meth:`show_step`, :meth:`save`, :meth:`load`, :meth:`wait`, and the
    lab protocol (:mod:`widgets._lab`).
    """

    kind = "training"

    def __init__(
        self,
        task: str = "spirals",
        *,
        source: Any = None,
        data: Any = None,
        features: list[str] | None = None,
        target: str | None = None,
        model: Mapping[str, Any] | nn.Module | Callable[..., nn.Module] | None = None,
        family: str | None = None,
        task_kwargs: Mapping[str, Any] | None = None,
        train: TrainConfig | Mapping[str, Any] | None = None,
        record_every: int | None = None,
        refresh_hz: float = 10.0,
        max_bytes: int = 256 * 2**20,
        threads: int | None = None,
        out_dir: str | Path = "exports",
    ) -> None:
        if threads is not None:
            check_positive_int(threads, "threads")
        if data is None and task not in TASK_CHOICES:
            raise ValueError(f"task must be one of {TASK_CHOICES} (or give data=...), got {task!r}")
        if not (isinstance(refresh_hz, (int, float)) and refresh_hz > 0):
            raise ValueError(f"refresh_hz must be > 0, got {refresh_hz!r}")
        if record_every is not None and (
            isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1
        ):
            raise ValueError(f"record_every must be an integer >= 1, got {record_every!r}")  # fmt: skip
        super().__init__(out_dir=out_dir, min_interval_s=1.0 / refresh_hz)
        self._user_data = None
        if data is not None:
            self._user_data = (
                data if hasattr(data, "x_train") else (data, features, target)
            )  # a Task is used as it is
            task = USER_DATA
        self._user_model = (
            model
            if isinstance(model, nn.Module) or (callable(model) and not isinstance(model, Mapping))
            else None
        )
        knobs = dict(model) if isinstance(model, Mapping) else {}
        base = train if isinstance(train, TrainConfig) else TrainConfig(**dict(train or {}))
        self._config = base
        # settings the user gave keep their value; the others take the task group's defaults
        self._explicit_train = (
            set(base.as_dict()) if isinstance(train, TrainConfig) else set(dict(train or {}))
        )
        self._record_every_arg, self._max_bytes = record_every, max_bytes
        self.threads = threads or (1 if self._user_model is None else torch.get_num_threads())
        self._period = 1.0 / refresh_hz
        self._run_lock = threading.RLock()  # start / stop / rebuild
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # wait(steps=…) sleeps on this; the training thread wakes it at step _wake_at and
        # when it stops (no polling: a waiter waking 100 times a second cost 5% of a toy
        # model's steps, for the GIL)
        self._progress = threading.Condition()
        self._wake_at: int | None = None
        self._quiet = False  # set while controls are changed programmatically
        self._steps_per_s = 0.0
        self._run_writer: RunWriter | None = None
        self._written: set[int] = set()
        self._residual: ResidualRows | None = None
        self._drawn: dict[Any, Any] = {}
        self._build_controls(task, dict(task_kwargs or {}), family, knobs, base)
        self._task = self._make_task()
        self._recorder: Recorder | None = None
        self._new_trainer()
        self._build_views()
        self._refresh(force=True)
        _LABS.add(self)
        if source is not None:
            self.follow(source)

    # ================================================================== public API
    @property
    def trainer(self) -> Trainer:
        return self._trainer

    @property
    def recorder(self) -> Recorder:
        assert self._recorder is not None
        return self._recorder

    @property
    def task(self) -> Any:
        return self._task

    @property
    def controls(self) -> dict[str, W.Widget]:
        """The lab's controls by name (task, noise, n, test_fraction, family, the current
        family's model knobs, optimizer, lr, batch_size, weight_decay, seed)."""
        return self._panel.public()

    @property
    def buttons(self) -> dict[str, W.Button]:
        """Play, Pause, Step, Reset, Save."""
        return dict(self._buttons)

    @property
    def panels(self) -> dict[str, W.Widget]:
        views = self.views
        out: dict[str, W.Widget] = {"metrics": self._metrics}
        if "predictions" in views:
            out["predictions"] = self._fit if self._fit is not None else self._grid
        if "attention" in views:
            out["attention"] = self._grid
        if "residual_spectrum" in views and self._spectrum_grid is not None:
            out["residual_spectrum"] = self._spectrum_grid
        return out

    @property
    def running(self) -> bool:
        th = self._thread
        return th is not None and th.is_alive()

    @property
    def own(self) -> bool:
        """True while the lab trains its own model (False while it follows another run)."""
        return isinstance(self._source, RecorderSource) and self._source.recorder is self._recorder

    @property
    def shown(self) -> Any:
        """The snapshot every view currently shows."""
        src, step = self._source, self._shown_step
        return None if src is None or step is None else src.at(step)

    @property
    def tokens(self) -> list[str] | None:
        """Display strings of the attention probe's first sequence (sequence tasks)."""
        src = self._source
        probe, task = getattr(src, "probe", None), getattr(src, "task", None)
        vocab = (getattr(task, "meta", None) or {}).get("vocab")
        if probe is None or probe.kind != "sequence":
            return None
        ids = [int(t) for t in probe.inputs[0]]
        return [str(vocab[i]) if vocab is not None and 0 <= i < len(vocab) else str(i) for i in ids]

    @property
    def selection(self) -> dict[str, Any]:
        values = {k: w.value for k, w in self.controls.items()}
        values["step"] = self._shown_step
        return values

    def play(self) -> None:
        """Start training in the background (no-op if already running)."""
        self._require_own()
        with self._run_lock:
            if self.running:
                return
            self._stop.clear()
            self._latest_followed = True
            self.last_error = None
            self._set_status("training…")
            self._thread = threading.Thread(target=self._loop, name="xp-training-lab", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop the training thread and wait for it (no-op if not running)."""
        with self._run_lock:
            self._halt()
        self._refresh(force=True)

    def step(self, n: int = 1) -> None:
        """Pause, then train ``n`` steps in the caller's thread and show the result."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"step(n): n must be an integer >= 1, got {n!r}")
        self._require_own()
        with self._run_lock:
            self._halt()
            for _ in range(int(n)):
                if not self._train_one():
                    break
            self.recorder.record()
        self._latest_followed = True
        self._refresh(force=True)

    def reset(self) -> None:
        """Back to step 0 with the same settings (continues if it was running)."""
        self._require_own()
        self._rebuild(new_task=False)

    def configure(self, **values: Any) -> None:
        """Set controls by name (see :attr:`controls`) as a user would, with one rebuild;
        continues if it was running. Every value is checked first: on an error nothing
        changes."""
        self._require_own()
        before = group_of(self._c["task"].value)
        task = values.get("task", self._c["task"].value)
        check_value("task", self._c["task"], task)
        fits = () if self._user_model is not None else task_families(self._peek_task(task))
        family = values.get("family") or (
            fits[0] if "task" in values and fits else self._panel.family
        )
        targets = self._panel.checked(values, family, fits)
        self._quiet = True
        try:
            if "task" in values:
                self._c["task"].value = task
                self._new_group(before, set(values))
            for widget, value in targets:
                widget.value = value
        finally:
            self._quiet = False
        self._panel.sync_visibility()
        self._rebuild(new_task=bool({"task", "noise", "n", "test_fraction"} & set(values)))

    def wait(self, steps: int | None = None, timeout: float = 60.0) -> None:
        """Block until training reaches ``steps`` (or stops), then until the views caught up."""
        end = time.monotonic() + timeout
        with self._progress:
            while self.running and (steps is None or self._trainer.global_step < steps):
                left = end - time.monotonic()
                if left <= 0:
                    break
                if steps is not None:
                    self._wake_at = steps if self._wake_at is None else min(self._wake_at, steps)
                self._progress.wait(min(left, 0.25))
        super().wait(max(end - time.monotonic(), 1.0))

    def follow(self, source: Any) -> TrainingLab:
        """Show another run (a run directory, a Recorder, another TrainingLab) read-only:
        its history, snapshots and step slider; the training controls are disabled. Follow
        ``lab`` itself to train again."""
        if source is self or source is self._recorder:
            with self._run_lock:
                self._halt()
                self._stop_following()
                self._source = RecorderSource(self.recorder)
                self._run_id = self.recorder.run_id
            self._panel.set_enabled(True)
            self._build_views()
            self._refresh(force=True)
            return self
        with self._run_lock:
            self._halt()
        self._panel.set_enabled(False)
        super().follow(source)
        return self

    def _on_follow(self, source: Any) -> None:
        self._residual = None
        self._build_views()

    def close(self) -> None:
        if hasattr(self, "_run_lock"):  # also called by __del__ of a half-built lab
            with self._run_lock:
                self._halt()
        super().close()

    def _on_close(self) -> None:
        panel = getattr(self, "_panel", None)  # a half-built lab (its __init__ raised) closes too
        if panel is not None:
            panel.close()
        for widget in getattr(self, "_view_widgets", ()):
            close_tree(widget)

    # ---------------------------------------------------------------- save and load
    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the run so far into a run directory (default: a new one under
        ``out_dir/runs/`` per run; later saves add to it): a checkpoint (model + optimizer)
        at the current step, the history, every recorded snapshot not saved yet. Returns
        the directory; :meth:`load` continues from it."""
        self._require_own()
        with self._run_lock:
            was = self.running
            self._halt()
            try:
                writer = self._writer_for(path)
                for snap in self.recorder:
                    if snap.step not in self._written:
                        writer.write_snapshot(snap)
                        self._written.add(snap.step)
                writer.save(self._trainer)
            finally:
                if was:
                    self.play()
        self._set_status(f"saved step {self._trainer.global_step} to {writer.path}")
        return writer.path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        model: nn.Module | Callable[..., nn.Module] | None = None,
        data: Any = None,
        step: int | None = None,
        **options: Any,
    ) -> TrainingLab:
        """A lab that continues the run saved in ``path`` (see :meth:`save`): weights,
        optimizer state, history and recorded snapshots at its last checkpoint (or ``step``).
        Runs of your own module need ``model=`` (the architecture; its weights are replaced),
        runs of your own data not stored whole need ``data=``."""
        run = Run(path, model=model)
        spec = run.config.get("task") or {}
        mcfg = run.config.get("model")
        train = run.train_config or TrainConfig()
        kwargs: dict[str, Any] = {"train": train, **options}
        if mcfg is not None and model is None:
            family = mcfg["kind"]
            kwargs.update(
                family=family, model={k: mcfg[k] for k in FAMILIES.get(family, ()) if k in mcfg}
            )
        else:
            kwargs["model"] = run.template()
        if data is not None:
            lab = cls(data=data, **kwargs)
        elif spec.get("spec") is not None and spec.get("name") in TASK_CHOICES:
            lab = cls(spec["name"], task_kwargs=spec["spec"], **kwargs)
        else:
            lab = cls(data=run.full_task(), **kwargs)
        lab._restore(run, step)
        return lab

    def _restore(self, run: Run, step: int | None) -> None:
        t = self._trainer
        path = run.checkpoint_path(step)
        kept = run.checkpoint_steps[-1] if step is None else int(step)
        # all or nothing; weights, optimizer, batch order and generators continue exactly
        t.restore(path, history=[h for h in run.history() if int(h["step"]) <= kept])
        at = t.global_step
        self.recorder.clear()
        self.recorder.restore(run.snapshot(s) for s in run.steps if s <= at)
        self.recorder.record()
        self._run_id = self.recorder.run_id
        self._run_writer = RunWriter(run.path, exist_ok=True)
        self._written = {s for s in run.steps if s <= at}
        self._latest_followed = True
        self._refresh(force=True)
        self._set_status(f"loaded {run.path} at step {at}: press Play to continue")

    def _writer_for(self, path: str | os.PathLike[str] | None) -> RunWriter:
        if path is not None and (self._run_writer is None or Path(path) != self._run_writer.path):
            self._run_writer, self._written = None, set()
            target = Path(path)
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            target = self.out_dir / "runs" / f"{self._task.name}-{stamp}"
        if self._run_writer is None:
            spec = self._task_spec()
            self._run_writer = RunWriter(
                target, model=self._trainer.model, task=self._task, config=self._config,
                task_spec=spec, probe=self.recorder.probe, exist_ok=path is not None,
            )  # fmt: skip
        return self._run_writer

    def _task_spec(self) -> dict[str, Any] | None:
        return None if self._task_key == USER_DATA else self._task_kwargs(self._task_key)

    # ================================================================== protocol
    def _available_views(self) -> list[str]:
        probe = getattr(self._source, "probe", None)
        kind = None if probe is None else probe.kind
        views = ["metrics"]
        if kind in ("surface", "field") or (
            kind == "points" and self._tile_images(probe) is not None
        ):
            views.append("predictions")
        if kind == "field":
            views.append("residual_spectrum")
        if kind == "sequence":
            views.append("attention")
        return views

    def _current_view(self) -> str:
        views = self.views
        return views[1] if len(views) > 1 else views[0]

    def _snap(self) -> Any:
        src = self._source
        if self._shown_step is not None:
            return src.at(self._shown_step)
        return src.latest

    def _figure(self, view: str) -> go.Figure:
        snap, src = self._snap(), self._source
        probe, task = src.probe, src.task
        step = None if snap is None else snap.step
        if view == "metrics":
            return figs.metrics_figure(src.history(), step=step, accuracy=self._has_accuracy())
        if snap is None or (snap.predictions is None and view == "predictions"):
            raise ValueError(f"no snapshot with predictions yet: nothing to show in {view!r}")
        title = f"{src.name}, step {snap.step}"
        if view == "attention":
            if not snap.attention:
                raise ValueError("the snapshot holds no attention patterns")
            return figs.attention_figure(snap.attention, self.tokens)
        if view == "residual_spectrum":
            steps, spec = self._residual_until(snap.step)
            return spectra_figs.residual_history_figure(
                steps, spec, title=f"residual power per frequency, {src.name}"
            )
        if probe.kind == "surface":
            x, y = self._points(task)
            return figs.decision_surface_figure(
                snap.predictions, probe.shape, probe.extent, x, y, title=title
            )
        if probe.kind == "field" and len(probe.shape) == 1:
            return figs.signal_figure(
                probe.inputs[:, 0], probe.target, snap.predictions, title=title
            )
        if probe.kind == "field":
            return figs.image_figure(snap.predictions, probe.target, probe.shape, title=title)
        images, truth = self._tile_images(probe)  # type: ignore[misc]
        return figs.sample_predictions_figure(
            images, np.asarray(snap.predictions)[: len(images)], truth, title=title,
            classes=(getattr(task, "meta", None) or {}).get("classes"),
        )  # fmt: skip

    def _frame(self, view: str) -> pd.DataFrame:
        snap, src = self._snap(), self._source
        if view == "metrics":
            hist = src.history()
            return pd.DataFrame(
                [{"step": int(h["step"]), "metric": k, "value": float(v)}
                 for h in hist for k, v in h.items() if k != "step"],
                columns=["step", "metric", "value"],
            )  # fmt: skip
        if snap is None:
            raise ValueError(f"no snapshot yet: nothing to show in {view!r}")
        probe = src.probe
        if view == "residual_spectrum":
            steps, spec = self._residual_until(snap.step)
            s, f = np.meshgrid(steps, spec.freqs, indexing="ij")
            return pd.DataFrame(
                {"step": s.ravel(), "frequency": f.ravel(), "power": spec.power.ravel()}
            )
        if view == "attention":
            maps, _ = figs.attention_maps(snap.attention)  # (layers·heads, T, T)
            n_heads = int(next(iter(snap.attention.values())).shape[1])
            i, q, k = np.meshgrid(*(np.arange(n) for n in maps.shape), indexing="ij")
            out = pd.DataFrame({"layer": (i // n_heads).ravel(), "head": (i % n_heads).ravel(),
                                "query": q.ravel(), "key": k.ravel(), "weight": maps.ravel()})  # fmt: skip
            toks = self.tokens or []
            if len(toks) == maps.shape[-1]:
                out.insert(4, "query_token", np.asarray(toks)[out["query"]])
                out.insert(5, "key_token", np.asarray(toks)[out["key"]])
            return out
        p = np.asarray(snap.predictions, dtype=np.float64)
        if probe.kind == "surface":
            xy = np.asarray(probe.inputs, dtype=np.float64)
            n, c = p.shape
            return pd.DataFrame({"x1": np.repeat(xy[:, 0], c), "x2": np.repeat(xy[:, 1], c),
                                 "class": np.tile(np.arange(c), n), "probability": p.ravel()})  # fmt: skip
        if probe.kind == "field":
            coords = np.asarray(probe.inputs, dtype=np.float64)
            target = np.asarray(probe.target, dtype=np.float64)
            cols = {f"x{i + 1}": coords[:, i] for i in range(coords.shape[1])}
            parts = []
            for series, values in (("target", target), ("model", p)):
                for ch in range(values.shape[1]):
                    parts.append(
                        pd.DataFrame(
                            {**cols, "channel": ch, "series": series, "value": values[:, ch]}
                        )
                    )
            return pd.concat(parts, ignore_index=True)
        images, truth = self._tile_images(probe)  # type: ignore[misc]
        probs = p[: len(images)]
        return pd.DataFrame({"sample": np.arange(len(images)), "true": truth,
                             "predicted": probs.argmax(1), "probability": probs.max(1)})  # fmt: skip

    def _show_snapshot(self, snap: Any) -> None:
        """Draw ``snap`` in the prediction/attention/spectrum views (and the metrics marker)."""
        src = self._source
        probe = src.probe
        self._shown_step = int(snap.step)
        if probe is not None and snap.predictions is not None:
            title = f"step {snap.step}"
            if probe.kind == "surface":
                z, _, _ = figs.surface_map(snap.predictions, probe.shape)
                n_classes = int(np.asarray(snap.predictions).shape[-1])
                self._grid.show(z, [title], **figs.surface_style(n_classes, probe.extent))
            elif probe.kind == "field":
                if self._fit is not None:
                    with self._fit.batch_update():
                        self._fit.data[1].y = np.asarray(snap.predictions).reshape(-1)
                        self._fit.layout.title.text = title
                else:
                    self._grid.show(figs.image_maps(snap.predictions, probe.target, probe.shape),
                                    [f"model, {title}", "target"], vmin=0.0, vmax=1.0,
                                    colorbar_title="intensity", x_title="x", y_title="y")  # fmt: skip
                self._draw_residual(snap.step)
            elif probe.kind == "points" and self._tile_images(probe) is not None:
                images, truth = self._tile_images(probe)  # type: ignore[misc]
                pred = np.asarray(snap.predictions)[: len(images)].argmax(1)
                names = (getattr(src.task, "meta", None) or {}).get("classes")
                label = (lambda i: str(names[i])) if names else str
                titles = [f"{label(int(p))}{'' if p == t else ' ✗'}" for p, t in zip(pred, truth)]
                self._grid.show(images, titles, vmin=float(images.min()), vmax=float(images.max()),
                                colorbar_title="pixel value",
                                caption=f"predicted class of {len(images)} test images ({title}); ✗ = wrong")  # fmt: skip
        if snap.attention and probe is not None and probe.kind == "sequence":
            maps, titles = figs.attention_maps(snap.attention)
            tokens = self.tokens or []
            n_heads = next(iter(snap.attention.values())).shape[1]
            self._grid.show(maps, titles, vmin=0.0, vmax=1.0, row_labels=tokens, col_labels=tokens,
                            columns=n_heads, colorbar_title="attention weight", x_title="key",
                            y_title="query", caption=f"attention on a test sequence, {title}")  # fmt: skip
        self._update_metrics()

    # ================================================================== training
    def _require_own(self) -> None:
        if not self.own:
            raise RuntimeError(
                "this lab follows another run read-only; TrainingLab.load(path) continues a "
                "saved run, lab.follow(lab) trains this lab's own model again"
            )

    def _halt(self) -> None:
        """Stop and join the training thread. Call with ``self._run_lock`` held."""
        th = self._thread
        if th is None:
            return
        self._stop.set()
        if th is not threading.current_thread():
            th.join()
        self._thread = None

    def _train_one(self) -> bool:
        try:
            self._trainer.step()
        except TrainingDiverged as err:
            self.recorder.truncate(self._trainer.global_step)
            self.last_error = err.reason
            self._set_status(
                f"⚠ paused: {err.reason} Lower the learning rate with the slider, then press Play.",
                error=True,
            )
            return False
        self.recorder.maybe_record()
        return True

    def _loop(self) -> None:
        with torch_threads(self.threads):
            self._train_until_stopped()

    def _train_until_stopped(self) -> None:
        last_ui, ui_cost = 0.0, 0.0
        t0, s0 = time.perf_counter(), self._trainer.global_step
        ok = True
        try:
            while not self._stop.is_set():
                if not self._train_one():
                    ok = False
                    break
                wake = self._wake_at
                if wake is not None and self._trainer.global_step >= wake:
                    with self._progress:
                        self._wake_at = None
                        self._progress.notify_all()
                now = time.perf_counter()
                # at most refresh_hz, and never more than UI_BUDGET of the wall time
                if now - last_ui >= max(self._period, ui_cost / UI_BUDGET):
                    self._steps_per_s = (self._trainer.global_step - s0) / max(now - t0, 1e-9)
                    self._refresh()
                    last_ui = time.perf_counter()
                    ui_cost = 0.5 * ui_cost + 0.5 * (last_ui - now)
        except Exception as err:
            ok = False
            self._fail(err, "training stopped: ")
        finally:
            self.recorder.record()
            self._refresh(force=True, keep_status=not ok)
            with self._progress:
                self._progress.notify_all()

    def _current_config(self) -> TrainConfig:
        c = self._c
        return self._config.with_(
            optimizer=c["optimizer"].value, lr=float(c["lr"].value), batch_size=c["batch_size"].value or None,
            weight_decay=float(c["weight_decay"].value), seed=int(c["seed"].value),
        )  # fmt: skip

    def _task_kwargs(self, name: str) -> dict[str, Any]:
        c = self._c
        wanted = {"test_fraction": c["test_fraction"].value}
        if group_of(name) == "toy":
            wanted.update(noise=c["noise"].value, n=c["n"].value)
        wanted.update(self._extra_task_kwargs.get(name, {}))
        params = inspect.signature(TASKS[name]).parameters
        return {k: v for k, v in wanted.items() if k in params}

    def _make_task(self) -> Any:
        name = self._c["task"].value
        if name == USER_DATA:
            return self._user_task()
        return make_task(name, **self._task_kwargs(name))

    def _model_source(self) -> Any:
        if self._user_model is not None:
            return self._user_model
        return model_for_task(self._task, self._panel.family, **self._panel.knobs())

    def _new_trainer(self) -> None:
        config = self._current_config()
        # the Trainer refuses a model that does not fit the task (feature count, widths),
        # naming the mismatch, before this lab changes
        trainer = Trainer(self._model_source(), self._task, config)
        every = (
            self._record_every_arg
            or GROUP_DEFAULTS[group_of(self._c["task"].value)]["record_every"]
        )
        if self._recorder is None:
            self._recorder = Recorder(trainer, every=every, max_bytes=self._max_bytes)
        else:
            self._recorder.retarget(trainer)
            self._recorder.every = every
        self._config = config
        self._trainer = trainer
        self._source = RecorderSource(self._recorder)
        self._recorder.record()
        self._run_id = self._recorder.run_id
        self._run_writer, self._written = None, set()
        self._residual = None
        self._shown_step = None
        self._latest_followed = True
        self.last_error = None

    def _rebuild(self, *, new_task: bool) -> None:
        """Stop, rebuild task/model/trainer, and continue if it was running. Nothing changes
        when the new settings fail (the status line says why)."""
        with self._run_lock:
            was = self.running
            self._halt()
            old = (self._task, self._task_key, self._trainer, self._config)
            try:
                if new_task:
                    self._task, self._task_key = self._make_task(), self._c["task"].value
                self._new_trainer()
            except (ValueError, TypeError) as err:
                self._task, self._task_key, self._trainer, self._config = old
                self._fail(err)
                return
            self._build_views()
            self._refresh(force=True)
            if was:
                self.play()

    # ================================================================== controls
    def _build_controls(
        self,
        task: str,
        task_kwargs: dict[str, Any],
        family: str | None,
        knobs: dict[str, Any],
        cfg: TrainConfig,
    ) -> None:
        m = self._user_model
        label = (
            None
            if m is None
            else (
                type(m).__name__ if isinstance(m, nn.Module) else getattr(m, "__name__", "factory")
            )
        )
        panel = TrainingControls(user_model=label, user_data=task == USER_DATA)
        self._panel, self._c, self._buttons = panel, panel.widgets, panel.buttons
        # data knobs with a control show there; the rest go to the generator as given
        self._extra_task_kwargs = {
            task: {k: v for k, v in task_kwargs.items() if k not in ("noise", "n", "test_fraction")}
        }
        group = group_of(task)
        values: dict[str, Any] = {
            k: v for k, v in task_kwargs.items() if k in ("noise", "n", "test_fraction")
        }
        values.update(optimizer=cfg.optimizer, lr=cfg.lr, seed=cfg.seed,
                      batch_size=cfg.batch_size, weight_decay=cfg.weight_decay)  # fmt: skip
        explicit = self._explicit_train
        values.update(
            {k: GROUP_DEFAULTS[group][k] for k in ("lr", "batch_size") if k not in explicit}
        )
        self._config = cfg.with_(
            **{k: v for k, v in GROUP_TRAIN[group].items() if k not in explicit}
        )
        self._c["task"].value = task
        self._task_key = task
        fits: tuple[str, ...] = ()
        if m is None:
            fits = task_families(self._peek_task(task))
            fam = family or fits[0]
            if fam not in fits:
                raise ValueError(
                    f"family must be one of {list(fits)} for the {task!r} task, got {fam!r}"
                )
            self._c["family"].options = list(fits)
            self._c["family"].value = fam
            if fam == "mlp" and group == "field":
                self._c["mlp.width"].value = FIELD_WIDTH
            values.update(knobs)
        elif knobs:
            raise ValueError("model knobs do not apply to your own model")
        self._quiet = True
        try:
            for widget, value in panel.checked(values, panel.family, fits):
                widget.value = value
        finally:
            self._quiet = False
        b = self._buttons
        b["Play"].on_click(lambda _: self._guard(self.play))
        b["Pause"].on_click(lambda _: self._guard(self.pause))
        b["Step"].on_click(lambda _: self._guard(self.step))
        b["Reset"].on_click(lambda _: self._guard(self.reset))
        b["Save"].on_click(lambda _: self._guard(self.save, "save failed: "))
        c = self._c
        c["task"].observe(lambda ch: self._quiet or self._on_task(ch["old"]), names="value")
        c["family"].observe(lambda _: self._quiet or self._on_family(), names="value")
        for key in ("noise", "n", "test_fraction"):
            c[key].observe(lambda _, new=True: self._on_knob(new), names="value")
        knob_keys = [f"{f}.{k}" for f in FAMILIES for k in FAMILIES[f]]
        for key in (*knob_keys, "optimizer", "batch_size", "weight_decay", "seed"):
            c[key].observe(lambda _, new=False: self._on_knob(new), names="value")
        c["lr"].observe(self._on_lr, names="value")
        panel.sync_visibility()

    def _peek_task(self, name: str) -> Any:
        """A task of ``name`` to size models against (the current one when unchanged)."""
        current = getattr(self, "_task", None)
        if current is not None and name == self._task_key:
            return current
        return self._user_task() if name == USER_DATA else make_task(name)

    def _user_task(self) -> Any:
        data = self._user_data
        if hasattr(data, "x_train"):
            return data  # a Task, used as it is
        raw, features, target = data  # type: ignore[misc]
        fraction = float(self._c["test_fraction"].value)
        return user_task(raw, features=features, target=target, test_fraction=fraction)

    def _new_group(self, before: str, explicit: set[str]) -> None:
        """Apply the new task's defaults (see :meth:`TrainingControls.apply_group`)."""
        name = self._c["task"].value
        fits = () if self._user_model is not None else task_families(self._peek_task(name))
        self._panel.apply_group(fits, before, explicit)
        group = group_of(name)
        if group != before:
            extra = {k: v for k, v in GROUP_TRAIN[group].items() if k not in explicit}
            self._config = self._config.with_(**extra)

    def _on_task(self, old: str) -> None:
        self._quiet = True
        try:
            self._new_group(group_of(old), set())
        finally:
            self._quiet = False
        self._panel.sync_visibility()
        self._rebuild(new_task=True)

    def _on_family(self) -> None:
        self._panel.sync_visibility()
        self._rebuild(new_task=False)

    def _on_knob(self, new_task: bool) -> None:
        if not self._quiet:
            self._rebuild(new_task=new_task)

    def _on_lr(self, change: dict[str, Any]) -> None:
        # live: the next step uses it, no restart (this is how a diverged run continues)
        if self._quiet:
            return
        lr = float(change["new"])
        self._config = self._config.with_(lr=lr)
        self._trainer.config = self._trainer.config.with_(lr=lr)
        if self.last_error and not self.running:
            self._set_status(f"learning rate {lr:.1e}: press Play to continue")

    # ================================================================== views
    def _has_accuracy(self) -> bool:
        task = getattr(self._source, "task", None)
        return (getattr(task, "meta", None) or {}).get("loss") == "ce" or getattr(
            task, "kind", ""
        ) in ("classification", "sequence")

    def _points(self, task: Any) -> tuple[np.ndarray, np.ndarray]:
        x = task.x_train if len(task.x_train) else task.x_test
        y = task.y_train if len(task.y_train) else task.y_test
        return np.asarray(x), np.asarray(y)

    def _tile_images(self, probe: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """(n, h, w) sample images and their labels for an image classification probe."""
        if (
            probe is None
            or probe.kind != "points"
            or probe.inputs.ndim != 4
            or probe.target is None
        ):
            return None
        x = np.asarray(probe.inputs[:N_TILES], dtype=np.float32).mean(1)
        return x, np.asarray(probe.target[:N_TILES])

    def _build_views(self) -> None:
        probe = getattr(self._source, "probe", None)
        kind = None if probe is None else probe.kind
        self._metrics = go.FigureWidget(
            figs.metrics_figure(self._source.history(), accuracy=self._has_accuracy())
        )
        self._metrics.layout.width = 520
        self._metrics.add_class("xp-training-metrics")
        self._drawn = {}
        self._curves = figs.Curves(list(figs.TRACE_NAMES))
        by_name = {name: key for key, name in figs.TRACE_NAMES.items()}
        self._trace_keys = [by_name[trace.name] for trace in self._metrics.data]
        self._grid = HeatmapGrid()
        self._grid.add_class("xp-training-grid")
        self._spectrum_grid: HeatmapGrid | None = None
        self._fit: go.FigureWidget | None = None
        main: list[W.Widget] = []
        if kind == "surface":
            task = self._source.task
            x, y = self._points(task)
            self._grid.tile_px = 320
            self._grid.set_points(figs.surface_points(x, y, probe.shape, probe.extent))
            main = [self._grid]
        elif kind == "field":
            self._residual = ResidualRows(probe.target, probe.shape)
            self._spectrum_grid = HeatmapGrid(
                tile_px=260, tile_height=200, aspect="auto", colorscale="magma"
            )
            self._spectrum_grid.add_class("xp-training-spectrum")
            if len(probe.shape) == 1:
                fit = figs.signal_figure(
                    probe.inputs[:, 0], probe.target, np.zeros(len(probe.inputs))
                )
                self._fit = go.FigureWidget(fit)
                self._fit.layout.width = 480
                main = [self._fit, self._spectrum_grid]
            else:
                self._grid.tile_px = 220
                self._grid.colorscale = "gray"
                main = [self._grid, self._spectrum_grid]
        elif kind == "sequence":
            self._grid.tile_px = 110
            main = [self._grid]
        elif kind == "points" and self._tile_images(probe) is not None:
            self._grid.tile_px = 64
            self._grid.colorscale = "gray"
            self._grid.columns = 8
            main = [self._grid]
        wrap = W.Layout(flex_flow="row wrap", align_items="flex-start")
        replaced = getattr(self, "_view_widgets", [])
        self._views_box = W.HBox([self._metrics, *main], layout=wrap)
        self._views_box.add_class("xp-training-views")
        self._view_widgets = [self._views_box, self._grid]  # the grid may be off the page
        self._set_body(self._panel.box, self._views_box)
        for widget in replaced:  # off the page now: free them (each reset builds new views)
            close_tree(widget)
        self._refresh_export_views()

    def _residual_until(self, step: int) -> tuple[list[int], Any]:
        """Residual power per frequency for every snapshot up to ``step``."""
        if self._residual is None:
            raise ValueError("the residual spectrum exists for signal and image tasks only")
        steps, spec = self._residual.from_source(self._source, step)
        if spec is None:
            raise ValueError("no snapshot with predictions yet")
        return steps, spec

    def _draw_residual(self, step: int) -> None:
        if self._spectrum_grid is None:
            return
        steps, spec = self._residual_until(step)
        if not steps:
            return
        logp = np.log10(np.maximum(spec.power, 1e-8)).T[::-1]  # (freqs, steps), low at the bottom
        self._spectrum_grid.show(
            logp, [f"residual power per frequency, steps {steps[0]}–{steps[-1]}"], vmin=-8.0, vmax=0.0,
            extent=[float(steps[0]), float(steps[-1]), float(spec.freqs[0]), float(spec.freqs[-1])],
            colorbar_title="log₁₀ residual power", x_title="step", y_title="frequency",
            caption="which frequencies are still wrong: one column per snapshot",
        )  # fmt: skip

    def _update_metrics(self) -> None:
        """Update only the curves that gained points, and the step marker if it moved."""
        self._curves.update(self._source.history())
        fig = self._metrics
        marker = None if self._latest_followed or self._shown_step is None else self._shown_step
        curves = {}
        for i, key in enumerate(self._trace_keys):  # not trace.name: 12 µs per plotly read
            x, y = self._curves.get(key)
            signature = (len(x), x[-1] if len(x) else None, y[-1] if len(y) else None)
            if self._drawn.get(i) != signature:
                curves[i] = (x, y)
                self._drawn[i] = signature
        if curves:  # one restyle of our own float arrays, without plotly's per-property
            # validation and batching: 0.12 instead of 0.8 ms, paid ≤ 10 times a second in the
            # training thread
            idx = list(curves)
            xy = {"x": [curves[i][0] for i in idx], "y": [curves[i][1] for i in idx]}
            fig.plotly_restyle(xy, trace_indexes=idx)
        if self._drawn.get("marker") != marker:
            self._drawn["marker"] = marker
            line = dict(color="#888", dash="dot")
            fig.layout.shapes = (() if marker is None else
                                 (dict(type="line", x0=marker, x1=marker, y0=0, y1=1, yref="paper", line=line),))  # fmt: skip

    def _sync_steps(self) -> None:
        super()._sync_steps()
        if not self.own:
            return
        t = self._trainer
        last = t.history[-1] if t.history else {}
        shown = self._shown_step if self._shown_step is not None else 0
        rate = f", {self._steps_per_s:.0f} steps/s" if self.running else ""
        loss = f", loss {last['loss']:.4g}" if "loss" in last else ""
        self._step_label.value = f"showing step {shown} · trained {t.global_step}{loss}{rate}"

    def _refresh(self, force: bool = False, keep_status: bool = False) -> None:
        """Metrics, latest snapshot (when following it), step slider, status: one update."""
        with self._lock:
            if self._closed:
                return
            latest = self._source.latest
            if (
                latest is not None
                and self._latest_followed
                and (force or latest.step != self._shown_step)
            ):
                self._render_snapshot(latest)
            else:
                self._update_metrics()
            self._sync_steps()
            if force and self.own and not self.running and not keep_status and not self.last_error:
                step = self._trainer.global_step
                self._set_status(f"paused at step {step}" if step else "ready: press Play")
