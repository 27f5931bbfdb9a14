"""The live training lab: configure a task and a model, press Play, watch it learn, scrub back.

Training runs in one background thread (never more: every start, stop and rebuild goes
through one lock and joins the old thread first). The thread steps the :class:`Trainer`,
records snapshots, and refreshes the views at most ``refresh_hz`` times a second in batched
updates; dense maps go to :class:`~widgets.canvas.HeatmapGrid` as binary float32. Other labs
follow it through :meth:`TrainingLab.subscribe`.
"""

from __future__ import annotations

import atexit
import inspect
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from torch import nn

from explorer.analysis.spectra import residual_spectrum
from explorer.data import TASKS, make_task
from explorer.models.layers import ACTIVATIONS, ENCODINGS
from explorer.models.mlp import MLP, MLPConfig
from explorer.models.positional import POSITIONAL
from explorer.models.transformer import Transformer, TransformerConfig
from explorer.train import Recorder, Snapshot, TrainConfig, Trainer, TrainingDiverged
from explorer.train.checkpoint import save_checkpoint
from widgets.canvas import HeatmapGrid
from widgets.export import export, export_table
from widgets.figures import training as figs

__all__ = ["TrainingLab"]

TOY_2D = ("spirals", "moons", "circles", "xor", "blobs", "checkerboard")
FIELDS = ("signal_1d", "image")
SEQUENCES = ("copy", "reverse", "sort", "induction", "majority", "parentheses", "modular_addition")
TASK_CHOICES = TOY_2D + FIELDS + SEQUENCES
ATTENTION_CHOICES = ("softmax", "linear", "performer", "sliding", "strided", "topk", "none")
BATCH_CHOICES = (("full", 0), ("16", 16), ("32", 32), ("64", 64), ("128", 128), ("256", 256))
DECAY_CHOICES = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
VIEWS = ("main", "metrics", "spectrum")

MLP_DEFAULTS: dict[str, Any] = {
    "depth": 3,
    "width": 16,
    "activation": "relu",
    "encoding": "raw",
    "fourier_scale": 10.0,
}
FIELD_DEFAULTS: dict[str, Any] = {**MLP_DEFAULTS, "width": 64}
TF_DEFAULTS: dict[str, Any] = {
    "n_layers": 2,
    "n_heads": 4,
    "d_model": 64,
    "attention": "softmax",
    "pos": "learned",
}

UI_BUDGET = 0.05  # share of the training thread's time the live views may take
_LABS: weakref.WeakSet[TrainingLab] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # a kernel shutdown leaves no training thread behind
    for lab in list(_LABS):
        lab.pause()


def _family(task_name: str) -> str:
    return "transformer" if task_name in SEQUENCES else "mlp"


def _task_kwargs(name: str, wanted: dict[str, Any]) -> dict[str, Any]:
    """Only the keywords the task generator accepts."""
    params = inspect.signature(TASKS[name]).parameters
    return {k: v for k, v in wanted.items() if k in params}


def _model_factory(task: Any, knobs: dict[str, Any]) -> Callable[[int], nn.Module]:
    meta = task.meta
    if task.kind == "sequence":
        tcfg = TransformerConfig(
            vocab_size=int(meta["vocab_size"]), n_ctx=int(meta["seq_len"]), d_model=int(knobs["d_model"]),
            n_layers=int(knobs["n_layers"]), n_heads=int(knobs["n_heads"]), attention=knobs["attention"],
            pos=knobs["pos"],
        )  # fmt: skip
        return lambda seed: Transformer(TransformerConfig(**{**tcfg.__dict__, "seed": seed}))
    in_dim = int(meta.get("in_dim", task.x_train.shape[-1]))
    out_dim = int(meta.get("n_classes", meta.get("out_dim", 1)))
    cfg = MLPConfig(
        in_dim=in_dim, out_dim=out_dim, depth=int(knobs["depth"]), width=int(knobs["width"]),
        activation=knobs["activation"], encoding=knobs["encoding"], fourier_scale=float(knobs["fourier_scale"]),
    )  # fmt: skip
    return lambda seed: MLP(MLPConfig(**{**cfg.__dict__, "seed": seed}))


class TrainingLab(W.VBox):
    """Train a model on a task live in the notebook.

    ``task``: one of :data:`TASK_CHOICES` (2-D toys, ``signal_1d``, ``image``, sequence tasks)
    with ``task_kwargs`` for its generator. ``model``: architecture knobs (MLP: depth, width,
    activation, encoding, fourier_scale; transformer: n_layers, n_heads, d_model, attention,
    pos). ``train``: a :class:`TrainConfig` or a dict of its fields. Every ``record_every`` steps
    (default 25 for MLPs, 5 for transformers, whose steps are slower) a snapshot is recorded (``max_bytes`` bounds them, oldest dropped first); views refresh at most
    ``refresh_hz`` times a second.

    Plain-Python control: :meth:`play`, :meth:`pause`, :meth:`step`, :meth:`reset`,
    :meth:`scrub`, :meth:`save`, :meth:`export`, :meth:`export_history`, :meth:`wait`.
    """

    def __init__(
        self,
        task: str = "spirals",
        *,
        task_kwargs: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        train: TrainConfig | dict[str, Any] | None = None,
        record_every: int | None = None,
        refresh_hz: float = 10.0,
        max_bytes: int = 256 * 2**20,
        out_dir: str | Path = "exports",
    ) -> None:
        if task not in TASK_CHOICES:
            raise ValueError(f"task must be one of {TASK_CHOICES}, got {task!r}")
        if not refresh_hz > 0:
            raise ValueError(f"refresh_hz must be > 0, got {refresh_hz!r}")
        super().__init__()
        self.add_class("xp-training-lab")
        base = train if isinstance(train, TrainConfig) else TrainConfig(**(train or {}))
        self._config = base
        self._record_every_arg, self._max_bytes = record_every, max_bytes
        self._period = 1.0 / refresh_hz
        self.out_dir = Path(out_dir)
        self._lock = threading.RLock()  # start / stop / rebuild
        self._view_lock = threading.RLock()  # view updates (training thread vs scrubbing)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribers: list[Callable[[Snapshot], None]] = []
        self._shown: Snapshot | None = None
        self._follow = True
        self._syncing = False
        self._quiet = False  # set while controls are changed programmatically
        self._steps_per_s = 0.0
        self.last_error: str | None = None
        self._build_controls(task, model or {}, task_kwargs or {})
        self._task = self._make_task()
        self._new_trainer()
        self._build_views()
        self.children = [
            self._controls,
            self._views,
            self._scrub_row,
            self._export_row,
            self._status,
        ]
        self._refresh(force=True)
        _LABS.add(self)

    # ================================================================== public API
    @property
    def trainer(self) -> Trainer:
        return self._trainer

    @property
    def recorder(self) -> Recorder:
        return self._recorder

    @property
    def task(self) -> Any:
        return self._task

    @property
    def running(self) -> bool:
        th = self._thread
        return th is not None and th.is_alive()

    @property
    def shown(self) -> Snapshot | None:
        """The snapshot every view currently shows."""
        return self._shown

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` whenever the views show a new snapshot (a new recording,
        at most ``refresh_hz`` times a second, or a scrub). Returns an unsubscribe function."""
        if not callable(callback):
            raise TypeError("callback must be callable with one argument (a Snapshot)")
        self._subscribers.append(callback)
        if self._shown is not None:
            callback(self._shown)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def play(self) -> None:
        """Start training in the background (no-op if already running)."""
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            self._follow = True
            self._thread = threading.Thread(target=self._loop, name="xp-training-lab", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop the training thread and wait for it (no-op if not running)."""
        with self._lock:
            self._halt()
        self._refresh(force=True)

    def step(self, n: int = 1) -> None:
        """Pause, then train ``n`` steps in the caller's thread and show the result."""
        with self._lock:
            self._halt()
            for _ in range(n):
                if not self._train_one():
                    break
            self._recorder.record()
        self._follow = True
        self._refresh(force=True)

    def reset(self) -> None:
        """Back to step 0 with the same settings (continues if it was running)."""
        self._rebuild(new_task=False)

    def configure(self, **values: Any) -> None:
        """Set controls by name (task, noise, n, test_fraction, model knobs, optimizer, lr,
        batch, decay, seed) as a user would, with one rebuild; continues if it was running."""
        unknown = set(values) - set(self._c)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; available: {sorted(self._c)}")
        new_task = any(k in values for k in ("task", "noise", "n", "test_fraction"))
        self._quiet = True
        try:
            if "task" in values:
                self._c["task"].value = values.pop("task")
                self._sync_control_visibility()
            for key, value in values.items():
                self._c[key].value = value
        finally:
            self._quiet = False
        self._rebuild(new_task=new_task)

    def wait(self, steps: int | None = None, timeout: float = 60.0) -> None:
        """Block until training reaches ``steps`` (or stops); for scripts and tests."""
        end = time.monotonic() + timeout
        while self.running and time.monotonic() < end:
            if steps is not None and self._trainer.global_step >= steps:
                return
            time.sleep(0.01)

    def scrub(self, step: int) -> Snapshot:
        """Show the snapshot recorded at (or just before) ``step`` in every view."""
        snap = self._recorder.at(step)
        self._follow = snap is self._recorder.latest
        with self._view_lock:
            self._show(snap)
            self._sync_slider()
            self._update_metrics()
        return snap

    def close(self) -> None:
        if hasattr(self, "_lock"):  # also called by __del__ of a half-built lab
            with self._lock:
                self._halt()
        super().close()

    # ---------------------------------------------------------------- export
    def to_figure(self, view: str = "main") -> go.Figure:
        """The ``view`` (main | metrics | spectrum) at the shown snapshot as a plotly Figure."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        snap = self._shown or self._recorder.latest
        step = None if snap is None else snap.step
        if view == "metrics" or snap is None or snap.predictions is None:
            return figs.metrics_figure(
                self._history(), step=step, accuracy=self._trainer.loss_name == "ce"
            )
        probe = self._recorder.probe
        assert probe is not None
        title = f"{self._task.name}, step {snap.step}"
        if view == "spectrum":
            if probe.kind != "field":
                raise ValueError(
                    "the residual spectrum view exists for signal and image tasks only"
                )
            steps, freqs, power = self._spectrum_until(snap.step)
            return figs.residual_spectrum_figure(
                steps, freqs, power, title=f"residual spectrum, {self._task.name}"
            )
        if probe.kind == "surface":
            assert probe.extent is not None
            return figs.decision_surface_figure(
                snap.predictions,
                probe.shape,
                probe.extent,
                self._task.x_train,
                self._task.y_train,
                title=title,
            )
        if probe.kind == "field" and len(probe.shape) == 1:
            return figs.signal_figure(
                probe.inputs[:, 0], probe.target, snap.predictions, title=title
            )
        if probe.kind == "field":
            return figs.image_figure(snap.predictions, probe.target, probe.shape, title=title)
        if probe.kind == "sequence" and snap.attention:
            return figs.attention_figure(snap.attention, self._tokens())
        return figs.metrics_figure(
            self._history(), step=step, accuracy=self._trainer.loss_name == "ce"
        )

    def export(self, path: str | Path, view: str = "main") -> Path:
        """Write ``view`` to ``path`` (.png/.svg/.pdf/.html)."""
        return export(self.to_figure(view), path)

    def export_history(self, path: str | Path) -> Path:
        """Write the metric history (tidy: step, metric, value) to .csv/.parquet/.json."""
        return export_table(self._trainer.history_frame(), path)

    def save(self, path: str | Path | None = None) -> Path:
        """Save the model and optimizer (safetensors) with the step and task name."""
        t = self._trainer
        path = (
            Path(path)
            if path is not None
            else self.out_dir / f"{self._task.name}_step{t.global_step}.safetensors"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            was = self.running
            self._halt()
            out = save_checkpoint(
                path, t.model, optimizer=t.optimizer,
                state={"step": t.global_step, "task": self._task.name, "train": self._config.as_dict()},
            )  # fmt: skip
            if was:
                self.play()
        self._set_status(f"saved {out}")
        return out

    # ================================================================== training
    def _halt(self) -> None:
        """Stop and join the training thread. Call with ``self._lock`` held."""
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
            self.last_error = err.reason
            self._set_status(f"⚠ {err.reason}", error=True)
            return False
        self._recorder.maybe_record()
        return True

    def _loop(self) -> None:
        last_ui, ui_cost = 0.0, 0.0
        t0, s0 = time.perf_counter(), self._trainer.global_step
        try:
            while not self._stop.is_set():
                if not self._train_one():
                    break
                now = time.perf_counter()
                # at most refresh_hz, and never more than UI_BUDGET of the wall time
                if now - last_ui >= max(self._period, ui_cost / UI_BUDGET):
                    self._steps_per_s = (self._trainer.global_step - s0) / max(now - t0, 1e-9)
                    self._refresh()
                    last_ui = time.perf_counter()
                    ui_cost = 0.5 * ui_cost + 0.5 * (last_ui - now)
        except Exception as err:
            self.last_error = f"{type(err).__name__}: {err}"
            self._set_status(f"⚠ training stopped: {self.last_error}", error=True)
        finally:
            self._recorder.record()
            self._refresh(force=True)

    def _current_config(self) -> TrainConfig:
        c = self._c
        return self._config.with_(
            optimizer=c["optimizer"].value, lr=float(c["lr"].value), batch_size=c["batch"].value or None,
            weight_decay=float(c["decay"].value), seed=int(c["seed"].value),
        )  # fmt: skip

    def _knobs(self) -> dict[str, Any]:
        c = self._c
        if _family(c["task"].value) == "transformer":
            return {k: c[k].value for k in TF_DEFAULTS}
        return {k: c[k].value for k in MLP_DEFAULTS}

    def _make_task(self) -> Any:
        c = self._c
        name = c["task"].value
        wanted = {
            "noise": c["noise"].value,
            "n": c["n"].value,
            "test_fraction": c["test_fraction"].value,
        }
        if name in FIELDS or name in SEQUENCES:
            wanted = {"test_fraction": c["test_fraction"].value} if name in SEQUENCES else {}
        wanted.update(self._extra_task_kwargs.get(name, {}))
        return make_task(name, **_task_kwargs(name, wanted))

    def _new_trainer(self) -> None:
        self._config = self._current_config()
        trainer = Trainer(_model_factory(self._task, self._knobs()), self._task, self._config)
        every = self._record_every_arg or (5 if self._task.kind == "sequence" else 25)
        if getattr(self, "_recorder", None) is None:
            self._recorder = Recorder(trainer, every=every, max_bytes=self._max_bytes)
        else:
            self._recorder.retarget(trainer)
            self._recorder.every = every
        self._trainer = trainer
        self._recorder.record()
        self._shown = None
        self._follow = True
        self.last_error = None

    def _rebuild(self, *, new_task: bool) -> None:
        """Stop, rebuild task/model/trainer, and continue if it was running."""
        with self._lock:
            was = self.running
            self._halt()
            try:
                if new_task:
                    self._task = self._make_task()
                self._new_trainer()
            except (ValueError, TypeError) as err:
                self._set_status(f"⚠ {err}", error=True)
                return
            if new_task:
                self._build_views()
                self.children = [
                    self._controls,
                    self._views,
                    self._scrub_row,
                    self._export_row,
                    self._status,
                ]
            self._refresh(force=True)
            if was:
                self.play()

    # ================================================================== controls
    def _build_controls(
        self, task: str, model: dict[str, Any], task_kwargs: dict[str, Any]
    ) -> None:
        self._extra_task_kwargs = {
            task: {k: v for k, v in task_kwargs.items() if k not in ("noise", "n", "test_fraction")}
        }
        knobs = {
            **(
                TF_DEFAULTS
                if _family(task) == "transformer"
                else FIELD_DEFAULTS
                if task in FIELDS
                else MLP_DEFAULTS
            )
        }
        unknown = set(model) - set(MLP_DEFAULTS) - set(TF_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown model knob(s) {sorted(unknown)}; use {sorted({*MLP_DEFAULTS, *TF_DEFAULTS})}"
            )
        knobs.update(model)
        mlp = {**MLP_DEFAULTS, **{k: v for k, v in knobs.items() if k in MLP_DEFAULTS}}
        tf = {**TF_DEFAULTS, **{k: v for k, v in knobs.items() if k in TF_DEFAULTS}}
        cfg = self._config
        lay = W.Layout(width="210px")
        short = {"description_width": "70px"}
        c: dict[str, W.Widget] = {
            "task": W.Dropdown(options=TASK_CHOICES, value=task, description="task", layout=lay, style=short),
            "noise": W.FloatSlider(value=float(task_kwargs.get("noise", 0.1)), min=0.0, max=0.5, step=0.01, description="noise", layout=lay, style=short, continuous_update=False),
            "n": W.IntSlider(value=int(task_kwargs.get("n", 500)), min=50, max=5000, step=50, description="points", layout=lay, style=short, continuous_update=False),
            "test_fraction": W.FloatSlider(value=float(task_kwargs.get("test_fraction", 0.25)), min=0.05, max=0.9, step=0.05, description="test split", layout=lay, style=short, continuous_update=False),
            "depth": W.IntSlider(value=int(mlp["depth"]), min=1, max=8, description="layers", layout=lay, style=short, continuous_update=False),
            "width": W.IntSlider(value=int(mlp["width"]), min=2, max=256, description="width", layout=lay, style=short, continuous_update=False),
            "activation": W.Dropdown(options=ACTIVATIONS, value=mlp["activation"], description="activation", layout=lay, style=short),
            "encoding": W.Dropdown(options=ENCODINGS, value=mlp["encoding"], description="encoding", layout=lay, style=short),
            "fourier_scale": W.FloatLogSlider(value=float(mlp["fourier_scale"]), base=10, min=-1, max=2.5, description="σ (Fourier)", layout=lay, style=short, continuous_update=False),
            "n_layers": W.IntSlider(value=int(tf["n_layers"]), min=1, max=6, description="layers", layout=lay, style=short, continuous_update=False),
            "n_heads": W.Dropdown(options=(1, 2, 4, 8), value=int(tf["n_heads"]), description="heads", layout=lay, style=short),
            "d_model": W.Dropdown(options=(16, 32, 64, 128), value=int(tf["d_model"]), description="d_model", layout=lay, style=short),
            "attention": W.Dropdown(options=ATTENTION_CHOICES, value=tf["attention"], description="attention", layout=lay, style=short),
            "pos": W.Dropdown(options=POSITIONAL, value=tf["pos"], description="position", layout=lay, style=short),
            "optimizer": W.Dropdown(options=("sgd", "adam", "adamw"), value=cfg.optimizer, description="optimizer", layout=lay, style=short),
            "lr": W.FloatLogSlider(value=cfg.lr, base=10, min=-5, max=1, description="learn rate", layout=lay, style=short, readout_format=".1e", continuous_update=False),
            "batch": W.Dropdown(options=BATCH_CHOICES, value=cfg.batch_size or 0, description="batch", layout=lay, style=short),
            "decay": W.Dropdown(options=DECAY_CHOICES, value=cfg.weight_decay if cfg.weight_decay in DECAY_CHOICES else 0.0, description="w. decay", layout=lay, style=short),
            "seed": W.BoundedIntText(value=cfg.seed, min=0, max=2**31 - 1, description="seed", layout=lay, style=short),
        }  # fmt: skip
        self._c = c
        buttons = {
            name: W.Button(description=name, tooltip=tip, layout=W.Layout(width="80px"))
            for name, tip in (("Play", "train in the background"), ("Pause", "stop training"),
                              ("Step", "one training step"), ("Reset", "back to step 0"),
                              ("Save", "save a safetensors checkpoint"))
        }  # fmt: skip
        buttons["Play"].button_style = "success"
        buttons["Play"].on_click(lambda _: self.play())
        buttons["Pause"].on_click(lambda _: self.pause())
        buttons["Step"].on_click(lambda _: self.step())
        buttons["Reset"].on_click(lambda _: self.reset())
        buttons["Save"].on_click(lambda _: self._guard(self.save))
        self._buttons = buttons
        c["task"].observe(lambda _: self._quiet or self._on_task(), names="value")
        for key in ("noise", "n", "test_fraction"):
            c[key].observe(lambda _, new=True: self._on_knob(new), names="value")
        for key in (*MLP_DEFAULTS, *TF_DEFAULTS, "optimizer", "batch", "decay", "seed"):
            c[key].observe(lambda _, new=False: self._on_knob(new), names="value")
        c["lr"].observe(self._on_lr, names="value")
        self._mlp_box = W.VBox([c[k] for k in MLP_DEFAULTS])
        self._tf_box = W.VBox([c[k] for k in TF_DEFAULTS])
        self._model_box = W.VBox()
        self._controls = W.HBox([
            W.VBox([W.HTML("<b>data</b>"), c["task"], c["noise"], c["n"], c["test_fraction"]]),
            W.VBox([W.HTML("<b>model</b>"), self._model_box]),
            W.VBox([W.HTML("<b>training</b>"), c["optimizer"], c["lr"], c["batch"], c["decay"], c["seed"]]),
            W.VBox([W.HTML("<b>run</b>"), *buttons.values()]),
        ])  # fmt: skip
        self._sync_control_visibility()
        self._status = W.HTML(layout=W.Layout(min_height="1.5em"))
        self._status.add_class("xp-training-status")
        self._slider = W.IntSlider(
            value=0,
            min=0,
            max=0,
            description="snapshot",
            continuous_update=True,
            layout=W.Layout(width="60%"),
        )
        self._slider.add_class("xp-training-scrubber")
        self._slider.observe(self._on_slide, names="value")
        self._step_label = W.Label()
        self._step_label.add_class("xp-training-step")
        self._scrub_row = W.HBox([self._slider, self._step_label])
        self._export_view = W.Dropdown(
            options=VIEWS,
            value="main",
            description="export",
            layout=W.Layout(width="170px"),
            style=short,
        )
        self._export_fmt = W.Dropdown(
            options=("png", "svg", "pdf", "html"), value="png", layout=W.Layout(width="80px")
        )
        export_btn = W.Button(description="Export view", layout=W.Layout(width="110px"))
        export_btn.on_click(lambda _: self._guard(self._export_clicked))
        csv_btn = W.Button(description="History CSV", layout=W.Layout(width="110px"))
        csv_btn.on_click(
            lambda _: self._guard(
                lambda: self._wrote(self.export_history(self._out("history", "csv")))
            )
        )
        pq_btn = W.Button(description="History parquet", layout=W.Layout(width="130px"))
        pq_btn.on_click(
            lambda _: self._guard(
                lambda: self._wrote(self.export_history(self._out("history", "parquet")))
            )
        )
        self._export_row = W.HBox(
            [self._export_view, self._export_fmt, export_btn, csv_btn, pq_btn]
        )

    def _sync_control_visibility(self) -> None:
        name = self._c["task"].value
        self._model_box.children = [
            self._tf_box if _family(name) == "transformer" else self._mlp_box
        ]
        toy = name in TOY_2D
        for key in ("noise", "n"):
            self._c[key].layout.display = None if toy else "none"
        self._c["test_fraction"].layout.display = "none" if name in FIELDS else None

    def _on_task(self) -> None:
        self._sync_control_visibility()
        name = self._c["task"].value
        defaults = FIELD_DEFAULTS if name in FIELDS else MLP_DEFAULTS
        self._quiet = True
        try:  # a field needs more width than a 2-D toy
            self._c["width"].value = defaults["width"]
        finally:
            self._quiet = False
        self._rebuild(new_task=True)

    def _on_knob(self, new_task: bool) -> None:
        if not self._quiet:
            self._rebuild(new_task=new_task)

    def _on_lr(self, change: dict[str, Any]) -> None:
        # live: the next step uses it, no restart
        if self._quiet:
            return
        self._config = self._config.with_(lr=float(change["new"]))
        self._trainer.config = self._trainer.config.with_(lr=float(change["new"]))

    def _guard(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as err:
            self._set_status(f"⚠ {type(err).__name__}: {err}", error=True)

    def _out(self, what: str, fmt: str) -> Path:
        snap = self._shown
        step = snap.step if snap is not None else self._trainer.global_step
        return self.out_dir / f"{self._task.name}_{what}_step{step}.{fmt}"

    def _export_clicked(self) -> None:
        view, fmt = self._export_view.value, self._export_fmt.value
        self._wrote(self.export(self._out(view, fmt), view))

    def _wrote(self, path: Path) -> None:
        self._set_status(f"wrote {path}")

    def _set_status(self, text: str, *, error: bool = False) -> None:
        import html

        color = "#b00" if error else "#333"
        self._status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    # ================================================================== views
    def _build_views(self) -> None:
        probe = self._recorder.probe
        kind = None if probe is None else probe.kind
        self._metrics = go.FigureWidget(
            figs.metrics_figure(self._trainer.history, accuracy=self._trainer.loss_name == "ce")
        )
        self._metrics.layout.width = 520
        self._drawn: dict[Any, Any] = {}  # what the metric plot shows, to skip no-op updates
        self._grid = HeatmapGrid()
        self._grid.add_class("xp-training-grid")
        self._spectrum_grid: HeatmapGrid | None = None
        self._fit: go.FigureWidget | None = None
        main: list[W.Widget] = []
        if kind == "surface":
            assert probe is not None and probe.extent is not None
            self._grid.tile_px = 320
            self._grid.set_points(
                figs.surface_points(
                    self._task.x_train, self._task.y_train, probe.shape, probe.extent
                )
            )
            main = [self._grid]
        elif kind == "field":
            assert probe is not None
            self._spectrum_grid = HeatmapGrid(tile_px=260, colorscale="magma")
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
        self._views = W.HBox([self._metrics, W.VBox(main)])

    def _history(self) -> list[dict[str, float]]:
        return list(self._trainer.history)

    def _tokens(self) -> list[str] | None:
        probe, vocab = self._recorder.probe, self._task.meta.get("vocab")
        if probe is None or vocab is None:
            return None
        return [str(vocab[int(t)]) for t in probe.inputs[0]]

    def _spectrum_until(self, step: int) -> tuple[list[int], np.ndarray, np.ndarray]:
        probe = self._recorder.probe
        assert probe is not None and probe.target is not None
        snaps = [s for s in self._recorder if s.step <= step and s.predictions is not None]
        shape = probe.shape
        preds = np.stack([np.asarray(s.predictions).reshape(*shape, -1).mean(-1) for s in snaps])
        target = np.asarray(probe.target).reshape(*shape, -1).mean(-1)
        spec = residual_spectrum(
            preds, target, ndim=len(shape), spacing=1.0 / shape[-1], device="cpu"
        )
        return [s.step for s in snaps], spec.freqs, spec.power

    def _update_metrics(self) -> None:
        """Update only the curves that gained points, and the step marker if it moved."""
        hist = self._history()
        fig = self._metrics
        marker = None if self._follow or self._shown is None else self._shown.step
        curves = {}
        for i, trace in enumerate(fig.data):
            key = next(k for k, v in figs.TRACE_NAMES.items() if v == trace.name)
            x, y = figs.curve(hist, key)
            signature = (len(x), x[-1] if len(x) else None, y[-1] if len(y) else None)
            if self._drawn.get(i) != signature:
                curves[i] = (x, y)
                self._drawn[i] = signature
        if not curves and self._drawn.get("marker") == marker:
            return
        with fig.batch_update():
            for i, (x, y) in curves.items():
                fig.data[i].x, fig.data[i].y = x, y
            if self._drawn.get("marker") != marker:
                self._drawn["marker"] = marker
                line = dict(color="#888", dash="dot")
                fig.layout.shapes = (
                    ()
                    if marker is None
                    else (
                        dict(
                            type="line", x0=marker, x1=marker, y0=0, y1=1, yref="paper", line=line
                        ),
                    )
                )

    def _show(self, snap: Snapshot) -> None:
        """Draw ``snap`` in the main views and tell subscribers. Call with ``_view_lock``."""
        self._shown = snap
        probe = self._recorder.probe
        if probe is not None and snap.predictions is not None:
            title = f"step {snap.step}"
            if probe.kind == "surface":
                z, lo, hi = figs.surface_map(snap.predictions, probe.shape)
                self._grid.show(
                    z, [title], vmin=lo, vmax=hi, colorscale="rdbu" if hi == 1 else "viridis"
                )
            elif probe.kind == "field":
                if self._fit is not None:
                    self._fit.data[1].y = np.asarray(snap.predictions).reshape(-1)
                    self._fit.layout.title.text = title
                else:
                    self._grid.show(
                        figs.image_maps(snap.predictions, probe.target, probe.shape),
                        [f"model, {title}", "target"],
                        vmin=0.0,
                        vmax=1.0,
                    )
                steps, _, power = self._spectrum_until(snap.step)
                if self._spectrum_grid is not None and len(steps) > 0:
                    logp = np.log10(np.maximum(power, 1e-8)).T[
                        ::-1
                    ]  # (freqs, steps), low frequencies at the bottom
                    self._spectrum_grid.show(
                        logp,
                        [f"residual power per frequency (log₁₀), steps 0–{steps[-1]}"],
                        vmin=-8.0,
                        vmax=0.0,
                    )
            elif probe.kind == "sequence" and snap.attention:
                maps, titles = figs.attention_maps(snap.attention)
                tokens = self._tokens() or []
                n_heads = next(iter(snap.attention.values())).shape[1]
                self._grid.show(maps, titles, vmin=0.0, vmax=1.0, row_labels=tokens, col_labels=tokens, columns=n_heads,
                                caption=f"attention on a test sequence, {title}")  # fmt: skip
        for callback in list(self._subscribers):
            try:
                callback(snap)
            except Exception as err:
                self._set_status(
                    f"⚠ subscriber {getattr(callback, '__name__', callback)!r} failed: {err}",
                    error=True,
                )

    def _sync_slider(self) -> None:
        steps = self._recorder.steps
        self._syncing = True
        try:
            with self._slider.hold_sync():
                self._slider.max = max(len(steps) - 1, 0)
                if self._follow or self._shown is None:
                    self._slider.value = self._slider.max
                else:
                    self._slider.value = max(
                        0,
                        steps.index(self._shown.step)
                        if self._shown.step in steps
                        else self._slider.max,
                    )
        finally:
            self._syncing = False
        t = self._trainer
        last = t.history[-1] if t.history else {}
        shown = self._shown.step if self._shown is not None else 0
        rate = f", {self._steps_per_s:.0f} steps/s" if self.running else ""
        loss = f", loss {last['loss']:.4g}" if "loss" in last else ""
        self._step_label.value = f"showing step {shown} · trained {t.global_step}{loss}{rate}"

    def _on_slide(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        steps = self._recorder.steps
        if not steps:
            return
        i = min(int(change["new"]), len(steps) - 1)
        self.scrub(steps[i])

    def _refresh(self, force: bool = False) -> None:
        """Metrics, latest snapshot (when following), scrubber, status: one batched update."""
        with self._view_lock:
            latest = self._recorder.latest
            if latest is not None and self._follow and (force or latest is not self._shown):
                self._show(latest)
            self._update_metrics()
            self._sync_slider()
            if not self.running and not self.last_error and force:
                self._set_status(
                    f"paused at step {self._trainer.global_step}"
                    if self._trainer.global_step
                    else "ready: press Play"
                )
