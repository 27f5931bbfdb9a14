"""Pure builders for the geometry lab: WebGL scatter of a projected layer (2-D or 3-D) with a
colouring, picked point and neighbours highlighted; metric curves across layers and steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.theme import COLORWAY, SEQUENTIAL, apply_theme

__all__ = [
    "CATEGORICAL_LIMIT",
    "display_subsample",
    "layer_metric_figure",
    "scatter_figure",
    "training_metric_figure",
]

CATEGORICAL_LIMIT = len(COLORWAY)  # more distinct values: coloured on a continuous scale


def display_subsample(
    n: int, max_points: int, *, seed: int = 0, keep: Sequence[int] = ()
) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of n points (seeded), always including ``keep``."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, max_points, replace=False)
    return np.union1d(idx, np.asarray(keep, dtype=np.int64))


def _is_categorical(values: np.ndarray) -> bool:
    if values.dtype.kind in "OUSb":
        return True
    return values.dtype.kind in "iu" and len(np.unique(values)) <= CATEGORICAL_LIMIT


def _natural(value: Any) -> tuple[int, Any]:
    """Sort key: numbers in numeric order before text (so class 2 comes before class 10)."""
    try:
        return 0, float(value)
    except (TypeError, ValueError):
        return 1, str(value)


def _marker_trace(
    coords: np.ndarray, rows: np.ndarray, name: str, marker: dict[str, Any], hover: Any
) -> go.Scattergl | go.Scatter3d:
    common = dict(
        mode="markers", name=name, marker=marker, customdata=rows,
        hovertemplate=hover, text=None,
    )  # fmt: skip
    if coords.shape[1] == 3:
        return go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], **common)
    return go.Scattergl(x=coords[:, 0], y=coords[:, 1], **common)


def scatter_figure(
    coords: Any,
    *,
    color: Any = None,
    color_name: str = "",
    rows: Any = None,
    hover: Sequence[str] | None = None,
    picked: int | None = None,
    neighbors: Sequence[int] = (),
    title: str = "",
    axis_names: tuple[str, ...] = ("PC1", "PC2", "PC3"),
    marker_size: float | None = None,
) -> go.Figure:
    """Scatter of ``coords`` (m, 2|3) — already subsampled for display.

    ``rows``: (m,) original point indices (in ``customdata``, so a click names the point);
    ``color``: (m,) values, categorical (one legend entry each) or continuous (colour bar);
    ``hover``: optional (m,) strings. ``picked``/``neighbors`` are original indices drawn on top.
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] not in (2, 3):
        raise ValueError(f"coords must have shape (m, 2) or (m, 3), got {xy.shape}")
    m = len(xy)
    idx = np.arange(m) if rows is None else np.asarray(rows)
    size = marker_size or (3 if m > 20_000 else 5 if m > 2_000 else 7)
    text = None if hover is None else np.asarray(hover, dtype=object)
    tip = "%{text}<extra></extra>" if text is not None else "point %{customdata}<extra></extra>"
    fig = go.Figure()
    values = None if color is None else np.asarray(color)
    categorical = values is not None and _is_categorical(values)
    if values is not None and categorical:
        for i, cat in enumerate(sorted(pd.unique(values), key=_natural)):
            sel = values == cat
            tr = _marker_trace(
                xy[sel], idx[sel], str(cat),
                dict(size=size, color=COLORWAY[i % len(COLORWAY)], opacity=0.8), tip,
            )  # fmt: skip
            tr.text = None if text is None else text[sel]
            fig.add_trace(tr)
    else:
        marker: dict[str, Any] = dict(size=size, opacity=0.8, color=COLORWAY[0])
        if values is not None:
            marker.update(
                color=values.astype(np.float64), colorscale=SEQUENTIAL, showscale=True,
                colorbar=dict(title=dict(text=color_name)),
            )  # fmt: skip
        tr = _marker_trace(xy, idx, "points", marker, tip)
        tr.text = text
        fig.add_trace(tr)
    where = {int(r): i for i, r in enumerate(idx)}
    nb = [where[int(j)] for j in neighbors if int(j) in where]
    if nb:
        fig.add_trace(
            _marker_trace(
                xy[nb], idx[nb], "neighbours",
                dict(size=size + 6, color="rgba(0,0,0,0)", line=dict(color="#000", width=2)),
                "neighbour %{customdata}<extra></extra>",
            )
        )  # fmt: skip
        fig.data[
            -1
        ].showlegend = False  # a ring is self-explanatory; keeps the class legend compact
    if picked is not None and int(picked) in where:
        p = where[int(picked)]
        fig.add_trace(
            _marker_trace(
                xy[[p]], idx[[p]], "picked",
                dict(size=size + 10, color="#D55E00", symbol="x", line=dict(width=1)),
                "picked %{customdata}<extra></extra>",
            )
        )  # fmt: skip
        fig.data[-1].showlegend = False
    fig.update_layout(
        title=title, legend=dict(itemsizing="constant", title_text=color_name if categorical else None),
        height=480, width=620, clickmode="event", uirevision="keep",
    )  # fmt: skip
    if xy.shape[1] == 3:
        fig.update_layout(
            scene=dict(xaxis_title=axis_names[0], yaxis_title=axis_names[1],
                       zaxis_title=axis_names[2])
        )  # fmt: skip
    else:
        fig.update_xaxes(title_text=axis_names[0])
        fig.update_yaxes(title_text=axis_names[1], scaleanchor="x", scaleratio=1)
    return apply_theme(fig)


def layer_metric_figure(df: pd.DataFrame, metrics: Sequence[str] | None = None) -> go.Figure:
    """Each metric's value across layers (x in the frame's layer order), one panel per metric
    with its own y axis — metrics on different scales (NC1 in 0–1, effective rank ~50) never
    share one.

    ``df``: tidy frame with columns layer, metric, value (one step).
    """
    names = (
        list(metrics)
        if metrics is not None
        else [m for m in pd.unique(df["metric"]) if m != "duplicate_fraction"]
    )
    fig = make_subplots(rows=max(len(names), 1), cols=1, shared_xaxes=True, vertical_spacing=0.04)
    for i, name in enumerate(names):
        part = df[df["metric"] == name]
        fig.add_trace(
            go.Scatter(
                x=list(part["layer"]), y=part["value"], name=name, mode="lines+markers",
                line=dict(color=COLORWAY[i % len(COLORWAY)]), showlegend=False,
            ),
            row=i + 1, col=1,
        )  # fmt: skip
        fig.update_yaxes(title_text=name, row=i + 1, col=1)
    fig.update_xaxes(title_text="layer", row=max(len(names), 1), col=1)
    fig.update_layout(
        title="geometry across layers", height=max(240, 130 * len(names) + 110), width=520
    )
    return apply_theme(fig)


def training_metric_figure(df: pd.DataFrame, metric: str) -> go.Figure:
    """``metric`` over training steps, one line per layer (df: layer, step, metric, value)."""
    part = df[df["metric"] == metric]
    fig = go.Figure()
    for i, layer in enumerate(pd.unique(part["layer"])):
        rows = part[part["layer"] == layer].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=rows["step"], y=rows["value"], name=str(layer), mode="lines+markers",
                line=dict(color=COLORWAY[i % len(COLORWAY)]),
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"{metric} over training", xaxis_title="step", yaxis_title=metric,
        height=320, width=520,
    )  # fmt: skip
    return apply_theme(fig)
