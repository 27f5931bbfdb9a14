"""The alignment lab: layer × layer similarity heatmaps between models, seeds and checkpoints.

Rows are always the "Rows" model's layers and columns the "Columns" model's, and the heatmap
caption and hover say so. Click a cell to see that pair of layers Procrustes-aligned. Attached
to a :class:`~widgets.training.TrainingLab`, the lab follows training live ("live"), compares
with any recorded step (the step slider picks "checkpoint"), and trains other seeds on demand.
Numbers come from :mod:`explorer.analysis.alignment`; pictures from
:mod:`widgets.figures.alignment`; the heatmap is a binary-buffer canvas (:class:`HeatmapGrid`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.analysis.alignment import METRICS, aligned_projection, similarity_matrix
from explorer.analysis.alignment.models import model_representations
from explorer.frames import tidy
from explorer.models.observe import model_at
from explorer.train import seed_models
from widgets._status import StatusLine
from widgets.canvas import HeatmapGrid
from widgets.export import export, export_table
from widgets.figures import alignment as figs

__all__ = ["AlignmentLab"]

Reps = dict[str, np.ndarray]
LIVE, CHECKPOINT = "live", "checkpoint"


def _empty_pair() -> go.Figure:
    return figs.aligned_pair_figure(
        np.zeros((1, 2)), np.zeros((1, 2)), title="click a cell to compare that pair of layers"
    )


def _as_reps(reps: Mapping[str, Any], name: str) -> Reps:
    if not isinstance(reps, Mapping) or not reps:
        raise TypeError(f"model {name!r} must be a non-empty mapping layer name → (n, d) array")
    return {str(k): np.asarray(v) for k, v in reps.items()}


class AlignmentLab(StatusLine, W.VBox):
    """Compare representations layer × layer with a choice of metric.

    ``models``: model name → (layer name → (n, d) array over the same n inputs), e.g. seeds,
    architectures or checkpoints (see :func:`explorer.analysis.alignment.models.model_representations`).
    ``labels``: optional (n,) classes colouring the pair view. ``metric``: a key of
    :data:`explorer.analysis.alignment.METRICS`. ``training``: a TrainingLab to follow (or use
    :meth:`attach`); then ``n_inputs`` test inputs of its task are used, pooled with ``pool``,
    and ``seeds`` are the extra seeds the "Train seeds" button trains.

    Plain-Python control: :meth:`select`, :meth:`click`, :meth:`add_model`, :meth:`train_seeds`,
    :meth:`matrix`, :meth:`frame`, :meth:`to_figure`, :meth:`export`, :meth:`export_matrix`.
    """

    def __init__(
        self,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        labels: Any = None,
        metric: str = "cka",
        training: Any = None,
        n_inputs: int = 256,
        pool: str = "mean",
        seeds: tuple[int, ...] = (1, 2),
        out_dir: str | Path = "exports",
        min_interval_s: float = 1.0,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        if not models and training is None:
            raise ValueError("give models={name: {layer: array}} or training=<TrainingLab>")
        super().__init__()
        self.add_class("xp-alignment-lab")
        self.out_dir = Path(out_dir)
        self._models: dict[str, Reps] = {k: _as_reps(v, k) for k, v in (models or {}).items()}
        self._labels = None if labels is None else np.asarray(labels)
        self._cache: dict[tuple[str, str, str], np.ndarray] = {}
        self._lock = threading.RLock()
        self._training = training
        self._pool = pool
        self._n_inputs = n_inputs
        self._seeds = tuple(seeds)
        self._min_interval = min_interval_s
        self._last_live = 0.0
        self._seed_thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.selected_pair: tuple[str, str, float] | None = None
        self._quiet = False
        self._build(metric)
        if training is not None:
            self._connect(training)
        names = list(self._models)
        self._set_options(names[0], names[1] if len(names) > 1 else names[0])
        self._redraw()

    @classmethod
    def attach(cls, training_lab: Any, **kwargs: Any) -> AlignmentLab:
        """An alignment lab following ``training_lab`` (live vs checkpoint vs other seeds)."""
        return cls(training=training_lab, **kwargs)

    # ================================================================== public API
    @property
    def models(self) -> list[str]:
        return list(self._models)

    @property
    def selection(self) -> tuple[str, str, str]:
        """(rows model, columns model, metric) currently shown."""
        return self._rows.value, self._cols.value, self._metric.value

    def add_model(self, name: str, reps: Mapping[str, Any]) -> None:
        """Add (or replace) a model's representations and offer it in both menus."""
        with self._lock:
            self._models[name] = _as_reps(reps, name)
            self._cache = {k: v for k, v in self._cache.items() if name not in k[:2]}
        self._set_options(self._rows.value, self._cols.value)
        self._redraw()

    def select(
        self, rows: str | None = None, cols: str | None = None, metric: str | None = None
    ) -> None:
        """Show ``rows`` model vs ``cols`` model under ``metric`` (None keeps the current one)."""
        for value, options in ((rows, self._rows.options), (cols, self._cols.options)):
            if value is not None and value not in options:
                raise ValueError(f"unknown model {value!r}; available: {list(options)}")
        self._quiet = True
        try:
            if metric is not None:
                self._metric.value = metric
            if rows is not None:
                self._rows.value = rows
            if cols is not None:
                self._cols.value = cols
        finally:
            self._quiet = False
        self._redraw()

    def matrix(
        self, rows: str | None = None, cols: str | None = None, metric: str | None = None
    ) -> np.ndarray:
        """(layers of rows model, layers of cols model) matrix of ``metric`` (cached)."""
        r, c, m = rows or self._rows.value, cols or self._cols.value, metric or self._metric.value
        key = (r, c, m)
        with self._lock:
            if key not in self._cache:
                a, b = self._models[r], self._models[c]
                self._cache[key] = similarity_matrix(
                    a, None if r == c else b, metric=m, pool=self._pool
                )
            return self._cache[key]

    def frame(self, step: int | None = None) -> pd.DataFrame:
        """The shown matrix as a tidy frame (model_a, layer_a, model_b, layer_b, metric, value)."""
        r, c, m = self.selection
        mat = self.matrix()
        rows_l, cols_l = list(self._models[r]), list(self._models[c])
        return tidy(
            {"model_a": r, "layer_a": la, "model_b": c, "layer_b": lb, "metric": m,
             "value": float(mat[i, j]), **({} if step is None else {"step": step})}
            for i, la in enumerate(rows_l)
            for j, lb in enumerate(cols_l)
        )  # fmt: skip

    def click(self, row: int, col: int) -> None:
        """Show layer ``row`` of the rows model against layer ``col`` of the columns model."""
        self.grid.clicked_cell = [int(row), int(col)]

    def to_figure(self, view: str = "heatmap") -> go.Figure:
        """``"heatmap"`` (the shown matrix) or ``"pair"`` (the clicked pair) as a plotly Figure."""
        if view == "pair":
            return go.Figure(self.pair_view)
        if view != "heatmap":
            raise ValueError(f"view must be 'heatmap' or 'pair', got {view!r}")
        r, c, m = self.selection
        spec = METRICS[m]
        panel = figs.HeatmapPanel(self.matrix(), list(self._models[r]), list(self._models[c]), r, c)
        return figs.similarity_heatmaps(
            [panel], metric_label=spec.label, zmin=spec.bounds[0], zmax=spec.bounds[1]
        )

    def export(self, path: str | Path, view: str = "heatmap") -> Path:
        """Write the heatmap (or pair view) to .png/.svg/.pdf/.html."""
        return export(self.to_figure(view), path)

    def export_matrix(self, path: str | Path) -> Path:
        """Write the shown matrix as a tidy table (.csv/.parquet/.json)."""
        return export_table(self.frame(), path)

    def train_seeds(self, *, wait: bool = False) -> None:
        """Train the lab's ``seeds`` up to the training lab's current step, in the background."""
        if self._training is None:
            raise RuntimeError("train_seeds needs a lab attached to a TrainingLab")
        if self._seed_thread is not None and self._seed_thread.is_alive():
            return
        self._seed_thread = threading.Thread(
            target=self._train_seeds, name="xp-alignment-seeds", daemon=True
        )
        self._seed_thread.start()
        if wait:
            self._seed_thread.join()

    # ================================================================== training link
    def _connect(self, lab: Any) -> None:
        task = lab.task
        self._inputs = task.x_test[: self._n_inputs]
        y = np.asarray(task.y_test[: self._n_inputs])
        self._labels = y if y.ndim == 1 and task.kind == "classification" else self._labels
        self._models[LIVE] = self._reps_at(lab.recorder.latest)
        self._models[CHECKPOINT] = self._reps_at(lab.recorder.at(lab.recorder.steps[0]))
        steps = lab.recorder.steps
        self._step.max, self._step.value = max(steps), steps[0]
        self._training_row.layout.display = ""
        self._unsubscribe = lab.recorder.subscribe(self._on_snapshot)

    def _reps_at(self, snap: Any) -> Reps:
        model = model_at(self._training.trainer.model, snap.params)
        return model_representations(model, self._inputs, pool=self._pool)  # type: ignore[arg-type]

    def _on_snapshot(self, snap: Any) -> None:
        now = time.monotonic()
        steps = self._training.recorder.steps
        self._step.max = max(steps) if steps else 0
        if now - self._last_live < self._min_interval and self._training.running:
            return
        self._last_live = now
        self._guard(lambda: self._replace(LIVE, self._reps_at(snap), f"live = step {snap.step}"))

    def _on_step(self, change: dict[str, Any]) -> None:
        if self._training is None:
            return
        snap = self._training.recorder.at(int(change["new"]))
        self._guard(
            lambda: self._replace(CHECKPOINT, self._reps_at(snap), f"checkpoint = step {snap.step}")
        )

    def _replace(self, name: str, reps: Reps, note: str) -> None:
        with self._lock:
            self._models[name] = reps
            self._cache = {k: v for k, v in self._cache.items() if name not in k[:2]}
        if name in (self._rows.value, self._cols.value):
            self._redraw()
        self._set_status(note)

    def _train_seeds(self) -> None:
        lab = self._training
        steps = lab.trainer.global_step
        self._set_status(f"training seeds {list(self._seeds)} for {steps} steps…")
        try:
            trained = seed_models(
                lab.trainer.model, lab.task, lab.trainer.config, self._seeds, steps
            )
            for seed, model in trained.items():
                reps = model_representations(model, self._inputs, pool=self._pool)  # type: ignore[arg-type]
                with self._lock:
                    self._models[f"seed {seed}"] = reps
            self._set_options(self._rows.value, self._cols.value)
            self._redraw()
            self._set_status(f"trained seeds {list(trained)} to step {steps}")
        except Exception as err:
            self._set_status(f"⚠ seed training failed: {err}", error=True)

    # ================================================================== UI
    def _build(self, metric: str) -> None:
        self._metric = W.Dropdown(
            options=[(f"{spec.label} [{k}]", k) for k, spec in METRICS.items()],
            value=metric,
            description="Metric",
        )
        self._rows = W.Dropdown(description="Rows")
        self._cols = W.Dropdown(description="Columns")
        for w in (self._metric, self._rows, self._cols):
            w.add_class(f"xp-alignment-{w.description.lower()}")
            w.observe(lambda _: self._quiet or self._redraw(), names="value")
        self._step = W.IntSlider(value=0, min=0, max=0, description="Step", continuous_update=False)
        self._step.add_class("xp-alignment-step")
        self._step.observe(self._on_step, names="value")
        seeds_button = W.Button(
            description="Train seeds", tooltip="train other seeds to the current step"
        )
        seeds_button.on_click(lambda _: self.train_seeds())
        self._training_row = W.HBox([self._step, seeds_button], layout=W.Layout(display="none"))
        self.grid = HeatmapGrid(tile_px=300, show_labels=True)
        self.grid.add_class("xp-alignment-heatmap")
        self.grid.observe(self._on_cell, names="clicked_cell")
        self.pair_view = go.FigureWidget(_empty_pair())
        buttons = []
        for label, fn in (
            ("Export PNG", lambda: self.export(self._out("heatmap", "png"))),
            ("Export HTML", lambda: self.export(self._out("heatmap", "html"))),
            ("Export CSV", lambda: self.export_matrix(self._out("matrix", "csv"))),
        ):
            b = W.Button(description=label)
            b.on_click(lambda _, fn=fn: self._guard(lambda: self._set_status(f"wrote {fn()}")))
            buttons.append(b)
        self._status = W.HTML(layout=W.Layout(min_height="1.5em"))
        self._status.add_class("xp-alignment-status")
        self.children = [
            W.HBox([self._metric, self._rows, self._cols]),
            self._training_row,
            W.HBox([self.grid, self.pair_view]),
            W.HBox(buttons),
            self._status,
        ]

    def _set_options(self, rows: str, cols: str) -> None:
        names = list(self._models)
        self._quiet = True
        try:
            for w, want in ((self._rows, rows), (self._cols, cols)):
                w.options = names
                w.value = want if want in names else names[0]
            if self._training is not None and self._rows.value == self._cols.value == LIVE:
                self._cols.value = CHECKPOINT
        finally:
            self._quiet = False

    def _out(self, what: str, fmt: str) -> Path:
        r, c, m = self.selection
        safe = "_".join(s.replace(" ", "-") for s in (r, c, m))
        return self.out_dir / f"alignment_{what}_{safe}.{fmt}"

    def _redraw(self) -> None:
        if not hasattr(self, "grid") or self._rows.value is None or self._cols.value is None:
            return

        def draw() -> None:
            r, c, m = self.selection
            spec = METRICS[m]
            mat = self.matrix()
            direction = "higher = more similar" if spec.similarity else "lower = more similar"
            self.grid.show(
                mat, [f"{spec.label}"], vmin=spec.bounds[0], vmax=spec.bounds[1],
                row_labels=[f"{r}:{x}" for x in self._models[r]],
                col_labels=[f"{c}:{x}" for x in self._models[c]],
                caption=f"rows: {r} layers · columns: {c} layers · {direction} · click a cell",
                show_labels=True, selected=-1,
            )  # fmt: skip
            self._set_status(f"{spec.label}: {r} (rows) vs {c} (columns)")
            cell = self.grid.clicked_cell
            if cell and cell[0] < mat.shape[0] and cell[1] < mat.shape[1]:
                self._on_cell({"new": cell})  # keep the pair view in step with the heatmap
            elif self.selected_pair is not None:
                self._show_pair(_empty_pair())  # the clicked pair is gone: never show a stale one
                self.selected_pair = None

        self._guard(draw)

    def _show_pair(self, fig: go.Figure) -> None:
        with self.pair_view.batch_update():
            self.pair_view.data = []
            self.pair_view.add_traces(list(fig.data))
            self.pair_view.layout = fig.layout

    def _on_cell(self, change: dict[str, Any]) -> None:
        cell = change["new"]
        if not cell:
            return

        def show() -> None:
            r, c, m = self.selection
            la, lb = list(self._models[r])[cell[0]], list(self._models[c])[cell[1]]
            px, py = aligned_projection(self._models[r][la], self._models[c][lb])
            value = self.matrix()[cell[0], cell[1]]
            fig = figs.aligned_pair_figure(
                px, py, names=(f"{r}:{la}", f"{c}:{lb}"), labels=self._labels,
                title=f"{r}:{la} vs {c}:{lb} — {m} = {value:.3f} (Procrustes-aligned)",
            )  # fmt: skip
            self._show_pair(fig)
            self.selected_pair = (la, lb, float(value))

        self._guard(show)
