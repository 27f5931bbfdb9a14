"""Pure builders for the claim tutorials: curves over seeds with their spread, labelled heatmap
panels on one colour scale, and a claim's per-seed effect next to its control."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.claims import ClaimResult
from widgets.theme import COLORWAY, SEQUENTIAL, apply_theme, log_axes

__all__ = ["Panel", "claim_figure", "heatmap_panels", "seed_band_figure"]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def seed_band_figure(
    x: Sequence[float] | np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log_x: bool = False,
    log_y: bool = False,
    levels: Mapping[str, float] | None = None,
    dashed: Sequence[str] = (),
) -> go.Figure:
    """One line per series — the mean over seeds — with a band from the lowest to the highest seed.

    ``series[name]`` is (n_seeds, len(x)) (a 1-D array is one seed). ``levels`` draws labelled
    horizontal reference lines (e.g. a control's value); names in ``dashed`` are drawn dashed.
    """
    xs = np.asarray(x, dtype=np.float64)
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        v = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if v.shape[1] != xs.size:
            raise ValueError(f"series {name!r} has {v.shape[1]} points per seed for {xs.size} x")
        colour = COLORWAY[i % len(COLORWAY)]
        if v.shape[0] > 1:
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([xs, xs[::-1]]),
                    y=np.concatenate([v.max(0), v.min(0)[::-1]]),
                    fill="toself", fillcolor=_rgba(colour, 0.18), line=dict(width=0),
                    hoverinfo="skip", showlegend=False, legendgroup=name,
                )
            )  # fmt: skip
        label = f"{name} ({v.shape[0]} seeds)" if v.shape[0] > 1 else name
        fig.add_trace(
            go.Scatter(
                x=xs, y=v.mean(0), name=label, legendgroup=name, mode="lines+markers",
                marker=dict(size=5),
                line=dict(color=colour, dash="dash" if name in dashed else "solid"),
            )
        )  # fmt: skip
    for j, (name, value) in enumerate((levels or {}).items()):
        fig.add_hline(
            y=value, line=dict(color="#555", dash="dot", width=1),
            annotation_text=name, annotation_position="top left" if j % 2 else "bottom right",
        )  # fmt: skip
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, width=640, height=380)
    log_axes(fig, x=log_x, y=log_y)
    return apply_theme(fig)


@dataclass(frozen=True)
class Panel:
    """One heatmap: ``z`` (rows, columns) with its tick labels and a title."""

    z: np.ndarray
    title: str
    x: Sequence[float | str] | None = None
    y: Sequence[float | str] | None = None


def heatmap_panels(
    panels: Sequence[Panel],
    *,
    xlabel: str,
    ylabel: str,
    colorbar_title: str,
    title: str = "",
    zmin: float | None = None,
    zmax: float | None = None,
    columns: int | None = None,
    colorscale: str = SEQUENTIAL,
    panel_px: int = 240,
) -> go.Figure:
    """Heatmaps side by side on one colour scale (range: all panels' data unless given).

    Every panel has axis titles; one colour bar, titled ``colorbar_title``, serves them all.
    """
    if not panels:
        raise ValueError("no panels to draw")
    zs = [np.asarray(p.z, dtype=np.float64) for p in panels]
    finite = np.concatenate([z[np.isfinite(z)] for z in zs])
    lo = float(finite.min()) if zmin is None else zmin
    hi = float(finite.max()) if zmax is None else zmax
    cols = columns or len(panels)
    rows = -(-len(panels) // cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[p.title for p in panels],
        horizontal_spacing=0.22 / cols, vertical_spacing=0.3 / rows,
    )  # fmt: skip
    for i, (p, z) in enumerate(zip(panels, zs)):
        r, c = divmod(i, cols)
        fig.add_trace(
            go.Heatmap(
                z=z, x=None if p.x is None else list(p.x), y=None if p.y is None else list(p.y),
                coloraxis="coloraxis",
                hovertemplate=f"{xlabel}: %{{x}}<br>{ylabel}: %{{y}}<br>{colorbar_title}: "
                "%{z:.3g}<extra></extra>",
            ),
            row=r + 1, col=c + 1,
        )  # fmt: skip
        fig.update_xaxes(title_text=xlabel, row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=ylabel, row=r + 1, col=c + 1)
    fig.update_layout(
        coloraxis=dict(
            colorscale=colorscale, cmin=lo, cmax=hi,
            colorbar=dict(title=dict(text=colorbar_title, side="right")),
        ),
        title=title, width=panel_px * cols + 180, height=panel_px * rows + 120,
    )  # fmt: skip
    fig.update_annotations(font_size=12)
    return apply_theme(fig)


def claim_figure(result: ClaimResult, *, effect_label: str | None = None) -> go.Figure:
    """A claim's effect on each seed (dots) next to the control's values when recorded."""
    seeds = [str(s) for s in result.seeds]
    fig = go.Figure(
        go.Scatter(
            x=seeds, y=list(result.values), mode="markers", name="effect",
            marker=dict(size=10, color=COLORWAY[0]),
        )
    )  # fmt: skip
    if result.control_values is not None:
        fig.add_trace(
            go.Scatter(
                x=seeds, y=list(result.control_values), mode="markers", name="control",
                marker=dict(size=10, symbol="x", color=COLORWAY[1]),
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"{result.claim} ({result.status}): {result.summary}",
        xaxis_title="seed", yaxis_title=effect_label or result.effect, width=560, height=340,
    )  # fmt: skip
    fig.update_xaxes(type="category")
    return apply_theme(fig)
