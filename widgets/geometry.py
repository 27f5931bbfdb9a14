"""The geometry lab: look at any layer's point cloud (PCA / UMAP / t-SNE, 2-D or 3-D, WebGL),
colour it by label, position, step or any metadata column, pick a point to see its input and
exact nearest neighbours, and follow intrinsic dimension, rank and collapse across layers and
over training. Numbers come from :mod:`explorer.analysis.geometry`; pictures from
:mod:`widgets.figures.geometry`; the protocol (source, follow, export, …) from
:mod:`widgets._lab`.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.analysis.geometry import align_snapshots, geometry_profile, knn, project
from explorer.analysis.geometry.sources import model_points, token_states
from explorer.errors import ExplorerWarning
from widgets._lab import Lab
from widgets.figures import geometry as figs

__all__ = ["GeometryLab"]

PROJECTIONS = {"PCA": "pca", "UMAP": "umap", "t-SNE": "tsne"}
STEP = "step"
NONE = "(none)"
VIEWS = ("scatter", "layers", "training")


def _points(layers: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(layers, Mapping) or not layers:
        raise TypeError("layers must be a non-empty mapping layer name → (n, d) array")
    out = {str(k): np.asarray(v, dtype=np.float32) for k, v in layers.items()}
    sizes = {k: v.shape for k, v in out.items()}
    if any(v.ndim != 2 for v in out.values()) or len({s[0] for s in sizes.values()}) != 1:
        raise ValueError(
            f"every layer must be (n, d) with the same n (one row per point), got {sizes}; "
            'use explorer.analysis.pool_features(h, "tokens") for (B, T, d) hidden states'
        )
    return out


def _svg_image(img: np.ndarray, px: int = 6) -> str:
    """A small grey-scale SVG of a 2-D array (inline, offline)."""
    a = np.asarray(img, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    g = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)
    h, w = a.shape
    cells = "".join(
        f"<rect x='{j * px}' y='{i * px}' width='{px}' height='{px}' "
        f"fill='rgb({int(255 * v)},{int(255 * v)},{int(255 * v)})'/>"
        for i, row in enumerate(g)
        for j, v in enumerate(row)
    )
    return f"<svg width='{w * px}' height='{h * px}'>{cells}</svg>"


def _as_meta(metadata: Any, n: int) -> pd.DataFrame:
    meta = pd.DataFrame() if metadata is None else pd.DataFrame(metadata)
    if len(meta) and len(meta) != n:
        raise ValueError(f"metadata has {len(meta)} rows but the layers have {n} points")
    return meta.reset_index(drop=True) if len(meta) else pd.DataFrame(index=range(n))


class GeometryLab(Lab):
    """Point clouds of a model's layers, their neighbours and their geometry.

    ``layers``: layer name → (n, d) points (same n rows in every layer); ``metadata``: a
    DataFrame (or dict of columns) with n rows for colouring and hover (label, position,
    token…); ``inputs``: what each point came from — strings, or an array with one row per
    point or per ``metadata["sample"]`` (vectors are printed, 2-D arrays drawn).
    ``source``: instead of layers, a TrainingLab, Recorder or run directory (the points are the
    first ``n_inputs`` test inputs of its current task, through the model at the shown step;
    metric curves over training appear), ``(model, inputs)`` or ``(pretrained model, texts)``
    (one point per token). ``metrics``: names from :data:`explorer.analysis.geometry.METRICS`
    (label-based ones use ``metadata["label"]``). ``max_points``: points drawn (WebGL); beyond,
    a seeded subsample is drawn and the title says so — neighbours use all points, metrics a
    seeded subsample of 2000.
    """

    kind = "geometry"

    def __init__(
        self,
        layers: Mapping[str, Any] | None = None,
        *,
        source: Any = None,
        metadata: pd.DataFrame | Mapping[str, Any] | None = None,
        inputs: Any = None,
        n_inputs: int = 512,
        metrics: Sequence[str] = ("twonn", "mle", "effective_rank", "participation_ratio"),
        projection: str = "PCA",
        dims: int = 2,
        color: str | None = None,
        k: int = 10,
        max_points: int = 100_000,
        keep_steps: int = 6,
        out_dir: str | Path = "exports",
        min_interval_s: float = 1.0,
    ) -> None:
        if layers is None and source is None:
            raise ValueError("give layers={name: (n, d) array} or source=... (see help)")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {list(PROJECTIONS)}, got {projection!r}")
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        super().__init__(out_dir=out_dir, min_interval_s=min_interval_s)
        self.max_points = int(max_points)
        self._metric_names = list(metrics)
        self._n_inputs = n_inputs
        self._keep_steps = keep_steps
        self._coords: dict[tuple[str, str, int, bool], np.ndarray] = {}
        self._previous: dict[tuple[str, str, int, bool], np.ndarray] = {}
        self._by_step: dict[int, dict[str, np.ndarray]] = {}
        self._history: list[pd.DataFrame] = []
        self._profile: pd.DataFrame | None = None
        self.picked: int | None = None
        self.neighbors: np.ndarray = np.zeros(0, dtype=np.int64)
        self.neighbor_distances: np.ndarray = np.zeros(0)
        self._quiet = False
        self._layers: dict[str, np.ndarray] = {}
        self._meta = pd.DataFrame()
        self._inputs = inputs
        if layers is not None:
            self._layers = _points(layers)
            self._meta = _as_meta(metadata, len(next(iter(self._layers.values()))))
        self._build(projection, dims, k)
        if source is not None:
            self.follow(source)
        else:
            self._set_colors(color)
            self._redraw(recompute_metrics=True)
        if color is not None and source is not None:
            self.select(color=color)

    # ================================================================== public API
    @property
    def layers(self) -> list[str]:
        return list(self._layers)

    @property
    def selection(self) -> dict[str, Any]:
        """The current view: layer, projection, dims, color, k, picked point, step."""
        return {
            "layer": self._layer.value,
            "projection": self._projection.value,
            "dims": int(self._dims.value[0]),
            "color": self._color.value,
            "k": self._k.value,
            "picked": self.picked,
            "step": self._shown_step,
        }

    @property
    def panels(self) -> dict[str, W.Widget]:
        out = {"scatter": self.scatter, "layers": self.layer_curves}
        if "training" in self.views:
            out["training"] = self.training_curves
        return out

    def select(
        self,
        layer: str | None = None,
        *,
        projection: str | None = None,
        dims: int | None = None,
        color: str | None = None,
        k: int | None = None,
    ) -> None:
        """Change the view (None keeps the current value) and redraw once."""
        if layer is not None and layer not in self._layer.options:
            raise ValueError(f"unknown layer {layer!r}; available: {list(self._layer.options)}")
        if projection is not None and projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {list(PROJECTIONS)}, got {projection!r}")
        if dims is not None and dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        if color is not None and color not in self._color.options:
            raise ValueError(f"unknown colour {color!r}; available: {list(self._color.options)}")
        if k is not None and not (isinstance(k, int) and self._k.min <= k <= self._k.max):
            raise ValueError(f"k must be an integer in [{self._k.min}, {self._k.max}], got {k!r}")
        self._quiet = True
        try:
            if layer is not None:
                self._layer.value = layer
            if projection is not None:
                self._projection.value = projection
            if dims is not None:
                self._dims.value = f"{dims}D"
            if color is not None:
                self._color.value = color
            if k is not None:
                self._k.value = k
        finally:
            self._quiet = False
        self._redraw()

    def pick(self, index: int) -> None:
        """Select point ``index`` (a row of the layer): show its input and k exact neighbours
        in the layer on view (they follow a layer switch)."""
        x = self._layers[self._layer.value]
        if not 0 <= int(index) < len(x):
            raise ValueError(f"index must be in [0, {len(x)}), got {index}")
        self.picked = int(index)
        with self._lock:
            self._show_pick()
            self._draw_scatter()

    def coordinates(self) -> pd.DataFrame:
        """Projected coordinates of every point of the current view, with its metadata."""
        coords = self._current_coords()
        meta = self._view_points()[1]
        cols = ["x", "y", "z"][: coords.shape[1]]
        out = pd.DataFrame(coords, columns=cols)
        out.insert(0, "point", np.arange(len(coords)))
        return pd.concat([out, meta.reset_index(drop=True)], axis=1)

    def metrics(self) -> pd.DataFrame:
        """Tidy geometry metrics: per layer now, plus the history over training."""
        if self._history:
            return pd.concat(self._history, ignore_index=True)
        return self._profile if self._profile is not None else pd.DataFrame()

    # ================================================================== protocol
    def _available_views(self) -> list[str]:
        if not self._layers:
            return []
        return [v for v in VIEWS if v != "training" or len(self._history) > 1]

    def _current_view(self) -> str:
        return "scatter"

    def _figure(self, view: str) -> go.Figure:
        if view == "scatter":
            return go.Figure(self.scatter)
        if view == "layers":
            return go.Figure(self.layer_curves)
        return go.Figure(self.training_curves)

    def _frame(self, view: str) -> pd.DataFrame:
        if view == "scatter":
            return self.coordinates()
        if view == "layers":
            return self._profile if self._profile is not None else pd.DataFrame()
        return self.metrics()

    def _on_follow(self, source: Any) -> None:
        self._by_step, self._history, self._profile = {}, [], None
        self._coords.clear()
        self._previous.clear()
        self.picked, self.neighbors = None, np.zeros(0, dtype=np.int64)

    def _points_at(self, step: int) -> tuple[dict[str, np.ndarray], pd.DataFrame, Any]:
        """(layer → points, metadata, inputs) of the source's model at ``step`` on its inputs,
        read now: a task changed by the training lab is followed, never frozen."""
        src = self._source
        texts = getattr(src, "texts", None)
        if texts is not None:  # a pretrained transformer on texts: one point per token
            layers, meta = token_states(src.model, texts)
            inputs = [f"{texts[t][:120]}  →  token «{tok}» at position {p}"
                      for t, p, tok in zip(meta["text"], meta["position"], meta["token"])]  # fmt: skip
            return layers, meta, inputs
        task = getattr(src, "task", None)
        if task is None:
            raise ValueError("this source has no inputs to run the model on: give (model, inputs)")
        x = np.asarray(task.x_test[: self._n_inputs])
        y = np.asarray(task.y_test[: self._n_inputs])
        labels = y if getattr(task, "kind", "") == "classification" and y.ndim == 1 else None
        # token sequences: one point per token; images and vectors: one point per input
        pool = "tokens" if x.dtype.kind in "iu" else "mean"
        layers, meta = model_points(src.model_at(step), x, labels=labels, pool=pool)
        return layers, meta, x

    def _show_snapshot(self, snap: Any) -> None:
        with self.busy(f"computing the layers at step {snap.step}…"):
            layers, meta, inputs = self._points_at(snap.step)
        first = not self._layers
        self._layers, self._meta, self._inputs = layers, meta, inputs
        self._shown_step = int(snap.step)
        self._by_step[snap.step] = layers
        for old in sorted(self._by_step)[1 : -self._keep_steps]:
            del self._by_step[old]  # keep the first and the latest steps
        self._coords.clear()
        if first or list(self._layer.options) != list(layers):
            current = self._layer.value
            self._quiet = True
            try:
                self._layer.options = list(layers)
                self._layer.value = current if current in layers else next(iter(layers))
            finally:
                self._quiet = False
        self._set_colors(None if first else self._color.value, keep=True)
        self._redraw(recompute_metrics=True)

    # ================================================================== data
    def _view_points(self) -> tuple[np.ndarray, pd.DataFrame]:
        """Points of the current view: one layer, or the kept steps stacked when colour=step."""
        layer = self._layer.value
        if self._color.value == STEP and self._by_step:
            steps = sorted(self._by_step)
            pts = np.concatenate([self._by_step[s][layer] for s in steps])
            meta = pd.concat([self._meta.assign(step=s) for s in steps], ignore_index=True)
            return pts, meta
        return self._layers[layer], self._meta

    def _current_coords(self) -> np.ndarray:
        sel = self.selection
        stacked = sel["color"] == STEP
        key = (sel["layer"], sel["projection"], sel["dims"], stacked)
        with self._lock:
            if key not in self._coords:
                pts, _ = self._view_points()
                dims = min(sel["dims"], pts.shape[1])  # a 1-feature layer is drawn on a line
                with self.busy(f"computing {sel['projection']} of {sel['layer']}…"):
                    coords = project(pts, PROJECTIONS[sel["projection"]], dims)
                if dims < sel["dims"]:
                    pad = np.zeros((len(coords), sel["dims"] - dims), dtype=coords.dtype)
                    coords = np.concatenate([coords, pad], axis=1)
                prev = self._previous.get(key)
                if prev is not None and prev.shape == coords.shape:
                    coords = align_snapshots([prev, coords])[1]  # no spin between snapshots
                self._coords[key] = self._previous[key] = coords
            return self._coords[key]

    # ================================================================== UI
    def _build(self, projection: str, dims: int, k: int) -> None:
        self._layer = W.Dropdown(options=self.layers, description="Layer")
        self._projection = W.Dropdown(
            options=list(PROJECTIONS), value=projection, description="Projection"
        )
        self._dims = W.ToggleButtons(options=["2D", "3D"], value=f"{dims}D")
        self._color = W.Dropdown(options=[NONE], description="Colour")
        self._k = W.IntSlider(value=k, min=1, max=50, description="Neighbours")
        for w, cls in (
            (self._layer, "layer"), (self._projection, "projection"), (self._dims, "dims"),
            (self._color, "color"), (self._k, "k"),
        ):  # fmt: skip
            w.add_class(f"xp-geometry-{cls}")
            w.observe(lambda _: self._quiet or self._redraw(), names="value")
        self.scatter = go.FigureWidget(figs.scatter_figure(np.zeros((1, 2))))
        self.scatter._config = {"displaylogo": False}
        self.scatter.add_class("xp-geometry-scatter")
        self.info = W.HTML("<i>click a point to see its input and nearest neighbours</i>")
        self.info.add_class("xp-geometry-info")
        self.layer_curves = go.FigureWidget()
        self.layer_curves.add_class("xp-geometry-layers")
        self.training_curves = go.FigureWidget()
        self.training_curves.add_class("xp-geometry-training")
        self._curve_metric = W.Dropdown(
            options=self._metric_names, value=self._metric_names[0], description="Metric"
        )
        self._curve_metric.observe(lambda _: self._guard(self._draw_training), names="value")
        self._training_box = W.VBox([self._curve_metric, self.training_curves])
        self._training_box.layout.display = "none"
        wrap = {"flex_flow": "row wrap", "align_items": "flex-start"}
        self._set_body(
            W.HBox([self._layer, self._projection, self._dims, self._color, self._k],
                   layout=W.Layout(**wrap)),
            W.HBox([self.scatter, W.VBox([self.info], layout=W.Layout(width="360px"))],
                   layout=W.Layout(**wrap)),
            W.HBox([self.layer_curves, self._training_box], layout=W.Layout(**wrap)),
        )  # fmt: skip

    def _set_colors(self, color: str | None, *, keep: bool = False) -> None:
        """Colour menu: none, every metadata column, and the step over training. ``keep``:
        a ``color`` that no longer exists (a new task without labels) falls back quietly."""
        opts = [NONE, *[str(c) for c in self._meta.columns]]
        if self._source is not None and len(getattr(self._source, "steps", ())) > 1:
            opts.append(STEP)
        if color is not None and color not in opts:
            if not keep:
                raise ValueError(f"unknown colour {color!r}; available: {opts}")
            color = None
        self._quiet = True
        try:
            self._color.options = opts
            self._color.value = color or ("label" if "label" in opts else NONE)
        finally:
            self._quiet = False

    def _redraw(self, recompute_metrics: bool = False) -> None:
        def draw() -> None:
            with self._lock:
                if not self._layers:
                    return
                if recompute_metrics or self._profile is None:
                    labels = self._meta["label"].to_numpy() if "label" in self._meta else None
                    # a measure undefined for a layer's points (TwoNN on a lattice) is NaN with
                    # an ExplorerWarning: said in the status line, a gap in its curve
                    with (
                        self.busy("computing geometry metrics…"),
                        warnings.catch_warnings(record=True) as caught,
                    ):
                        warnings.simplefilter("always", ExplorerWarning)
                        self._profile = geometry_profile(
                            self._layers, metrics=self._metric_names, max_points=2000,
                            step=self._shown_step, labels=labels,
                        )  # fmt: skip
                    self._lab_notes = tuple(
                        dict.fromkeys(
                            str(w.message)
                            for w in caught
                            if issubclass(w.category, ExplorerWarning)
                        )
                    )
                    if self._source is not None and self._shown_step is not None:
                        self._history = [
                            h for h in self._history if int(h["step"].iloc[0]) != self._shown_step
                        ] + [self._profile]
                    self._draw_curves()
                if self.picked is not None:
                    self._show_pick()  # neighbours in the layer on view, named after it
                self._draw_scatter()
                self._refresh_export_views()

        self._guard(draw)

    def _draw_scatter(self) -> None:
        sel = self.selection
        coords = self._current_coords()
        _, meta = self._view_points()
        n = len(coords)
        keep = [] if self.picked is None else [self.picked, *self.neighbors.tolist()]
        rows = figs.display_subsample(n, self.max_points, keep=[r for r in keep if r < n])
        color = None if sel["color"] == NONE else meta[sel["color"]].to_numpy()[rows]
        hover = [self._hover(i, meta) for i in rows] if n <= 20_000 else None
        shown = f"{n:,} points" if len(rows) == n else (
            f"showing {len(rows):,} of {n:,} points (random subsample; metrics use all)"
        )  # fmt: skip
        step = "" if self._shown_step is None else f" · step {self._shown_step}"
        name = sel["projection"]
        axes = ("PC1", "PC2", "PC3") if name == "PCA" else (f"{name} 1", f"{name} 2", f"{name} 3")
        fig = figs.scatter_figure(
            coords[rows], color=color, color_name=sel["color"], rows=rows, hover=hover,
            picked=self.picked if sel["color"] != STEP else None,
            neighbors=self.neighbors if sel["color"] != STEP else (),
            title=f"{sel['layer']} · {name}{step} · {shown}", axis_names=axes,
        )  # fmt: skip
        with self.scatter.batch_update():
            self.scatter.data = []
            self.scatter.add_traces(list(fig.data))
            self.scatter.layout = fig.layout
        for trace in self.scatter.data:
            trace.on_click(self._on_click)
        self._set_status(f"{sel['layer']}: {shown}")

    def _hover(self, i: int, meta: pd.DataFrame) -> str:
        parts = [f"point {i}"]
        if len(meta.columns):
            row = meta.iloc[i]
            parts += [f"{c}={html.escape(str(row[c]))}" for c in meta.columns[:4]]
        return "<br>".join(parts)

    def _draw_curves(self) -> None:
        if self._profile is None:
            return
        fig = figs.layer_metric_figure(self._profile, self._metric_names)
        with self.layer_curves.batch_update():
            self.layer_curves.data = []
            self.layer_curves.add_traces(list(fig.data))
            self.layer_curves.layout = fig.layout
        self._draw_training()

    def _draw_training(self) -> None:
        show = len(self._history) > 1
        self._training_box.layout.display = "" if show else "none"
        if not show:
            return
        fig = figs.training_metric_figure(self.metrics(), self._curve_metric.value)
        with self.training_curves.batch_update():
            self.training_curves.data = []
            self.training_curves.add_traces(list(fig.data))
            self.training_curves.layout = fig.layout

    def _on_click(self, trace: Any, points: Any, _selector: Any) -> None:
        if not points.point_inds:
            return
        row = int(trace.customdata[points.point_inds[0]])
        if self._color.value == STEP:
            row %= len(self._meta)  # stacked steps: the same input at the shown step
        self._guard(lambda: self.pick(row))

    def _show_pick(self) -> None:
        i = self.picked
        assert i is not None
        layer = self._layer.value
        x = self._layers[layer]
        k = min(self._k.value, len(x) - 1)
        # queries are not excluded from their own neighbours: ask one more, drop the point itself
        nb = knn(x, k + 1, query=x[i : i + 1], device="cpu")
        keep = nb.indices[0] != i
        self.neighbors = nb.indices[0][keep][:k]
        self.neighbor_distances = nb.distances[0][keep][:k]
        lines = [f"<b>point {i}</b> — {self._describe(i)}", "<br><b>nearest neighbours</b> "
                 f"(exact, in the {html.escape(layer)} space):<ol>"]  # fmt: skip
        for j, d in zip(self.neighbors, self.neighbor_distances):
            lines.append(f"<li>{self._describe(int(j))} <small>d = {d:.4g}</small></li>")
        self.info.value = "".join(lines) + "</ol>"

    def _describe(self, i: int) -> str:
        meta = self._meta
        bits = [f"{html.escape(str(c))}={html.escape(str(meta.iloc[i][c]))}" for c in meta.columns]
        desc = " ".join(bits[:4])
        inputs = self._inputs
        if inputs is None:
            return desc or f"#{i}"
        row = int(meta["sample"].iloc[i]) if "sample" in meta.columns else i
        if isinstance(inputs, (list, tuple)):
            return f"{html.escape(str(inputs[row]))} <small>{desc}</small>"
        value = np.asarray(inputs[row])
        if value.ndim == 3 and value.shape[0] in (1, 3):
            value = value.mean(axis=0)
        if value.ndim == 2 and value.size <= 64 * 64:
            return f"{_svg_image(value)} <small>{desc}</small>"
        shown = np.array2string(value.ravel()[:16], precision=3, separator=", ")
        return f"input {html.escape(shown)} <small>{desc}</small>"
