"""Pure builders for sweeps: a metric against a hyper-parameter with the spread over seeds
(one clickable marker per trial), seed × seed and config × config similarity heatmaps, seed
disagreement against error, and a relation between two per-trial measures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from widgets.figures.alignment import HeatmapPanel, similarity_heatmaps
from widgets.theme import COLORWAY, apply_theme, log_ticks

__all__ = [
    "config_cka_figure",
    "disagreement_figure",
    "metric_figure",
    "relation_figure",
    "seed_cka_figure",
]


def _log_axis(values: Sequence[float]) -> bool:
    """Log scale for a positive numeric axis spanning three octaves or more (σ 1…64,
    learning rates 1e-3…3e-2); widths 8…32 stay linear."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    if v.isna().any() or (v <= 0).any() or len(v) < 2:
        return False
    return bool(v.max() / v.min() >= 8)


def metric_figure(
    final: pd.DataFrame,
    x: str,
    *,
    metric: str = "value",
    group: str | None = None,
    selected: str | None = None,
    title: str = "",
    log_x: bool | None = None,
) -> go.Figure:
    """``final`` (one row per trial: ``trial_id``, ``x``, ``seed``, ``value``; as
    :meth:`SweepResult.final` gives) → one marker per trial (click: ``customdata`` is its
    trial id) and, per value of ``x``, the mean over seeds with a ±1 std band; one line per
    value of ``group`` (a second swept name) if given. ``selected`` (a trial id) is ringed."""
    missing = {"trial_id", x, "seed", "value"} - set(final.columns)
    if missing:
        raise ValueError(f"final lacks columns {sorted(missing)}")
    fig = go.Figure()
    groups = [(None, final)] if group is None else list(final.groupby(group, sort=True))
    numeric = pd.api.types.is_numeric_dtype(final[x])
    for i, (key, part) in enumerate(groups):
        color = COLORWAY[i % len(COLORWAY)]
        name = "mean ± std over seeds" if key is None else f"{group}={key}"
        stats = part.groupby(x, sort=True)["value"].agg(["mean", "std", "count"]).reset_index()
        xs = stats[x] if numeric else stats[x].astype(str)
        std = stats["std"].fillna(0.0)
        fig.add_trace(go.Scatter(
            x=list(xs) + list(xs)[::-1], y=list(stats["mean"] + std) + list(stats["mean"] - std)[::-1],
            fill="toself", fillcolor=color, opacity=0.15, line=dict(width=0), hoverinfo="skip",
            showlegend=False, name=f"{name} band",
        ))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=xs, y=stats["mean"], mode="lines", line=dict(color=color, width=2), name=name,
            hovertemplate=f"{x}=%{{x}}<br>mean {metric} %{{y:.4g}}<extra></extra>",
        ))  # fmt: skip
        px = part[x] if numeric else part[x].astype(str)
        fig.add_trace(go.Scatter(
            x=px, y=part["value"], mode="markers", name=f"{name}: trials", showlegend=False,
            marker=dict(color=color, size=8, line=dict(color="white", width=1)),
            customdata=np.stack([part["trial_id"], part["seed"]], axis=1),
            hovertemplate=(f"{x}=%{{x}}, seed %{{customdata[1]}}<br>{metric} %{{y:.4g}}"
                           "<br>click to select this trial<extra></extra>"),
        ))  # fmt: skip
    if selected is not None and (final["trial_id"] == selected).any():
        row = final[final["trial_id"] == selected].iloc[0]
        fig.add_trace(go.Scatter(
            x=[row[x] if numeric else str(row[x])], y=[row["value"]], mode="markers",
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#d62728", width=3)),
            name="selected trial", hoverinfo="skip",
        ))  # fmt: skip
    log = _log_axis(final[x]) if log_x is None else log_x
    xaxis: dict[str, object] = dict(title_text=x)
    if log and numeric:
        xaxis.update(type="log", **log_ticks(final[x]))
    fig.update_layout(title=title, width=620, height=420, xaxis=xaxis, yaxis_title=metric)
    return apply_theme(fig)


def seed_cka_figure(frame: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Seed × seed heatmaps, one per config (``frame`` from
    :func:`explorer.analysis.sweep.seed_cka`), sharing one colour scale."""
    keys = [c for c in frame.columns if c not in ("seed_a", "seed_b", "metric", "value")]
    groups = [((), frame)] if not keys else list(frame.groupby(keys, sort=True))
    panels, labels = [], []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        labels.append(", ".join(f"{k}={v}" for k, v in zip(keys, key)) or "all")
        mat = part.pivot(index="seed_a", columns="seed_b", values="value")
        seeds = [str(s) for s in mat.index]
        # axes titled "seed" alone: panels of a row with the same seeds share their y labels
        panels.append(HeatmapPanel(mat.to_numpy(), seeds, seeds, "", ""))
    metric = str(frame["metric"].iloc[0]) if len(frame) else "linear CKA"
    fig = similarity_heatmaps(
        panels, metric_label=metric, axis_label="seed", columns=min(len(panels), 2),
        title=title or f"{metric}: seed × seed",
    )  # fmt: skip
    for ann, label in zip(fig.layout.annotations, labels):  # "width=8", not "… vs itself"
        ann.text = label
    cols = min(len(panels), 2)
    for i in range(len(panels) - cols):  # "seed" under the bottom panels only: room for titles
        fig.update_xaxes(title_text=None, row=i // cols + 1, col=i % cols + 1)
    return fig


def config_cka_figure(frame: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Config × config heatmap, averaged over the seeds in ``frame`` (from
    :func:`explorer.analysis.sweep.config_cka`)."""
    mean = frame.groupby(["config_a", "config_b"], sort=False)["value"].mean().unstack()
    order = list(dict.fromkeys(frame["config_a"]))
    mean = mean.loc[order, order]
    n = frame["seed"].nunique()
    metric = str(frame["metric"].iloc[0]) if len(frame) else "linear CKA"
    panel = HeatmapPanel(mean.to_numpy(), order, order, "config", "config")
    fig = similarity_heatmaps(
        [panel], metric_label=metric, axis_label="",
        title=title or f"{metric}: config × config (mean over {n} seed{'s' * (n != 1)})",
    )  # fmt: skip
    fig.layout.annotations = []  # one panel: the figure title says it all
    return fig


def disagreement_figure(frame: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Mean error of the test examples at each level of seed disagreement, one line per
    config (``frame`` from :func:`explorer.analysis.sweep.seed_disagreement`); the
    marker size is the number of examples at that level."""
    keys = [c for c in frame.columns if c not in ("example", "metric", "value")]
    wide = frame.pivot_table(index=[*keys, "example"], columns="metric", values="value")
    wide = wide.reset_index()
    wide["level"] = wide["disagreement"].round(3)
    fig = go.Figure()
    groups = [((), wide)] if not keys else list(wide.groupby(keys, sort=True))
    for i, (key, part) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key)) or "all"
        stats = part.groupby("level")["error"].agg(["mean", "count"]).reset_index()
        size = 6 + 14 * np.sqrt(stats["count"] / stats["count"].max())
        fig.add_trace(go.Scatter(
            x=stats["level"], y=stats["mean"], mode="lines+markers", name=label,
            line=dict(color=COLORWAY[i % len(COLORWAY)]), marker=dict(size=size),
            customdata=stats["count"],
            hovertemplate="disagreement %{x:.2f}<br>error %{y:.3f}<br>%{customdata} examples"
                          "<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(
        title=title or "Seeds disagree where they err (R5)", width=560, height=420,
        xaxis=dict(title_text="seed disagreement (fraction of seed pairs)", range=[-0.05, 1.05]),
        yaxis=dict(title_text="error (fraction of seeds wrong)", range=[-0.05, 1.05]),
    )  # fmt: skip
    return apply_theme(fig)


def relation_figure(
    frame: pd.DataFrame, x: str, y: str, *, color: str, symbol: str | None = None,
    title: str = "",
) -> go.Figure:  # fmt: skip
    """One marker per row of ``frame``: ``y`` against ``x``, coloured by ``color`` (a legend
    entry per value) and shaped by ``symbol`` (e.g. the seed)."""
    missing = {x, y, color} - set(frame.columns) - ({symbol} if symbol else set())
    if missing or (symbol and symbol not in frame.columns):
        raise ValueError(
            f"frame lacks columns {sorted(missing | ({symbol} - set(frame.columns) if symbol else set()))}"
        )
    shapes = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "pentagon"]
    fig = go.Figure()
    for i, (key, part) in enumerate(frame.groupby(color, sort=True)):
        marks = [0] * len(part) if symbol is None else [
            sorted(frame[symbol].unique()).index(s) % len(shapes) for s in part[symbol]
        ]  # fmt: skip
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers", name=f"{color}={key}",
            marker=dict(color=COLORWAY[i % len(COLORWAY)], size=10,
                        symbol=[shapes[m] for m in marks], line=dict(color="white", width=1)),
            text=None if symbol is None else [f"{symbol} {s}" for s in part[symbol]],
            hovertemplate=f"{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<br>%{{text}}<extra>{color}={key}</extra>",
        ))  # fmt: skip
    fig.update_layout(title=title, width=600, height=440, xaxis_title=x, yaxis_title=y)
    return apply_theme(fig)
