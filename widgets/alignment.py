"""The alignment lab: layer × layer similarity heatmaps between models, seeds and checkpoints.

Rows are always the "Rows" model's layers and columns the "Columns" model's, and the heatmap
caption, axes and hover say so; values are written in the cells and the clicked cell is
outlined. Click a cell to see that pair of layers Procrustes-aligned. Following a source (a
TrainingLab, a Recorder, a run directory) the lab compares the model at the shown step
("live") with the model at any other recorded step ("checkpoint", the *compare with* slider)
and with other seeds trained on demand. Numbers come from :mod:`explorer.analysis.alignment`;
pictures from :mod:`widgets.figures.alignment`; the protocol from :mod:`widgets._lab`.
"""

from __future__ import annotations

import threading
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
from explorer.train import seed_models
from widgets._lab import Lab
from widgets.canvas import HeatmapGrid
from widgets.figures import alignment as figs

__all__ = ["AlignmentLab"]

Reps = dict[str, np.ndarray]
LIVE, CHECKPOINT = "live", "checkpoint"


def _as_reps(reps: Mapping[str, Any], name: str) -> Reps:
    if not isinstance(reps, Mapping) or not reps:
        raise TypeError(f"model {name!r} must be a non-empty mapping layer name → (n, d) array")
    return {str(k): np.asarray(v) for k, v in reps.items()}


class AlignmentLab(Lab):
    """Compare representations layer × layer with a choice of metric.

    ``models``: model name → (layer name → (n, d) array over the same n inputs), e.g. seeds,
    architectures or checkpoints (see :func:`explorer.analysis.alignment.model_representations`).
    ``labels``: optional (n,) classes colouring the pair view. ``metric``: a key of
    :data:`explorer.analysis.alignment.METRICS`. ``source``: a TrainingLab, Recorder or run
    directory to follow — then ``n_inputs`` test inputs of its current task are used, pooled
    with ``pool``, and ``seeds`` are the extra seeds the "Train seeds" button trains.
    """

    kind = "alignment"

    def __init__(
        self,
        models: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        source: Any = None,
        labels: Any = None,
        metric: str = "cka",
        n_inputs: int = 256,
        pool: str = "mean",
        seeds: tuple[int, ...] = (1, 2),
        out_dir: str | Path = "exports",
        min_interval_s: float = 1.0,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        if not models and source is None:
            raise ValueError("give models={name: {layer: array}} or source=... (see help)")
        super().__init__(out_dir=out_dir, min_interval_s=min_interval_s)
        self._models: dict[str, Reps] = {k: _as_reps(v, k) for k, v in (models or {}).items()}
        self._labels = None if labels is None else np.asarray(labels)
        self._cache: dict[tuple[str, str, str], np.ndarray] = {}
        self._pool = pool
        self._n_inputs = n_inputs
        self._seeds = tuple(seeds)
        self._seed_thread: threading.Thread | None = None
        self._compare_step: int | None = None
        self.selected_pair: tuple[str, str, float] | None = None
        self._quiet = False
        self._build(metric)
        if source is not None:
            self.follow(source)
        else:
            names = list(self._models)
            self._set_options(names[0], names[1] if len(names) > 1 else names[0])
            self._redraw()

    # ================================================================== public API
    @property
    def models(self) -> list[str]:
        return list(self._models)

    @property
    def selection(self) -> dict[str, Any]:
        """Rows model, columns model, metric, clicked cell, shown and compared steps."""
        return {
            "rows": self._rows.value, "cols": self._cols.value, "metric": self._metric.value,
            "cell": tuple(self.grid.clicked_cell) or None, "step": self._shown_step,
            "compare_step": self._compare_step,
        }  # fmt: skip

    @property
    def panels(self) -> dict[str, W.Widget]:
        out: dict[str, W.Widget] = {"heatmap": self.grid}
        if self.selected_pair is not None:
            out["pair"] = self.pair_view
        return out

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
        if metric is not None and metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
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
                with self.busy(f"computing {METRICS[m].label}…"):
                    self._cache[key] = similarity_matrix(
                        a, None if r == c else b, metric=m, pool=self._pool
                    )
            return self._cache[key]

    def compare_with(self, step: int) -> None:
        """Make "checkpoint" the model at recorded ``step`` (as the *compare with* slider)."""
        steps = list(self._compare_slider.options)
        if step not in steps:
            raise ValueError(f"step {step!r} is not a recorded step; recorded: {steps}")
        self._compare_slider.value = step

    def click(self, row: int, col: int) -> None:
        """Show layer ``row`` of the rows model against layer ``col`` of the columns model."""
        self.grid.clicked_cell = [int(row), int(col)]

    def train_seeds(self, *, wait: bool = False) -> None:
        """Train the lab's ``seeds`` up to the shown step of the source, in the background."""
        if self._source is None:
            raise RuntimeError("train_seeds needs a source to follow (a TrainingLab or a run)")
        if self._seed_thread is not None and self._seed_thread.is_alive():
            return
        self._seed_thread = threading.Thread(
            target=self._train_seeds, name="xp-alignment-seeds", daemon=True
        )
        self._seed_thread.start()
        if wait:
            self._seed_thread.join()

    # ================================================================== protocol
    def _available_views(self) -> list[str]:
        if not self._models:
            return []
        return ["heatmap", "pair"] if self.selected_pair is not None else ["heatmap"]

    def _current_view(self) -> str:
        return "heatmap"

    def _figure(self, view: str) -> go.Figure:
        if view == "pair":
            return go.Figure(self.pair_view)
        r, c, m = self._rows.value, self._cols.value, self._metric.value
        spec, mat = METRICS[m], self.matrix()
        lo, hi = spec.bounds or (float(np.nanmin(mat)), float(np.nanmax(mat)))
        panel = figs.HeatmapPanel(mat, list(self._models[r]), list(self._models[c]), r, c)
        cell = self.grid.clicked_cell
        return figs.similarity_heatmaps(
            [panel], metric_label=spec.label, zmin=lo, zmax=hi,
            selected=(cell[0], cell[1]) if cell else None,
        )  # fmt: skip

    def _frame(self, view: str) -> pd.DataFrame:
        r, c, m = self._rows.value, self._cols.value, self._metric.value
        if view == "pair":
            if self.selected_pair is None:
                raise ValueError("no pair of layers selected: click a cell first")
            la, lb, _ = self.selected_pair
            px, py = aligned_projection(self._models[r][la], self._models[c][lb])
            parts = []
            for name, p in ((f"{r}:{la}", px), (f"{c}:{lb}", py)):
                part = pd.DataFrame({"sample": np.arange(len(p)), "layer": name,
                                     "x": p[:, 0], "y": p[:, 1]})  # fmt: skip
                if self._labels is not None and len(self._labels) == len(p):
                    part["label"] = self._labels
                parts.append(part)
            return pd.concat(parts, ignore_index=True)
        mat = self.matrix()
        step = {} if self._shown_step is None else {"step": self._shown_step}
        return tidy(
            {"model_a": r, "layer_a": la, "model_b": c, "layer_b": lb, "metric": m,
             "value": float(mat[i, j]), **step}
            for i, la in enumerate(self._models[r])
            for j, lb in enumerate(self._models[c])
        )  # fmt: skip

    # ================================================================== following a source
    def _inputs(self) -> tuple[Any, np.ndarray | None]:
        """The source's current evaluation inputs and labels (read now, never frozen)."""
        task = getattr(self._source, "task", None)
        if task is None:
            raise ValueError("this source has no inputs to run the model on: give (model, inputs)")
        x = task.x_test[: self._n_inputs]
        y = np.asarray(task.y_test[: self._n_inputs])
        labels = y if y.ndim == 1 and getattr(task, "kind", "") == "classification" else None
        return x, labels

    def _reps_at(self, step: int) -> Reps:
        x, _ = self._inputs()
        model = self._source.model_at(step)
        return model_representations(model, x, pool=self._pool)  # type: ignore[arg-type]

    def _on_follow(self, source: Any) -> None:
        self._models = {k: v for k, v in self._models.items() if k not in (LIVE, CHECKPOINT)}
        self._models = {k: v for k, v in self._models.items() if not k.startswith("seed ")}
        self._cache.clear()
        self._compare_step = None

    def _show_snapshot(self, snap: Any) -> None:
        steps = list(self._source.steps)
        with self.busy(f"representations at step {snap.step}…"):
            self._models[LIVE] = self._reps_at(snap.step)
            _, self._labels = self._inputs()
            if len(steps) > 1 and self._compare_step not in steps:
                self._compare_step = steps[0]
                self._models[CHECKPOINT] = self._reps_at(self._compare_step)
        self._cache = {k: v for k, v in self._cache.items() if LIVE not in k[:2]}
        self._shown_step = int(snap.step)
        self._sync_compare(steps)
        self._training_row.layout.display = "" if len(steps) > 1 else "none"
        rows, cols = self._rows.value, self._cols.value
        if rows is None or rows not in self._models:
            rows, cols = LIVE, CHECKPOINT if CHECKPOINT in self._models else LIVE
        self._set_options(rows, cols)
        self._redraw()

    def _sync_compare(self, steps: list[int]) -> None:
        self._quiet = True
        try:
            self._compare_slider.options = steps
            self._compare_slider.value = self._compare_step
        finally:
            self._quiet = False

    def _on_compare(self, change: dict[str, Any]) -> None:
        if self._quiet or self._source is None:
            return

        def run() -> None:
            step = int(change["new"])
            with self._lock, self.busy(f"representations at step {step}…"):
                self._compare_step = step
                self._models[CHECKPOINT] = self._reps_at(step)
                self._cache = {k: v for k, v in self._cache.items() if CHECKPOINT not in k[:2]}
            self._redraw()
            self._set_status(f"checkpoint = step {step}")

        self._guard(run)

    def _train_seeds(self) -> None:
        src, step = self._source, self._shown_step or 0
        self._set_status(f"training seeds {list(self._seeds)} for {step} steps…")
        try:
            with self.busy(f"training seeds {list(self._seeds)}…"):
                task = src.full_task()
                trained = seed_models(src.model_at(step), task, src.train_config, self._seeds, step)
                x, _ = self._inputs()
                reps = {s: model_representations(m, x, pool=self._pool) for s, m in trained.items()}  # type: ignore[arg-type]
            with self._lock:
                for seed, r in reps.items():
                    self._models[f"seed {seed}"] = r
            self._set_options(self._rows.value, self._cols.value)
            self._redraw()
            self._set_status(f"trained seeds {list(trained)} to step {step}")
        except Exception as err:
            self._fail(err, "seed training failed: ")

    # ================================================================== UI
    def _build(self, metric: str) -> None:
        # wide enough to show "angular Procrustes distance (rad) [procrustes]" whole
        self._metric = W.Dropdown(
            options=[(f"{spec.label} [{k}]", k) for k, spec in METRICS.items()],
            value=metric, description="Metric", layout=W.Layout(width="430px"),
        )  # fmt: skip
        self._rows = W.Dropdown(description="Rows", layout=W.Layout(width="220px"))
        self._cols = W.Dropdown(description="Columns", layout=W.Layout(width="220px"))
        for w in (self._metric, self._rows, self._cols):
            w.add_class(f"xp-alignment-{w.description.lower()}")
            w.observe(lambda _: self._quiet or self._redraw(), names="value")
        self._compare_slider = W.SelectionSlider(
            options=[0], description="compare with step", continuous_update=False,
            style={"description_width": "initial"}, layout=W.Layout(width="460px"),
        )  # fmt: skip
        self._compare_slider.add_class("xp-alignment-step")
        self._compare_slider.observe(self._on_compare, names="value")
        seeds_button = W.Button(
            description="Train seeds", tooltip="train other seeds to the shown step"
        )
        seeds_button.on_click(lambda _: self._guard(self.train_seeds))
        self._training_row = W.HBox(
            [self._compare_slider, seeds_button],
            layout=W.Layout(display="none", flex_flow="row wrap"),
        )
        self.grid = HeatmapGrid(tile_px=300, show_labels=True, show_values=True, mark_cell=True)
        self.grid.add_class("xp-alignment-heatmap")
        self.grid.observe(self._on_cell, names="clicked_cell")
        self.pair_view = go.FigureWidget()
        self.pair_view.add_class("xp-alignment-pair")
        self._pair_box = W.Box([self.pair_view], layout=W.Layout(display="none"))  # once clicked
        wrap = W.Layout(flex_flow="row wrap", align_items="flex-start")
        self._set_body(
            W.HBox([self._metric, self._rows, self._cols], layout=W.Layout(flex_flow="row wrap")),
            self._training_row,
            W.HBox([self.grid, self._pair_box], layout=wrap),
        )

    def _set_options(self, rows: str | None, cols: str | None) -> None:
        names = list(self._models)
        self._quiet = True
        try:
            for w, want in ((self._rows, rows), (self._cols, cols)):
                w.options = names
                w.value = want if want in names else names[0]
            if self._rows.value == self._cols.value == LIVE and CHECKPOINT in names:
                self._cols.value = CHECKPOINT
        finally:
            self._quiet = False

    def _redraw(self) -> None:
        if self._rows.value is None or self._cols.value is None:
            return

        def draw() -> None:
            r, c, m = self._rows.value, self._cols.value, self._metric.value
            spec = METRICS[m]
            mat = self.matrix()
            lo, hi = spec.bounds or (float(np.nanmin(mat)), float(np.nanmax(mat)))
            direction = "higher = more similar" if spec.similarity else "lower = more similar"
            live = "" if self._shown_step is None else f" · live = step {self._shown_step}"
            self.grid.show(
                mat, [spec.label], vmin=lo, vmax=hi,
                row_labels=[f"{r}:{x}" for x in self._models[r]],
                col_labels=[f"{c}:{x}" for x in self._models[c]],
                x_title=f"{c} layer", y_title=f"{r} layer", colorbar_title=spec.label,
                caption=f"rows: {r} layers · columns: {c} layers · {direction} · click a cell",
                selected=-1,
            )  # fmt: skip
            self._set_status(f"{spec.label}: {r} (rows) vs {c} (columns){live}")
            cell = self.grid.clicked_cell
            if cell and cell[0] < mat.shape[0] and cell[1] < mat.shape[1]:
                self._show_cell(cell)  # keep the pair view in step with the heatmap
            elif self.selected_pair is not None:
                self._show_pair(None)  # the clicked pair is gone: never show a stale one
                self.selected_pair = None
            self._refresh_export_views()

        with self._lock:
            self._guard(draw)

    def _show_pair(self, fig: go.Figure | None) -> None:
        self._pair_box.layout.display = "none" if fig is None else ""
        if fig is None:
            return
        with self.pair_view.batch_update():
            self.pair_view.data = []
            self.pair_view.add_traces(list(fig.data))
            self.pair_view.layout = fig.layout

    def _on_cell(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._guard(lambda: self._show_cell(change["new"]))

    def _show_cell(self, cell: list[int]) -> None:
        r, c, m = self._rows.value, self._cols.value, self._metric.value
        la, lb = list(self._models[r])[cell[0]], list(self._models[c])[cell[1]]
        px, py = aligned_projection(self._models[r][la], self._models[c][lb])
        value = self.matrix()[cell[0], cell[1]]
        fig = figs.aligned_pair_figure(
            px, py, names=(f"{r}:{la}", f"{c}:{lb}"), labels=self._labels,
            title=f"{r}:{la} vs {c}:{lb} — {m} = {value:.3f} (Procrustes-aligned)",
        )  # fmt: skip
        self._show_pair(fig)
        self.selected_pair = (la, lb, float(value))
