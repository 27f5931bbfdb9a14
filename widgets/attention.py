"""AttentionLab: every head at a glance, one head enlarged, the head view, rollout and flow,
sortable head statistics, ViT overlays — of one input or of any source's snapshots (a
TrainingLab, a Recorder, a run directory, a model on your inputs, a pretrained transformer on a
text), with the step slider of the lab protocol (:mod:`widgets._lab`).

Dense maps go to canvases as float32 buffers (:class:`~widgets.canvas.HeatmapGrid`); what is
sent is what is on screen: thumbnails are block means (≤ ``thumb_size``² per head), one head at
full resolution (a window of ``window`` tokens around the query past ``detail_max`` tokens),
the head view for one layer and a window of tokens. The status line says when a view is pooled
or windowed, and when a text was cut to the model's length.
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
from widgets._lab import Lab
from widgets.canvas import HeatmapGrid
from widgets.figures import attention as figs
from widgets.theme import COLORWAY

__all__ = ["AttentionHeadView", "AttentionLab", "HeadStatsTable"]

_STATIC = Path(__file__).parent / "static"
VIEWS = ("grid", "head", "head_view", "rollout", "statistics", "vit")
_TAB_VIEW = {0: "head", 1: "head_view", 2: "rollout", 3: "statistics", 4: "vit"}
_WRAP = {"flex_flow": "row wrap", "align_items": "flex-start"}


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


class AttentionLab(Lab):
    """Interactive attention explorer for one input, or for the snapshots of a source.

    ``attention``: anything :func:`explorer.analysis.attention.as_patterns` accepts (a capture,
    HF ``outputs.attentions``, or an array (L, H, T, T)); ``tokens``: T display strings.
    ``source``: a TrainingLab, Recorder, run directory, ``(model, inputs)`` or
    ``(model_or_hf_folder, text)`` (see :func:`explorer.train.as_source`); the step slider
    replays its snapshots. ``image`` (H, W[, 3]) and ``grid`` (gh, gw) enable the ViT overlay
    (``n_prefix`` CLS-like tokens before the patches).

    Selection: :attr:`layer`, :attr:`head`, :attr:`query`; :meth:`select` and
    :meth:`set_query` change it as clicks do.
    """

    kind = "attention"

    def __init__(
        self,
        attention: Any = None,
        tokens: Sequence[Any] | None = None,
        *,
        source: Any = None,
        image: Any = None,
        grid: tuple[int, int] | None = None,
        n_prefix: int = 1,
        title: str = "Attention",
        thumb_size: int = 48,
        detail_max: int = 256,
        window: int = 128,
        head_view_window: int = 64,
        flow_auto_max: int = 128,
        out_dir: str | Path = "exports",
        min_interval_s: float = 0.25,
    ) -> None:
        super().__init__(out_dir=out_dir, min_interval_s=min_interval_s)
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
        self._given_tokens = None if tokens is None else [str(t) for t in tokens]
        self._syncing = False

        self.title_html = ipw.HTML(f"<b>{html.escape(title)}</b>")
        self.query_select = ipw.Dropdown(
            description="query", options=[("0", 0)], layout=ipw.Layout(width="280px")
        )
        self.grid = HeatmapGrid(tile_px=64, x_title="key", y_title="query",
                                colorbar_title="attention weight")  # fmt: skip
        self.grid.add_class("xp-attention-grid")
        self.detail = HeatmapGrid(tile_px=360, columns=1, x_title="key", y_title="query",
                                  colorbar_title="attention weight")  # fmt: skip
        self.detail.add_class("xp-attention-detail")
        self.head_view = AttentionHeadView()
        self.head_view.add_class("xp-attention-headview")
        self.method = ipw.ToggleButtons(
            options=["raw", "rollout", "flow"], value="rollout", description="map",
            style={"button_width": "70px"},
        )  # fmt: skip
        self.flow_button = ipw.Button(
            description="Compute flow", icon="random",
            tooltip="max-flow from every input token to the query",
        )  # fmt: skip
        self.rollout_grid = HeatmapGrid(tile_px=120, x_title="key", y_title="query",
                                        colorbar_title="attention weight")  # fmt: skip
        self.rollout_grid.add_class("xp-attention-rollout")
        self.attribution = ipw.Output()
        self.table = HeadStatsTable(sort_by="entropy")
        self.table.add_class("xp-attention-table")
        self.x_metric = ipw.Dropdown(options=list(attn.METRICS), value="distance", description="x")
        self.y_metric = ipw.Dropdown(options=list(attn.METRICS), value="entropy", description="y")
        self.scatter = ipw.Output()
        self.scatter.add_class("xp-attention-scatter")
        self.vit_method = ipw.ToggleButtons(
            options=["raw", "rollout"], value="raw", description="ViT map"
        )
        self.vit_figure = ipw.Output()

        wrap = ipw.Layout(**_WRAP)
        heads_tab = ipw.HBox([self.grid, self.detail], layout=wrap)
        rollout_tab = ipw.VBox(
            [ipw.HBox([self.method, self.flow_button], layout=ipw.Layout(**_WRAP)),
             self.rollout_grid, self.attribution]
        )  # fmt: skip
        stats_tab = ipw.HBox(
            [self.table,
             ipw.VBox([ipw.HBox([self.x_metric, self.y_metric], layout=ipw.Layout(**_WRAP)), self.scatter])],
            layout=ipw.Layout(**_WRAP),
        )  # fmt: skip
        tabs = [heads_tab, self.head_view, rollout_tab, stats_tab]
        titles = ["Heads", "Head view", "Rollout / flow", "Statistics"]
        if self.image is not None:
            tabs.append(ipw.VBox([self.vit_method, self.vit_figure]))
            titles.append("ViT")
        self.tabs = ipw.Tab(children=tabs, titles=titles)
        self._set_body(
            ipw.HBox([self.title_html, self.query_select], layout=ipw.Layout(**_WRAP)), self.tabs
        )

        self.grid.observe(self._on_grid_select, "selected")
        self.grid.observe(self._on_grid_cell, "clicked_cell")
        self.detail.observe(self._on_detail_cell, "clicked_cell")
        self.head_view.observe(lambda c: self.set_query(c.new), "query")
        self.table.observe(self._on_table_select, "selected")
        self.query_select.observe(lambda c: self.set_query(c.new), "value")
        self.tabs.observe(lambda _c: self._guard(self._refresh_tab), "selected_index")
        self.method.observe(lambda _c: self._guard(self._draw_rollout), "value")
        self.flow_button.on_click(
            lambda _b: self._guard(lambda: self._draw_rollout(force_flow=True))
        )
        self.x_metric.observe(lambda _c: self._guard(self._draw_scatter), "value")
        self.y_metric.observe(lambda _c: self._guard(self._draw_scatter), "value")
        self.vit_method.observe(lambda _c: self._guard(self._draw_vit), "value")
        if attention is not None:
            self.set_attention(attention, tokens)
        if source is not None:
            self.follow(source)
        self._refresh_export_views()

    # ------------------------------------------------------------ data in

    def set_attention(
        self, attention: Any, tokens: Sequence[Any] | None = None, *, step: int | None = None
    ) -> None:
        """Show new attention (same or new shape); keeps the selection where it still fits."""
        pat = attn.as_patterns(attention, tokens)
        with self._lock:
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
            self._refresh_export_views()

    def _on_follow(self, source: Any) -> None:
        self._pat, self.step = None, None

    def _snapshot_tokens(self, t: int) -> list[str] | None:
        """Display strings for ``t`` positions: given tokens, the source's (a text's), or the
        source's probe sequence through its task's vocabulary."""
        if self._given_tokens is not None:
            return self._given_tokens
        src = self._source
        tokens = getattr(src, "tokens", None)
        if tokens is not None and len(tokens) == t:
            return [str(x) for x in tokens]
        probe = getattr(src, "probe", None)
        inputs = getattr(probe, "inputs", None)
        if inputs is not None and getattr(inputs, "ndim", 0) == 2 and inputs.shape[1] == t:
            vocab = (getattr(getattr(src, "task", None), "meta", None) or {}).get("vocab") or []
            ids = [int(v) for v in inputs[0]]
            return [str(vocab[i]) if 0 <= i < len(vocab) else str(i) for i in ids]
        return None

    def _show_snapshot(self, snap: Any) -> None:
        if not snap.attention:
            raise ValueError(f"the snapshot at step {snap.step} holds no attention patterns")
        first = next(iter(snap.attention.values()))
        self.set_attention(
            snap.attention, self._snapshot_tokens(int(first.shape[-1])), step=int(snap.step)
        )

    # ------------------------------------------------------------ selection

    @property
    def patterns(self) -> attn.AttentionPatterns:
        if self._pat is None:
            raise RuntimeError("no attention shown yet: give attention= or a source")
        return self._pat

    @property
    def selection(self) -> dict[str, Any]:
        return {"layer": self.layer, "head": self.head, "query": self.query, "step": self.step,
                "x_metric": self.x_metric.value, "y_metric": self.y_metric.value}  # fmt: skip

    @property
    def panels(self) -> dict[str, ipw.Widget]:
        out = {"grid": self.grid, "head": self.detail, "head_view": self.head_view,
               "rollout": self.rollout_grid, "statistics": self.table}  # fmt: skip
        if self.image is not None:
            out["vit"] = self.vit_figure
        return out

    def select(self, layer: int, head: int) -> None:
        """Enlarge head ``head`` of layer ``layer`` (as a click on its thumbnail does)."""
        n_layers, n_heads, _ = self.patterns.shape
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"(layer, head)=({layer}, {head}) is outside {n_layers}×{n_heads}")
        with self._lock:
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
        with self._lock:
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
            self._guard(lambda: self.select(*divmod(int(change.new), self.patterns.shape[1])))

    def _on_grid_cell(self, change: Any) -> None:
        if self._syncing or not change.new or self._pat is None:
            return
        t = self.patterns.shape[2]
        rows = self.grid.shape[1] or t
        self._guard(lambda: self.set_query(min(t - 1, int((change.new[0] + 0.5) * t / rows))))

    def _on_detail_cell(self, change: Any) -> None:
        if change.new and self._pat is not None:
            self._guard(lambda: self.set_query(self._detail_window()[0] + int(change.new[0])))

    def _on_table_select(self, change: Any) -> None:
        if not self._syncing and change.new >= 0 and self._pat is not None:
            self._guard(lambda: self.select(*divmod(int(change.new), self.patterns.shape[1])))

    # ------------------------------------------------------------ drawing

    def _step_note(self) -> str:
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
            tile_px=int(np.clip(720 // n_heads - 10, 24, 64)),  # a row of heads fits the page
            selected=self.layer * n_heads + self.head,
            caption=f"{n_layers} layers × {n_heads} heads, {t} tokens{self._step_note()}{note}",
        )
        self._set_status(f"{t} tokens{self._step_note()}{note}")

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
                f"layer {self.layer}{self._step_note()}: where each head looks from the query "
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
            with self.busy("computing head statistics…"):
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
            with self.busy(f"computing attention flow to token {q}…"):
                self._flow[q] = attn.attention_flow(self.patterns, queries=[q])[0]
        return self._flow[q]

    def _with_flow(self) -> bool:
        return self.query in self._flow or self.patterns.shape[2] <= self.flow_auto_max

    def _attribution_series(self, with_flow: bool) -> dict[str, np.ndarray]:
        last = self._maps[-1, :, self.query].astype(np.float64).mean(0)
        series = {"raw (last layer, head mean)": last, "rollout": self.rollout[-1, self.query]}
        if with_flow:
            series["flow"] = self.flow()
        return series

    def _draw_rollout(self, force_flow: bool = False) -> None:
        n_layers, _, t = self.patterns.shape
        method = self.method.value
        with_flow = force_flow or self._with_flow() or method == "flow"
        if method == "flow" and not (self._with_flow() or force_flow):
            with_flow = False
            self._set_status(
                f"flow for {t} tokens solves {t} max-flow problems per query: press "
                "'Compute flow' (rollout shown meanwhile)"
            )
        maps = self._maps.mean(1) if method == "raw" else self.rollout
        thumbs = attn.pool_maps(maps, 96)
        note = "" if thumbs.shape[-1] == t else f" ({thumbs.shape[-1]}² block means)"
        label = "head-mean attention" if method == "raw" else "cumulative rollout"
        self.rollout_grid.show(
            thumbs,
            [f"after L{lay}" for lay in range(n_layers)],
            vmin=0.0,
            vmax=float(thumbs.max()) or 1.0,
            columns=min(n_layers, 6),
            caption=f"{label} per layer{note}{self._step_note()}",
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
            # keep the chosen axes (two different metrics: never entropy against itself)
            x, y = self.x_metric.value, self.y_metric.value
            self.x_metric.options = self.y_metric.options = metrics
            x = x if x in metrics else metrics[0]
            y = y if y in metrics and y != x else next(m for m in metrics if m != x)
            self.x_metric.value, self.y_metric.value = x, y
        finally:
            self._syncing = False
        self._draw_scatter()

    def _draw_scatter(self) -> None:
        if self._stats is None or self._syncing:
            return
        _show_plot(self.scatter, self._figure("statistics"))

    def _vit_heat(self) -> np.ndarray:
        assert self.grid_shape is not None
        return attn.vit_attention_map(
            self.patterns, self.grid_shape, query=self.query, n_prefix=self.n_prefix,
            method=self.vit_method.value, layer=-1,
        )  # fmt: skip

    def _vit_figure(self) -> go.Figure:
        assert self.image is not None
        q = self.query
        who = "CLS" if q < self.n_prefix else f"patch {q - self.n_prefix}"
        return figs.vit_overlay_figure(
            self.image, self._vit_heat(), title=f"{self.vit_method.value} attention from {who}"
        )

    def _draw_vit(self) -> None:
        if self.image is not None:
            _show_plot(self.vit_figure, self._vit_figure())

    # ------------------------------------------------------------ protocol

    def _available_views(self) -> list[str]:
        if self._pat is None:
            return []
        return [v for v in VIEWS if v != "vit" or self.image is not None]

    def _current_view(self) -> str:
        """The view shown in the selected tab."""
        return _TAB_VIEW.get(self.tabs.selected_index or 0, "head")

    def _figure(self, view: str) -> go.Figure:
        pat = self.patterns
        t = pat.shape[2]
        if view == "grid":
            thumbs = attn.pool_maps(self._maps, self.thumb_size)
            return figs.head_grid_figure(
                thumbs, caption=f"attention, {t} tokens{self._step_note()}"
            )
        if view == "head":
            a, b = self._detail_window()
            return figs.attention_map_figure(
                self._maps[self.layer, self.head, a:b, a:b], pat.tokens[a:b], offset=a,
                title=f"layer {self.layer} head {self.head}{self._step_note()}",
            )  # fmt: skip
        if view == "head_view":
            a, b = self._head_view_window()
            return figs.head_view_figure(
                self._maps[self.layer, :, self.query, a:b], pat.tokens[a:b], self.query - a,
                heads=self.head_view.heads, title=f"layer {self.layer}: query {self.query}",
            )  # fmt: skip
        if view == "rollout":
            return self._attribution_figure(self._with_flow())
        if view == "statistics":
            return figs.head_statistics_figure(
                self.statistics, self.x_metric.value, self.y_metric.value,
                selected=(self.layer, self.head),
            )  # fmt: skip
        return self._vit_figure()

    def _frame(self, view: str) -> pd.DataFrame:
        pat = self.patterns
        toks = np.asarray(pat.tokens, dtype=object)
        if view == "grid":
            thumbs = attn.pool_maps(self._maps, self.thumb_size)  # (L, H, r, r) block means
            idx = np.indices(thumbs.shape).reshape(4, -1)
            return pd.DataFrame({"layer": idx[0], "head": idx[1], "query_block": idx[2],
                                 "key_block": idx[3], "weight": thumbs.ravel()})  # fmt: skip
        if view == "head":
            a, b = self._detail_window()
            m = self._maps[self.layer, self.head, a:b, a:b]
            q, k = np.indices(m.shape).reshape(2, -1) + a
            return pd.DataFrame({"layer": self.layer, "head": self.head, "query": q, "key": k,
                                 "query_token": toks[q], "key_token": toks[k],
                                 "weight": m.ravel()})  # fmt: skip
        if view == "head_view":
            a, b = self._head_view_window()
            m = self._maps[self.layer, :, self.query, a:b]  # (H, keys)
            h, k = np.indices(m.shape).reshape(2, -1)
            return pd.DataFrame({"layer": self.layer, "head": h, "query": self.query, "key": k + a,
                                 "key_token": toks[k + a], "weight": m.ravel()})  # fmt: skip
        if view == "rollout":
            series = self._attribution_series(self._with_flow())
            return pd.concat(
                [pd.DataFrame({"query": self.query, "token": np.arange(len(v)), "token_text": toks,
                               "series": name, "value": v}) for name, v in series.items()],
                ignore_index=True,
            )  # fmt: skip
        if view == "statistics":
            return self.statistics
        heat = self._vit_heat()
        r, c = np.indices(heat.shape).reshape(2, -1)
        return pd.DataFrame({"query": self.query, "patch_row": r, "patch_col": c,
                             "value": heat.ravel()})  # fmt: skip

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
