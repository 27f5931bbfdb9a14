"""AttentionLab: every head at a glance, one head enlarged, the head view, rollout and flow,
sortable head statistics, ViT overlays, and a step slider over a training run.

Dense maps go to canvases as float32 buffers (:class:`~widgets.canvas.HeatmapGrid`); what is
sent is what is on screen: thumbnails are block means (≤ ``thumb_size``² per head), one head at
full resolution (a window of ``window`` tokens around the query past ``detail_max`` tokens),
the head view for one layer and a window of tokens. The status line says when a view is pooled
or windowed. Every view exports through :meth:`AttentionLab.export`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as ipw
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from explorer.analysis import attention as attn
from widgets.canvas import HeatmapGrid
from widgets.export import export, export_table
from widgets.figures import attention as figs
from widgets.theme import COLORWAY

__all__ = ["AttentionHeadView", "AttentionLab", "HeadStatsTable"]

_STATIC = Path(__file__).parent / "static"
VIEWS = ("grid", "head", "head_view", "rollout", "statistics", "vit")
_TAB_VIEW = {0: "head", 1: "head_view", 2: "rollout", 3: "statistics", 4: "vit"}


class AttentionHeadView(anywidget.AnyWidget):
    """Lines from the query token to every key, per head, for one layer and a token window."""

    _esm = _STATIC / "attention_head_view.js"
    _css = _STATIC / "attention.css"

    weights = traitlets.Bytes(b"").tag(sync=True)  # float32 (H, n, n)
    shape = traitlets.List(traitlets.Int(), [0, 0]).tag(sync=True)  # [H, n]
    tokens = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    offset = traitlets.Int(0).tag(sync=True)
    query = traitlets.Int(0).tag(sync=True)
    heads = traitlets.List(traitlets.Int(), []).tag(sync=True)
    colors = traitlets.List(traitlets.Unicode(), list(COLORWAY)).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)


class HeadStatsTable(anywidget.AnyWidget):
    """Sortable table of head statistics (sorting happens in the page); click selects a head."""

    _esm = _STATIC / "attention_table.js"
    _css = _STATIC / "attention.css"

    columns = traitlets.List(traitlets.Unicode(), []).tag(sync=True)
    rows = traitlets.List([]).tag(sync=True)
    sort_by = traitlets.Unicode("").tag(sync=True)
    descending = traitlets.Bool(True).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)


def _show_plot(out: ipw.Output, fig: go.Figure) -> None:
    """Put ``fig`` in ``out`` as plotly JSON, rendered by JupyterLab's plotly extension.

    (A ``go.FigureWidget`` would ship its own copy of plotly.js, ~5 MB, to the page.)
    """
    data = {"application/vnd.plotly.v1+json": json.loads(fig.to_json()), "text/plain": "figure"}
    out.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)


def _window(center: int, size: int, total: int) -> tuple[int, int]:
    start = min(max(0, center - size // 2), max(0, total - size))
    return start, min(total, start + size)


class AttentionLab(ipw.VBox):
    """Interactive attention explorer for one input (or a training run's snapshots).

    ``attention``: anything :func:`explorer.analysis.attention.as_patterns` accepts (a capture,
    HF ``outputs.attentions``, or an array (L, H, T, T)); ``tokens``: T display strings.
    ``image`` (H, W[, 3]) and ``grid`` (gh, gw) enable the ViT overlay (``n_prefix`` CLS-like
    tokens before the patches). ``attach``: a TrainingLab or Recorder to follow (step slider).

    Selection state: :attr:`layer`, :attr:`head`, :attr:`query`; :meth:`select` and
    :meth:`set_query` change it as clicks do.
    """

    def __init__(
        self,
        attention: Any = None,
        tokens: Sequence[Any] | None = None,
        *,
        image: Any = None,
        grid: tuple[int, int] | None = None,
        n_prefix: int = 1,
        title: str = "Attention",
        thumb_size: int = 48,
        detail_max: int = 256,
        window: int = 128,
        head_view_window: int = 64,
        flow_auto_max: int = 128,
        attach: Any = None,
    ) -> None:
        self.thumb_size, self.detail_max, self.window = thumb_size, detail_max, window
        self.head_view_window, self.flow_auto_max = head_view_window, flow_auto_max
        self.image = None if image is None else np.asarray(image)
        self.grid_shape, self.n_prefix = grid, n_prefix
        if (self.image is None) != (grid is None):
            raise ValueError("the ViT overlay needs both image=(H, W[, 3]) and grid=(gh, gw)")
        self.layer = self.head = self.query = 0
        self.step: int | None = None
        self._pat: attn.AttentionPatterns | None = None
        self._maps = np.zeros((0, 0, 0, 0), np.float32)
        self._stats: pd.DataFrame | None = None
        self._rollout: np.ndarray | None = None
        self._flow: dict[int, np.ndarray] = {}
        self._recorder: Any = None
        self._attach_tokens: list[str] | None = None
        self._vocab: list[str] = []
        self._syncing = False

        self.title_html = ipw.HTML(f"<b>{html.escape(title)}</b>")
        self.status = ipw.HTML("")
        self.status.add_class("xp-attention-status")
        self.step_slider = ipw.SelectionSlider(
            options=[0],
            description="step",
            layout=ipw.Layout(display="none", width="420px"),
            continuous_update=False,
        )
        self.query_select = ipw.Dropdown(
            description="query", options=[("0", 0)], layout=ipw.Layout(width="280px")
        )
        self.grid = HeatmapGrid(tile_px=64)
        self.grid.add_class("xp-attention-grid")
        self.detail = HeatmapGrid(tile_px=420, columns=1)
        self.detail.add_class("xp-attention-detail")
        self.head_view = AttentionHeadView()
        self.head_view.add_class("xp-attention-headview")
        self.method = ipw.ToggleButtons(
            options=["raw", "rollout", "flow"],
            value="rollout",
            description="map",
            style={"button_width": "70px"},
        )
        self.flow_button = ipw.Button(
            description="Compute flow",
            icon="random",
            tooltip="max-flow from every input token to the query",
        )
        self.rollout_grid = HeatmapGrid(tile_px=120)
        self.attribution = ipw.Output()
        self.table = HeadStatsTable(sort_by="entropy")
        self.table.add_class("xp-attention-table")
        metric_opts = list(attn.METRICS)
        self.x_metric = ipw.Dropdown(options=metric_opts, value="distance", description="x")
        self.y_metric = ipw.Dropdown(options=metric_opts, value="entropy", description="y")
        self.scatter = ipw.Output()
        self.vit_method = ipw.ToggleButtons(
            options=["raw", "rollout"], value="raw", description="ViT map"
        )
        self.vit_figure = ipw.Output()
        self.export_view = ipw.Dropdown(
            options=["current", *VIEWS, "table (csv)"],
            value="current",
            description="export",
            layout=ipw.Layout(width="220px"),
        )
        self.export_format = ipw.Dropdown(
            options=["png", "svg", "pdf", "html"], value="png", layout=ipw.Layout(width="80px")
        )
        self.export_path = ipw.Text(value="attention_view", layout=ipw.Layout(width="220px"))
        self.export_button = ipw.Button(
            description="Export", icon="download", tooltip="write the current view to a file"
        )
        self.export_message = ipw.HTML("")

        heads_tab = ipw.HBox([self.grid, self.detail])
        rollout_tab = ipw.VBox(
            [ipw.HBox([self.method, self.flow_button]), self.rollout_grid, self.attribution]
        )
        stats_tab = ipw.HBox(
            [self.table, ipw.VBox([ipw.HBox([self.x_metric, self.y_metric]), self.scatter])]
        )
        tabs = [heads_tab, self.head_view, rollout_tab, stats_tab]
        titles = ["Heads", "Head view", "Rollout / flow", "Statistics"]
        if self.image is not None:
            tabs.append(ipw.VBox([self.vit_method, self.vit_figure]))
            titles.append("ViT")
        self.tabs = ipw.Tab(children=tabs, titles=titles)
        export_bar = ipw.HBox(
            [
                self.export_view,
                self.export_format,
                self.export_path,
                self.export_button,
                self.export_message,
            ]
        )
        super().__init__(
            [
                ipw.HBox([self.title_html, self.step_slider]),
                ipw.HBox([self.query_select, self.status]),
                self.tabs,
                export_bar,
            ]
        )
        self.add_class("xp-attention-lab")

        self.grid.observe(self._on_grid_select, "selected")
        self.grid.observe(self._on_grid_cell, "clicked_cell")
        self.detail.observe(self._on_detail_cell, "clicked_cell")
        self.head_view.observe(lambda c: self.set_query(c.new), "query")
        self.table.observe(self._on_table_select, "selected")
        self.query_select.observe(lambda c: self.set_query(c.new), "value")
        self.tabs.observe(lambda _c: self._refresh_tab(), "selected_index")
        self.method.observe(lambda _c: self._draw_rollout(), "value")
        self.flow_button.on_click(lambda _b: self._draw_rollout(force_flow=True))
        self.x_metric.observe(lambda _c: self._draw_scatter(), "value")
        self.y_metric.observe(lambda _c: self._draw_scatter(), "value")
        self.vit_method.observe(lambda _c: self._draw_vit(), "value")
        self.step_slider.observe(self._on_step, "value")
        self.export_button.on_click(self._on_export)
        if attention is not None:
            self.set_attention(attention, tokens)
        if attach is not None:
            self.attach(attach)

    # ------------------------------------------------------------ data in

    @classmethod
    def from_model(
        cls, model: Any, inputs: Any, tokens: Sequence[Any] | None = None, **kwargs: Any
    ) -> AttentionLab:
        """Capture ``blocks.*.attn.hook_pattern`` of ``model`` on ``inputs`` and open a lab.

        Text inputs to a pretrained model take their tokens from ``model.tokens(text)``.
        """
        from explorer.models.hooks import capture

        cache = capture(model, inputs, names=["blocks.*.attn.hook_pattern"])
        if tokens is None and isinstance(inputs, str) and hasattr(model, "tokens"):
            tokens = model.tokens(inputs)
        return cls(cache, tokens, **kwargs)

    def set_attention(
        self, attention: Any, tokens: Sequence[Any] | None = None, *, step: int | None = None
    ) -> None:
        """Show new attention (same or new shape); keeps the selection where it still fits."""
        pat = attn.as_patterns(attention, tokens)
        old_tokens = None if self._pat is None else self._pat.tokens
        self._pat, self.step = pat, step
        self._maps = np.ascontiguousarray(pat.numpy(), dtype=np.float32)
        self._stats, self._rollout, self._flow = None, None, {}
        n_layers, n_heads, t = pat.shape
        self.layer, self.head = min(self.layer, n_layers - 1), min(self.head, n_heads - 1)
        self.query = min(self.query, t - 1)
        if pat.tokens != old_tokens:
            self._syncing = True
            try:
                self.query_select.options = [(f"{i}: {s}", i) for i, s in enumerate(pat.tokens)]
                self.query_select.value = self.query
            finally:
                self._syncing = False
        self.head_view.heads = list(range(n_heads))
        self._draw_grid()
        self._draw_detail()
        self._draw_head_view()
        self._refresh_tab()

    def attach(self, source: Any, tokens: Sequence[Any] | None = None) -> AttentionLab:
        """Follow a TrainingLab (``.recorder`` + ``.subscribe``) or a Recorder: the step slider
        replays recorded snapshots; new snapshots from a TrainingLab are shown as they come."""
        recorder = getattr(source, "recorder", source)
        if not (hasattr(recorder, "steps") and hasattr(recorder, "at")):
            raise TypeError("attach() needs a TrainingLab or a Recorder (with .steps and .at)")
        self._recorder = recorder
        self._attach_tokens = list(tokens) if tokens is not None else None
        meta = getattr(getattr(source, "task", None), "meta", None) or {}
        self._vocab = [str(v) for v in meta.get("vocab", [])]
        self.step_slider.layout.display = ""
        self._refresh_steps(show_latest=True)
        if hasattr(recorder, "subscribe"):
            recorder.subscribe(self._on_snapshot)
        return self

    def _tokens_for_snapshot(self, t: int) -> list[str] | None:
        if self._attach_tokens is not None:
            return self._attach_tokens
        probe = getattr(self._recorder, "probe", None)
        inputs = getattr(probe, "inputs", None)
        if inputs is not None and getattr(inputs, "ndim", 0) == 2 and inputs.shape[1] == t:
            ids = [int(v) for v in inputs[0]]
            if self._vocab and all(0 <= i < len(self._vocab) for i in ids):
                return [self._vocab[i] for i in ids]
            return [str(i) for i in ids]
        return None

    def _show_snapshot(self, snap: Any) -> None:
        if not snap.attention:
            self.status.value = f"step {snap.step}: this snapshot holds no attention patterns"
            return
        first = next(iter(snap.attention.values()))
        self.set_attention(
            snap.attention, self._tokens_for_snapshot(int(first.shape[-1])), step=int(snap.step)
        )

    def _refresh_steps(self, show_latest: bool) -> None:
        steps = list(self._recorder.steps)
        if not steps:
            self.status.value = "waiting for the first snapshot"
            return
        self._syncing = True
        try:
            self.step_slider.options = steps
            self.step_slider.value = (
                steps[-1] if show_latest or self.step not in steps else self.step
            )
        finally:
            self._syncing = False
        self._show_snapshot(self._recorder.at(self.step_slider.value))

    def _on_snapshot(self, snap: Any) -> None:
        """A TrainingLab shows ``snap`` (new recording or scrub): show it too."""
        self._syncing = True
        try:
            self.step_slider.options = list(self._recorder.steps) or [snap.step]
            if snap.step in self.step_slider.options:
                self.step_slider.value = snap.step
        finally:
            self._syncing = False
        self._show_snapshot(snap)

    def _on_step(self, change: Any) -> None:
        if not self._syncing and self._recorder is not None:
            self._show_snapshot(self._recorder.at(change.new))

    # ------------------------------------------------------------ selection

    @property
    def patterns(self) -> attn.AttentionPatterns:
        if self._pat is None:
            raise RuntimeError("no attention shown yet: call set_attention(...) first")
        return self._pat

    def select(self, layer: int, head: int) -> None:
        """Enlarge head ``head`` of layer ``layer`` (as a click on its thumbnail does)."""
        n_layers, n_heads, _ = self.patterns.shape
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"(layer, head)=({layer}, {head}) is outside {n_layers}×{n_heads}")
        changed_layer = layer != self.layer
        self.layer, self.head = layer, head
        index = layer * n_heads + head
        self._syncing = True
        try:
            self.grid.selected = index
            self.table.selected = index
        finally:
            self._syncing = False
        self._draw_detail()
        if changed_layer:
            self._draw_head_view()
        if self._stats is not None:
            self._draw_scatter()

    def set_query(self, query: int) -> None:
        """Pick the query token (as a click on a token does)."""
        if self._syncing or self._pat is None:
            return
        t = self.patterns.shape[2]
        query = int(query)
        if not 0 <= query < t:
            raise ValueError(f"query={query} is outside 0..{t - 1}")
        if query == self.query and self.query_select.value == query:
            return
        self.query = query
        self._syncing = True
        try:
            self.query_select.value = query
        finally:
            self._syncing = False
        if t > self.detail_max:
            self._draw_detail()
        self._draw_head_view()
        self._refresh_tab()

    def _on_grid_select(self, change: Any) -> None:
        if not self._syncing and change.new >= 0 and self._pat is not None:
            self.select(*divmod(int(change.new), self.patterns.shape[1]))

    def _on_grid_cell(self, change: Any) -> None:
        if self._syncing or not change.new or self._pat is None:
            return
        t = self.patterns.shape[2]
        rows = self.grid.shape[1] or t
        self.set_query(min(t - 1, int((change.new[0] + 0.5) * t / rows)))

    def _on_detail_cell(self, change: Any) -> None:
        if change.new and self._pat is not None:
            self.set_query(self._detail_window()[0] + int(change.new[0]))

    def _on_table_select(self, change: Any) -> None:
        if not self._syncing and change.new >= 0 and self._pat is not None:
            self.select(*divmod(int(change.new), self.patterns.shape[1]))

    # ------------------------------------------------------------ drawing

    def _step_label(self) -> str:
        return "" if self.step is None else f" — step {self.step}"

    def _draw_grid(self) -> None:
        n_layers, n_heads, t = self.patterns.shape
        thumbs = attn.pool_maps(self._maps.reshape(n_layers * n_heads, t, t), self.thumb_size)
        r = thumbs.shape[1]
        note = (
            "" if r == t else f"; thumbnails are {r}×{r} block means of {t}×{t} (click to enlarge)"
        )
        self.grid.show(
            thumbs,
            [f"L{lay} H{h}" for lay in range(n_layers) for h in range(n_heads)],
            vmin=0.0,
            vmax=float(thumbs.max()) if thumbs.size else 1.0,
            columns=n_heads,
            selected=self.layer * n_heads + self.head,
            caption=f"{n_layers} layers × {n_heads} heads, {t} tokens{self._step_label()}{note}",
        )
        self.status.value = html.escape(f"{t} tokens{self._step_label()}{note}")

    def _detail_window(self) -> tuple[int, int]:
        t = self.patterns.shape[2]
        return (0, t) if t <= self.detail_max else _window(self.query, self.window, t)

    def _draw_detail(self) -> None:
        t = self.patterns.shape[2]
        a, b = self._detail_window()
        m = self._maps[self.layer, self.head, a:b, a:b]
        toks = list(self.patterns.tokens[a:b])
        note = "" if (a, b) == (0, t) else f" — window: tokens {a}–{b - 1} of {t} around the query"
        self.detail.show(
            m,
            [f"L{self.layer} H{self.head}{note}"],
            vmin=0.0,
            vmax=float(m.max()) or 1.0,
            row_labels=toks,
            col_labels=toks,
            show_labels=len(toks) <= 96,
            selected=-1,
            caption="rows: queries, columns: keys; hover for values, click a row to pick the query",
        )

    def _head_view_window(self) -> tuple[int, int]:
        t = self.patterns.shape[2]
        return (
            (0, t) if t <= self.head_view_window else _window(self.query, self.head_view_window, t)
        )

    def _draw_head_view(self) -> None:
        _, n_heads, t = self.patterns.shape
        a, b = self._head_view_window()
        w = np.ascontiguousarray(self._maps[self.layer, :, a:b, a:b])
        note = "" if (a, b) == (0, t) else f"; tokens {a}–{b - 1} of {t} (window around the query)"
        with self.head_view.hold_sync():
            self.head_view.weights = w.tobytes()
            self.head_view.shape = [n_heads, b - a]
            self.head_view.tokens = list(self.patterns.tokens[a:b])
            self.head_view.offset = a
            self.head_view.query = self.query
            self.head_view.caption = (
                f"layer {self.layer}{self._step_label()}: where each head looks from the query "
                f"(left, click a token){note}"
            )

    def _refresh_tab(self) -> None:
        if self._pat is None:
            return
        view = _TAB_VIEW.get(self.tabs.selected_index or 0)
        if view == "rollout":
            self._draw_rollout()
        elif view == "statistics":
            self._draw_statistics()
        elif view == "vit":
            self._draw_vit()

    @property
    def statistics(self) -> pd.DataFrame:
        """Head statistics (tidy) of the shown attention; computed on first use."""
        if self._stats is None:
            self._stats = attn.head_statistics(self.patterns, step=self.step)
        return self._stats

    @property
    def rollout(self) -> np.ndarray:
        """(L, T, T) attention rollout of the shown attention; computed on first use."""
        if self._rollout is None:
            self._rollout = attn.attention_rollout(self.patterns)
        return self._rollout

    def flow(self, query: int | None = None) -> np.ndarray:
        """(T,) attention flow from every input token to ``query`` (default: the selected one)."""
        q = self.query if query is None else int(query)
        if q not in self._flow:
            self._flow[q] = attn.attention_flow(self.patterns, queries=[q])[0]
        return self._flow[q]

    def _attribution_series(self, with_flow: bool) -> dict[str, np.ndarray]:
        last = self._maps[-1, :, self.query].astype(np.float64).mean(0)
        series = {"raw (last layer, head mean)": last, "rollout": self.rollout[-1, self.query]}
        if with_flow:
            series["flow"] = self.flow()
        return series

    def _draw_rollout(self, force_flow: bool = False) -> None:
        n_layers, _, t = self.patterns.shape
        method = self.method.value
        auto_flow = t <= self.flow_auto_max or self.query in self._flow
        with_flow = force_flow or auto_flow or method == "flow"
        if method == "flow" and not (auto_flow or force_flow):
            with_flow = False
            self.status.value = html.escape(
                f"flow for {t} tokens solves {t} max-flow problems per query: press "
                "'Compute flow' (rollout shown meanwhile)"
            )
        if method == "raw":
            maps = self._maps.mean(1)
        else:
            maps = self.rollout
        thumbs = attn.pool_maps(maps, 96)
        note = "" if thumbs.shape[-1] == t else f" ({thumbs.shape[-1]}² block means)"
        label = "head-mean attention" if method == "raw" else "cumulative rollout"
        self.rollout_grid.show(
            thumbs,
            [f"after L{lay}" for lay in range(n_layers)],
            vmin=0.0,
            vmax=float(thumbs.max()) or 1.0,
            columns=min(n_layers, 6),
            caption=f"{label} per layer{note}{self._step_label()}",
        )
        _show_plot(self.attribution, self._attribution_figure(with_flow))

    def _attribution_figure(self, with_flow: bool) -> go.Figure:
        return figs.token_attribution_figure(
            self._attribution_series(with_flow), self.patterns.tokens, query=self.query
        )

    def _draw_statistics(self) -> None:
        stats = self.statistics
        wide = stats.pivot_table(
            index=["layer", "head"], columns="metric", values="value", dropna=False
        ).reset_index()
        metrics = [m for m in attn.METRICS if m in wide]
        rows = [
            [int(r.layer), int(r["head"])]
            + [None if pd.isna(r[m]) else float(r[m]) for m in metrics]
            for _, r in wide.iterrows()
        ]
        self._syncing = True
        try:
            with self.table.hold_sync():
                self.table.columns = ["layer", "head", *metrics]
                self.table.rows = rows
                self.table.selected = self.layer * self.patterns.shape[1] + self.head
        finally:
            self._syncing = False
        self.x_metric.options = self.y_metric.options = metrics
        self._draw_scatter()

    def _draw_scatter(self) -> None:
        if self._stats is None:
            return
        fig = figs.head_statistics_figure(
            self._stats, self.x_metric.value, self.y_metric.value, selected=(self.layer, self.head)
        )
        _show_plot(self.scatter, fig)

    def _vit_heat(self) -> np.ndarray:
        assert self.grid_shape is not None
        return attn.vit_attention_map(
            self.patterns,
            self.grid_shape,
            query=self.query,
            n_prefix=self.n_prefix,
            method=self.vit_method.value,
            layer=-1,
        )

    def _vit_figure(self) -> go.Figure:
        assert self.image is not None
        q = self.query
        who = "CLS" if q < self.n_prefix else f"patch {q - self.n_prefix}"
        return figs.vit_overlay_figure(
            self.image, self._vit_heat(), title=f"{self.vit_method.value} attention from {who}"
        )

    def _draw_vit(self) -> None:
        if self.image is None:
            return
        _show_plot(self.vit_figure, self._vit_figure())

    # ------------------------------------------------------------ export

    def current_view(self) -> str:
        """The view shown in the selected tab (what 'current' exports)."""
        return _TAB_VIEW.get(self.tabs.selected_index or 0, "head")

    def to_figure(self, view: str | None = None) -> go.Figure:
        """A static plotly figure of ``view`` (one of :data:`VIEWS`; default: current tab)."""
        view = view or self.current_view()
        pat = self.patterns
        t = pat.shape[2]
        if view == "grid":
            thumbs = attn.pool_maps(self._maps, self.thumb_size)
            return figs.head_grid_figure(
                thumbs, caption=f"attention, {t} tokens{self._step_label()}"
            )
        if view == "head":
            a, b = self._detail_window()
            return figs.attention_map_figure(
                self._maps[self.layer, self.head, a:b, a:b],
                pat.tokens[a:b],
                offset=a,
                title=f"layer {self.layer} head {self.head}{self._step_label()}",
            )
        if view == "head_view":
            a, b = self._head_view_window()
            return figs.head_view_figure(
                self._maps[self.layer, :, self.query, a:b],
                pat.tokens[a:b],
                self.query - a,
                heads=self.head_view.heads,
                title=f"layer {self.layer}: query {self.query}",
            )
        if view == "rollout":
            return self._attribution_figure(self.query in self._flow or t <= self.flow_auto_max)
        if view == "statistics":
            return figs.head_statistics_figure(
                self.statistics,
                self.x_metric.value,
                self.y_metric.value,
                selected=(self.layer, self.head),
            )
        if view == "vit":
            if self.image is None:
                raise ValueError("no ViT view: construct the lab with image= and grid=")
            return self._vit_figure()
        raise ValueError(f"unknown view {view!r}; choose from {VIEWS}")

    def export(self, path: str | Path, view: str | None = None, **kwargs: Any) -> Path:
        """Write ``view`` to ``path`` (.png/.svg/.pdf/.html); ``view="table"`` writes the head
        statistics to .csv/.parquet/.json."""
        if view == "table":
            return export_table(self.statistics, path)
        return export(self.to_figure(view), path, **kwargs)

    def _on_export(self, _button: Any) -> None:
        choice = self.export_view.value
        try:
            if choice == "table (csv)":
                out = self.export(Path(self.export_path.value).with_suffix(".csv"), "table")
            else:
                view = None if choice == "current" else choice
                out = self.export(
                    Path(self.export_path.value).with_suffix("." + self.export_format.value), view
                )
            self.export_message.value = f"wrote <code>{html.escape(str(out))}</code>"
        except Exception as err:  # shown to the user, not swallowed silently
            self.export_message.value = (
                f"<span style='color:#b00'>export failed: {html.escape(str(err))}</span>"
            )

    # ------------------------------------------------------------ accounting

    def _widgets(self) -> list[ipw.Widget]:
        seen: dict[int, ipw.Widget] = {}
        stack: list[Any] = [self]
        while stack:
            w = stack.pop()
            if isinstance(w, ipw.Widget) and id(w) not in seen:
                seen[id(w)] = w
                stack.extend(getattr(w, "children", ()))
        return list(seen.values())

    @property
    def bytes_sent(self) -> int:
        """Bytes of widget state the page receives to show the lab now (JSON + binary buffers,
        JavaScript modules included)."""
        total = 0
        for w in self._widgets():
            state, _paths, buffers = _remove_buffers(w.get_state())
            total += len(json.dumps(state, default=str)) + sum(len(bytes(b)) for b in buffers)
        return total
