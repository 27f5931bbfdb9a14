"""Pure figure builders for attention: result arrays/frames → plotly Figures.

Token text is HTML-escaped before it reaches plotly (``<script>`` shows as text), and tokens sit
on numeric axes with tick labels, so repeated tokens stay separate rows and columns.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.export import printable_text
from widgets.theme import COLORWAY, SEQUENTIAL, apply_theme

__all__ = [
    "attention_map_figure",
    "escape_tokens",
    "head_grid_figure",
    "head_scores_over_steps_figure",
    "head_statistics_figure",
    "head_view_figure",
    "token_attribution_figure",
    "token_axis",
    "vit_overlay_figure",
]

_MAX_TICKS = 64


def escape_tokens(tokens: Sequence[Any]) -> list[str]:
    """Tokens as display-safe text for plotly: ``<`` → ``&lt;`` … (shown as typed), control
    characters as visible escapes (NUL → ``\\x00``)."""
    return [html.escape(printable_text(str(t)), quote=False) for t in tokens]


def token_axis(labels: Sequence[str], offset: int = 0) -> dict[str, Any]:
    """Axis settings that label positions ``offset, offset+1, …`` with ``labels`` (at most
    64 ticks): tokens on a numeric axis, so repeated tokens stay separate rows/columns
    (a categorical axis would merge them)."""
    n = len(labels)
    step = max(1, int(np.ceil(n / _MAX_TICKS)))
    idx = list(range(0, n, step))
    return {
        "tickmode": "array",
        "tickvals": [offset + i for i in idx],
        "ticktext": [labels[i] for i in idx],
    }


def head_grid_figure(
    maps: np.ndarray,
    *,
    caption: str = "",
    colorscale: str = SEQUENTIAL,
    value_label: str = "attention weight",
) -> go.Figure:
    """Every head at a glance: ``maps`` (L, H, r, c) as an L × H grid of small heatmaps on one
    colour scale titled ``value_label``; query rows, key columns."""
    maps = np.asarray(maps)
    n_layers, n_heads = maps.shape[:2]
    fig = make_subplots(
        rows=n_layers,
        cols=n_heads,
        horizontal_spacing=0.01,
        vertical_spacing=0.01,
        row_titles=[f"L{i}" for i in range(n_layers)],
        column_titles=[f"H{h}" for h in range(n_heads)],
    )
    zmax = float(np.nanmax(maps)) if maps.size else 1.0
    for lay in range(n_layers):
        for h in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=maps[lay, h],
                    coloraxis="coloraxis",
                    hovertemplate=f"L{lay} H{h} q %{{y}} → k %{{x}}: %{{z:.3f}}<extra></extra>",
                ),
                row=lay + 1,
                col=h + 1,
            )
    fig.update_xaxes(showticklabels=False, ticks="", showline=False)
    fig.update_yaxes(showticklabels=False, ticks="", showline=False, autorange="reversed")
    fig.update_xaxes(title_text="key", title_standoff=2, row=n_layers)
    fig.update_yaxes(title_text="query", title_standoff=2, col=1)
    fig.update_layout(
        coloraxis=dict(
            colorscale=colorscale, cmin=0, cmax=zmax, colorbar=dict(title=dict(text=value_label))
        ),
        title=html.escape(caption) if caption else None,
        width=max(420, 70 * n_heads + 160),
        height=max(300, 70 * n_layers + 110),
    )
    return apply_theme(fig)


def attention_map_figure(
    attention: np.ndarray,
    tokens: Sequence[Any],
    *,
    title: str = "",
    key_tokens: Sequence[Any] | None = None,
    offset: int = 0,
    key_offset: int | None = None,
    colorscale: str = SEQUENTIAL,
) -> go.Figure:
    """One (Q, K) map with query tokens on rows and key tokens on columns.

    ``offset``/``key_offset``: index of the first row/column in the full sequence (windows).
    Hover shows query index and token, key index and token, and the weight.
    """
    a = np.asarray(attention, dtype=np.float64)
    q_lab = escape_tokens(tokens)
    k_lab = escape_tokens(key_tokens if key_tokens is not None else tokens)
    if a.shape != (len(q_lab), len(k_lab)):
        raise ValueError(f"attention is {a.shape} but there are {len(q_lab)}×{len(k_lab)} tokens")
    ko = offset if key_offset is None else key_offset
    xs = np.arange(ko, ko + a.shape[1])
    ys = np.arange(offset, offset + a.shape[0])
    hover = None
    if a.size <= 128 * 128:
        hover = np.empty((*a.shape, 2), dtype=object)
        hover[..., 0] = np.asarray(q_lab, dtype=object)[:, None]
        hover[..., 1] = np.asarray(k_lab, dtype=object)[None, :]
    fig = go.Figure(
        go.Heatmap(
            z=a,
            x=xs,
            y=ys,
            colorscale=colorscale,
            zmin=0,
            zmax=max(float(np.nanmax(a)) if a.size else 1.0, 1e-6),
            customdata=hover,
            hovertemplate=(
                "query %{y} %{customdata[0]} → key %{x} %{customdata[1]}: %{z:.4f}<extra></extra>"
                if hover is not None
                else "query %{y} → key %{x}: %{z:.4f}<extra></extra>"
            ),
            colorbar=dict(title="attention weight"),
        )
    )
    side = int(min(900, max(360, 14 * max(a.shape) + 160)))
    fig.update_layout(
        title=html.escape(title) if title else None,
        width=side + 60,
        height=side,
        xaxis=dict(title="key", **token_axis(k_lab, ko), tickangle=-60),
        yaxis=dict(title="query", **token_axis(q_lab, offset), autorange="reversed"),
    )
    return apply_theme(fig)


def head_view_figure(
    weights: np.ndarray,
    tokens: Sequence[Any],
    query: int,
    *,
    heads: Sequence[int] | None = None,
    title: str = "",
    min_weight: float = 0.01,
) -> go.Figure:
    """Where every head of one layer looks from ``query``: lines from the query (left column) to
    each key (right column), one colour per head, opacity ∝ weight. ``weights`` (H, T)."""
    w = np.asarray(weights, dtype=np.float64)
    labels = escape_tokens(tokens)
    n_heads, t = w.shape
    if t != len(labels) or not 0 <= query < t:
        raise ValueError(f"weights are (H, {t}) but got {len(labels)} tokens and query {query}")
    heads = list(range(n_heads)) if heads is None else list(heads)
    fig = go.Figure()
    ys = -np.arange(t)
    bins = np.linspace(min_weight, 1.0, 6)
    for h in heads:
        color = COLORWAY[h % len(COLORWAY)]
        for lo, hi in itertools.pairwise(bins):
            keys = np.nonzero((w[h] >= lo) & (w[h] <= hi if hi == 1.0 else w[h] < hi))[0]
            if keys.size == 0:
                continue
            x = np.tile([0.0, 1.0, np.nan], keys.size)
            y = np.column_stack([np.full(keys.size, -query), ys[keys], np.full(keys.size, np.nan)])
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y.ravel(),
                    mode="lines",
                    line=dict(color=color, width=2),
                    opacity=float(min(1.0, 0.15 + (lo + hi) / 2)),
                    legendgroup=f"H{h}",
                    name=f"H{h}",
                    showlegend=bool(lo == bins[0]),
                    hoverinfo="skip",
                )
            )
    for x, anchor in ((0.0, "right"), (1.0, "left")):
        fig.add_trace(
            go.Scatter(
                x=np.full(t, x),
                y=ys,
                mode="text",
                text=labels,
                textposition=f"middle {anchor}",
                showlegend=False,
                hoverinfo="skip",
                textfont=dict(
                    color=["#d62728" if (i == query and x == 0) else "#222" for i in range(t)]
                ),
            )
        )
    fig.update_layout(
        title=html.escape(title) if title else None,
        xaxis=dict(visible=False, range=[-0.8, 1.8]),
        yaxis=dict(visible=False),
        height=int(max(300, 16 * t + 80)),
        width=620,
    )
    return apply_theme(fig)


def token_attribution_figure(
    series: dict[str, np.ndarray], tokens: Sequence[Any], *, query: int, title: str = ""
) -> go.Figure:
    """Grouped bars: how much each input token contributes to ``query`` under each method
    (e.g. ``{"raw (last layer)": …, "rollout": …, "flow": …}``), each (T,)."""
    labels = escape_tokens(tokens)
    xs = np.arange(len(labels))
    fig = go.Figure()
    for name, values in series.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (len(labels),):
            raise ValueError(f"series {name!r} has shape {v.shape}, expected ({len(labels)},)")
        fig.add_trace(
            go.Bar(
                x=xs,
                y=v,
                name=html.escape(name),
                customdata=labels,
                hovertemplate="%{customdata}: %{y:.4f}<extra>" + html.escape(name) + "</extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        title=html.escape(title or f"attribution to query {query} {labels[query]}"),
        xaxis=dict(title="input token", **token_axis(labels), tickangle=-60),
        yaxis=dict(title="share"),
        width=int(min(1400, max(600, 18 * len(labels) + 200))),
        height=420,
    )
    return apply_theme(fig)


def head_statistics_figure(
    stats: pd.DataFrame,
    x: str = "distance",
    y: str = "entropy",
    *,
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """Scatter of heads (tidy frame from ``head_statistics``): metric ``x`` vs ``y``, colour =
    layer; the selected (layer, head) is ringed."""
    wide = stats.pivot_table(
        index=["layer", "head"], columns="metric", values="value"
    ).reset_index()
    for m in (x, y):
        if m not in wide:
            raise ValueError(
                f"metric {m!r} is not in the statistics; have {sorted(wide.columns[2:])}"
            )
    fig = go.Figure(
        go.Scatter(
            x=wide[x],
            y=wide[y],
            mode="markers",
            marker=dict(
                color=wide["layer"],
                colorscale=SEQUENTIAL,
                size=9,
                showscale=True,
                colorbar=dict(title="layer"),
                line=dict(width=0.5, color="#333"),
            ),
            customdata=wide[["layer", "head"]].to_numpy(),
            hovertemplate="L%{customdata[0]} H%{customdata[1]}<br>"
            + x
            + " %{x:.3f}<br>"
            + y
            + " %{y:.3f}<extra></extra>",
            name="heads",
        )
    )
    if selected is not None:
        row = wide[(wide.layer == selected[0]) & (wide["head"] == selected[1])]
        fig.add_trace(
            go.Scatter(
                x=row[x],
                y=row[y],
                mode="markers",
                name="selected",
                marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(width=2, color="#d62728")),
                hoverinfo="skip",
            )
        )
    fig.update_layout(xaxis_title=x, yaxis_title=y, width=560, height=440, showlegend=False)
    return apply_theme(fig)


def head_scores_over_steps_figure(stats: pd.DataFrame, metric: str, *, top: int = 8) -> go.Figure:
    """Lines of ``metric`` over training steps, one per head (the ``top`` heads by final value)."""
    df = stats[stats.metric == metric]
    if df.empty or "step" not in df:
        raise ValueError(f"no {metric!r} rows with a step column in these statistics")
    last = df[df.step == df.step.max()].sort_values("value", ascending=False).head(top)
    fig = go.Figure()
    for _, r in last.iterrows():
        g = df[(df.layer == r.layer) & (df["head"] == r["head"])].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=g.step, y=g.value, mode="lines+markers", name=f"L{int(r.layer)} H{int(r['head'])}"
            )
        )
    fig.update_layout(
        xaxis_title="step",
        yaxis_title=metric,
        width=640,
        height=400,
        title=f"{metric} over training",
    )
    return apply_theme(fig)


def _png_data_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def vit_overlay_figure(
    image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.55, title: str = ""
) -> go.Figure:
    """``heat`` (gh, gw) — patch grid or pixels — stretched over ``image`` (H, W) grey or
    (H, W, 3) RGB. The image travels as one PNG, the heat at its own resolution."""
    img = np.asarray(image, dtype=np.float64)
    heat = np.asarray(heat, dtype=np.float64)
    if img.ndim not in (2, 3) or heat.ndim != 2:
        raise ValueError(
            f"image must be (H, W[, 3]) and heat (gh, gw); got {img.shape}, {heat.shape}"
        )
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    lo, hi = float(img.min()), float(img.max())
    rgb = ((img[..., :3] - lo) / (hi - lo if hi > lo else 1.0) * 255).round().astype(np.uint8)
    h, w = rgb.shape[:2]
    gh, gw = heat.shape
    fig = go.Figure(go.Image(source=_png_data_uri(rgb), hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=heat,
            x0=w / gw / 2 - 0.5,
            dx=w / gw,
            y0=h / gh / 2 - 0.5,
            dy=h / gh,
            opacity=alpha,
            colorscale="Inferno",
            zsmooth="best",
            colorbar=dict(title="attention"),
            hovertemplate="%{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=html.escape(title) if title else None,
        width=int(420 * w / max(h, w)) + 180,
        height=int(420 * h / max(h, w)) + 110,
    )
    fig.update_xaxes(title_text="x (pixels)", range=[-0.5, w - 0.5], showgrid=False)
    fig.update_yaxes(
        title_text="y (pixels)", range=[h - 0.5, -0.5], scaleanchor="x", showgrid=False
    )
    return apply_theme(fig)
