"""Pure builders for the alignment lab: similarity heatmaps with unmistakable axes, the
Procrustes-aligned pair view, and a metric-over-training curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.theme import COLORWAY, SEQUENTIAL, apply_theme

__all__ = ["HeatmapPanel", "aligned_pair_figure", "metric_curve_figure", "similarity_heatmaps"]


@dataclass(frozen=True)
class HeatmapPanel:
    """One layer × layer matrix: rows are ``row_model``'s layers, columns ``col_model``'s."""

    matrix: np.ndarray
    row_labels: Sequence[str]
    col_labels: Sequence[str]
    row_model: str
    col_model: str

    @property
    def title(self) -> str:
        if self.row_model == self.col_model:
            return f"{self.row_model} vs itself"
        return f"{self.row_model} vs {self.col_model}"  # rows vs columns, as the axes say


def similarity_heatmaps(
    panels: Sequence[HeatmapPanel],
    *,
    metric_label: str = "linear CKA",
    zmin: float = 0.0,
    zmax: float = 1.0,
    columns: int | None = None,
    annotate: bool | None = None,
    title: str | None = None,
    selected: tuple[int, int] | None = None,
    axis_label: str = "layer",
) -> go.Figure:
    """Side-by-side layer × layer heatmaps sharing one colour scale titled ``metric_label``.

    Each panel's y axis is titled with its row model and the x axis with its column model
    (followed by ``axis_label``: what the rows and columns are, e.g. "seed");
    layer 0 is at the top-left. ``annotate`` writes values in the cells (default: ≤ 12 × 12).
    ``selected=(i, j)`` outlines row layer i × column layer j (the clicked cell) in every panel.
    """
    if not panels:
        raise ValueError("no panels to draw")
    cols = columns or len(panels)
    rows = int(np.ceil(len(panels) / cols))
    # a panel shares its row's y axis labels when it has the same row model and layers
    shares_y = [
        i % cols > 0
        and (panels[i].row_model, list(panels[i].row_labels))
        == (panels[i - i % cols].row_model, list(panels[i - i % cols].row_labels))
        for i in range(len(panels))
    ]
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[p.title for p in panels],
        horizontal_spacing=0.04 if all(shares_y[1:cols]) else 0.12, vertical_spacing=0.18,
    )  # fmt: skip
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        mat = np.asarray(p.matrix, dtype=np.float64)
        show_text = annotate if annotate is not None else max(mat.shape) <= 12
        rl, cl = list(map(str, p.row_labels)), list(map(str, p.col_labels))
        fig.add_trace(
            go.Heatmap(
                z=mat, x=np.arange(mat.shape[1]), y=np.arange(mat.shape[0]), coloraxis="coloraxis",
                customdata=np.array([[(a, b) for b in cl] for a in rl], dtype=object),
                text=np.round(mat, 2) if show_text else None,
                texttemplate="%{text}" if show_text else None,
                hovertemplate=(
                    f"{p.row_model}: %{{customdata[0]}}<br>{p.col_model}: %{{customdata[1]}}<br>"
                    f"{metric_label} = %{{z:.4f}}<extra></extra>"
                ),
            ),
            row=r + 1, col=c + 1,
        )  # fmt: skip
        fig.update_yaxes(
            title_text=None if shares_y[i] else f"{p.row_model} {axis_label}".strip(),
            autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", constrain="domain",
            tickmode="array", tickvals=list(range(len(rl))), ticktext=rl,
            showticklabels=not shares_y[i],
            row=r + 1, col=c + 1,
        )  # fmt: skip
        fig.update_xaxes(
            title_text=f"{p.col_model} {axis_label}".strip(), constrain="domain", tickmode="array",
            tickvals=list(range(len(cl))), ticktext=cl, tickangle=-45, row=r + 1, col=c + 1,
        )  # fmt: skip
        if selected is not None and selected[0] < mat.shape[0] and selected[1] < mat.shape[1]:
            si, sj = selected
            fig.add_shape(
                type="rect", x0=sj - 0.5, x1=sj + 0.5, y0=si - 0.5, y1=si + 0.5,
                line=dict(color="#d62728", width=3), row=r + 1, col=c + 1,
            )  # fmt: skip
    side = 340
    fig.update_layout(
        coloraxis=dict(
            colorscale=SEQUENTIAL, cmin=zmin, cmax=zmax,
            colorbar=dict(title=dict(text=metric_label)),
        ),
        width=side * cols + 200, height=side * rows + 130,
        title=title or metric_label,
    )  # fmt: skip
    fig.update_annotations(font_size=12)
    return apply_theme(fig)


def aligned_pair_figure(
    px: np.ndarray,
    py: np.ndarray,
    *,
    names: tuple[str, str] = ("A", "B"),
    labels: np.ndarray | None = None,
    title: str = "",
    max_points: int = 2000,
) -> go.Figure:
    """Two layers' 2-D projections after Procrustes alignment, overlaid (circles vs crosses).

    ``px``, ``py``: (n, 2) from :func:`explorer.analysis.alignment.aligned_projection`;
    ``labels`` colour the points by class. Faint segments join each sample's two positions.
    The legend names the two layers by marker shape (in grey) and the classes by colour.
    """
    n = min(len(px), max_points)
    idx = np.linspace(0, len(px) - 1, n).astype(int) if len(px) > max_points else np.arange(len(px))
    a, b = np.asarray(px)[idx], np.asarray(py)[idx]
    fig = go.Figure()
    seg_x = np.column_stack([a[:, 0], b[:, 0], np.full(n, np.nan)]).ravel()
    seg_y = np.column_stack([a[:, 1], b[:, 1], np.full(n, np.nan)]).ravel()
    fig.add_trace(
        go.Scattergl(x=seg_x, y=seg_y, mode="lines", line=dict(color="rgba(0,0,0,0.12)", width=1),
                     hoverinfo="skip", showlegend=False)
    )  # fmt: skip
    colors: str | list[str] = COLORWAY[0]
    classes: list[str] = []
    if labels is not None:
        lab = np.asarray(labels)[idx]
        uniq, codes = np.unique(lab, return_inverse=True)
        colors = [COLORWAY[int(k) % len(COLORWAY)] for k in codes]
        classes = [str(u) for u in uniq]
    for pts, name, symbol in ((a, names[0], "circle"), (b, names[1], "x")):
        fig.add_trace(
            go.Scattergl(
                x=pts[:, 0], y=pts[:, 1], mode="markers", name=name, showlegend=False,
                marker=dict(size=6, symbol=symbol, color=colors, opacity=0.75),
            )
        )  # fmt: skip
    # legend entries: shape = layer (grey), colour = class
    legend = [(name, symbol, "#555") for name, symbol in ((names[0], "circle"), (names[1], "x"))]
    legend += [(f"class {c}", "square", COLORWAY[k % len(COLORWAY)]) for k, c in enumerate(classes)]
    for name, symbol, color in legend:
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", name=name,
                       marker=dict(size=8, symbol=symbol, color=color))
        )  # fmt: skip
    fig.update_layout(
        title=title, xaxis_title="PC 1 (of row layer)", yaxis_title="PC 2 (of row layer)",
        width=480, height=460,
    )  # fmt: skip
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return apply_theme(fig)


def metric_curve_figure(
    frame: pd.DataFrame, *, x: str = "step", color: str = "layer_a", title: str = ""
) -> go.Figure:
    """Lines of ``value`` against ``x`` (e.g. step), one per ``color`` group (tidy input)."""
    missing = {x, color, "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    fig = go.Figure()
    for i, (key, grp) in enumerate(frame.groupby(color, sort=False)):
        grp = grp.sort_values(x)
        fig.add_trace(
            go.Scatter(x=grp[x], y=grp["value"], mode="lines+markers", name=str(key),
                       line=dict(color=COLORWAY[i % len(COLORWAY)]))
        )  # fmt: skip
    metric = ", ".join(map(str, frame["metric"].unique())) if "metric" in frame else "value"
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=metric, width=560, height=380)
    return apply_theme(fig)
