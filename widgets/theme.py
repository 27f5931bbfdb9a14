"""One publication theme for every figure: fonts, sizes, colour scales."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["COLORWAY", "DIVERGING", "SEQUENTIAL", "TEMPLATE_NAME", "apply_theme"]

TEMPLATE_NAME = "explorer"
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
COLORWAY = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=12, color="#222")


def _template() -> go.layout.Template:
    axis = dict(
        showline=True,
        linecolor="#444",
        mirror=True,
        ticks="outside",
        gridcolor="#e8e8e8",
        zeroline=False,
        title_font=dict(size=12),
        tickfont=dict(size=11),
    )
    return go.layout.Template(
        layout=dict(
            font=_FONT,
            colorway=COLORWAY,
            paper_bgcolor="white",
            plot_bgcolor="white",
            margin=dict(l=60, r=20, t=50, b=50),
            title=dict(font=dict(size=14), x=0.02, xanchor="left"),
            xaxis=axis,
            yaxis=axis,
            legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
            colorscale=dict(sequential=SEQUENTIAL, diverging=DIVERGING),
            coloraxis=dict(colorbar=dict(thickness=12, outlinewidth=0)),
        )
    )


def apply_theme(fig: go.Figure) -> go.Figure:
    """Give ``fig`` the explorer template (in place) and return it."""
    fig.update_layout(template=TEMPLATE_NAME)
    return fig


pio.templates[TEMPLATE_NAME] = _template()
