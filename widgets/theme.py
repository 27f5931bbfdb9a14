"""One publication theme for every figure: fonts, colours, margins, and print sizes.

Screen figures use the ``explorer`` plotly template (:func:`apply_theme`). For print,
:func:`print_figure` re-lays a figure out at a physical width (one or two journal columns) with
every text at a print font size; :data:`EXPORT_SIZES` names the presets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import get_colorscale

__all__ = [
    "COLORWAY",
    "DIVERGING",
    "EXPORT_SIZES",
    "PX_PER_INCH",
    "SEQUENTIAL",
    "TEMPLATE_NAME",
    "ExportSize",
    "apply_theme",
    "log_axes",
    "log_ticks",
    "print_figure",
]

TEMPLATE_NAME = "explorer"
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"
# Categorical colours: the 8 Okabe–Ito colours first (colour-blind safe, unchanged for up to
# 8 classes), then 16 more picked greedily for the largest smallest CIEDE2000 distance to every
# colour before them and to the white background (candidates 25 < L* < 82). Every pair differs
# by ΔE00 ≥ 20 (tests/unit/test_figures.py checks it).
COLORWAY = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
    "#6900A5", "#5A5A00", "#87001E", "#004B4B", "#695A69", "#00E10F", "#FFB4A5", "#968778",
    "#D2C3FF", "#879600", "#FF1E4B", "#9669FF", "#00E1E1", "#783C00", "#B41E78", "#B4D2A5",
]  # fmt: skip
PX_PER_INCH = 96  # CSS pixels; plotly sizes are CSS px, PDF/SVG pages 0.75 pt per px
_PT = PX_PER_INCH / 72  # px per point
_FONT = dict(family="DejaVu Sans, Arial, sans-serif", size=12, color="#222")


@dataclass(frozen=True)
class ExportSize:
    """A figure size for export: a physical width and the print font sizes that go with it.

    ``width_in=None`` keeps the figure as drawn on screen (its own width and fonts).
    ``max_aspect`` caps height / width when the height follows the screen figure's aspect.
    """

    name: str
    width_in: float | None
    font_pt: float = 8.0
    tick_pt: float = 7.5
    title_pt: float = 9.0
    dpi: int = 300
    max_aspect: float = 1.25

    @property
    def width_px(self) -> int | None:
        return None if self.width_in is None else round(self.width_in * PX_PER_INCH)


EXPORT_SIZES: dict[str, ExportSize] = {
    "screen": ExportSize("screen", None, dpi=192),
    "column": ExportSize("column", 3.5),
    "two-column": ExportSize("two-column", 7.0, title_pt=10.0, max_aspect=0.9),
}


def _template() -> go.layout.Template:
    axis = dict(
        showline=True,
        linecolor="#444",
        mirror=True,
        ticks="outside",
        gridcolor="#e8e8e8",
        zeroline=False,
        automargin=True,
        exponentformat="power",
        title=dict(font=dict(size=12), standoff=6),
        tickfont=dict(size=11),
    )
    colorbar = dict(thickness=12, outlinewidth=0, title=dict(side="right"))
    return go.layout.Template(
        data=dict(
            heatmap=[go.Heatmap(colorbar=colorbar, colorscale=get_colorscale(SEQUENTIAL))],
            scatter=[go.Scatter(marker=dict(colorbar=colorbar))],
            scattergl=[go.Scattergl(marker=dict(colorbar=colorbar))],
        ),
        layout=dict(
            font=_FONT,
            colorway=COLORWAY,
            paper_bgcolor="white",
            plot_bgcolor="white",
            margin=dict(l=10, r=10, t=10, b=10, autoexpand=True),
            # above the plot area, pushing the margin as far as it needs (never cut, never
            # over the data)
            title=dict(
                font=dict(size=14),
                x=0,
                xref="paper",
                xanchor="left",
                y=1,
                yref="paper",
                yanchor="bottom",
                pad=dict(b=8),
                automargin=True,
            ),
            xaxis=axis,
            yaxis=axis,
            # legends sit at the bottom of the figure, under the x-axis title: never over the
            # data, never on the title; the plot area shrinks to make room
            legend=dict(
                orientation="h",
                xref="container",
                x=0,
                xanchor="left",
                yref="container",
                y=0,
                yanchor="bottom",
                bgcolor="rgba(255,255,255,0.8)",
                borderwidth=0,
            ),
            colorscale=dict(
                sequential=get_colorscale(SEQUENTIAL), diverging=get_colorscale(DIVERGING)
            ),
            coloraxis=dict(colorbar=colorbar, colorscale=get_colorscale(SEQUENTIAL)),
        ),
    )


def apply_theme(fig: go.Figure) -> go.Figure:
    """Give ``fig`` the explorer template (in place), wrap a title too long for its width,
    and return it."""
    fig.update_layout(template=TEMPLATE_NAME)
    _wrap_title(fig, 14)
    _clear_subplot_titles(fig, 12, 14)
    return fig


def _wrap_subplot_titles(fig: go.Figure, size_px: float) -> None:
    """Wrap each subplot title (an annotation centred over a panel) to its panel's width."""
    width = (fig.layout.width or 700) * 0.8
    panels = []
    for key in _axis_keys(fig, "x"):
        x = fig.layout[key].domain or (0, 1)
        y = fig.layout["y" + key[1:]].domain or (0, 1)
        panels.append(((x[0] + x[1]) / 2, y[1], x[1] - x[0]))
    for a in fig.layout.annotations:
        if a.yref != "paper" or a.yanchor != "bottom" or not a.text or "<br>" in a.text:
            continue
        spans = [
            w
            for cx, top, w in panels
            if abs(cx - (a.x or 0)) < 0.02 and abs(top - (a.y or 0)) < 0.02
        ]
        if spans:
            per_line = max(6, int(spans[0] * width / (0.6 * size_px)))
            a.text = _SOFT_BREAK.join(_lines(a.text.replace(_SOFT_BREAK, " "), per_line))


def _clear_subplot_titles(fig: go.Figure, size_px: float, title_px: float) -> None:
    """Make room for subplot titles (annotations on top of the plot area): the figure title
    above them, and a top margin that holds both (annotations never push the margin, and a
    title's automargin does not either when every axis is hidden)."""
    _wrap_subplot_titles(fig, size_px)
    tops = [
        a for a in fig.layout.annotations
        if a.yref == "paper" and a.yanchor == "bottom" and (a.y or 0) >= 0.9
    ]  # fmt: skip
    if not tops:
        return
    lines = max(1 + (a.text or "").count("<br") for a in tops)
    room = 8 + 1.4 * size_px * lines
    text = fig.layout.title.text
    title = (1 + text.count("<br")) * 1.3 * (fig.layout.title.font.size or title_px) if text else 0
    if text:
        fig.update_layout(title_pad_b=room)
    fig.update_layout(margin_t=max(fig.layout.margin.t or 10, room + title + 6))


_SOFT_BREAK = "<br >"  # a line break plotly draws, told apart from the author's "<br>"


def _wrap_title(fig: go.Figure, size_px: float) -> None:
    """Break a title into lines that fit the figure's width (earlier soft breaks redone)."""
    title = fig.layout.title
    text = title.text if title is not None else None
    if not text:
        return
    width = (fig.layout.width or 700) - 20
    per_line = max(12, int(width / (0.6 * (title.font.size or size_px))))
    parts = re.split(r"(<br\s*/?>)", text.replace(_SOFT_BREAK, " "))  # author breaks kept
    fig.layout.title.text = "".join(
        p if p.startswith("<br") else _SOFT_BREAK.join(_lines(p, per_line)) for p in parts
    )


def _lines(text: str, per_line: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split(" "):
        if cur and len(_plain(f"{cur} {word}")) > per_line:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return [*lines, cur]


def _plain(text: str) -> str:
    return re.sub(r"<[^>]+>|&[a-z]+;", "x", text)


def log_ticks(values: Sequence[float] | Any) -> dict[str, Any]:
    """Readable ticks for a log axis over ``values``: one tick per decade (every k-th for
    wide ranges) written ``10⁻³`` when the data span two decades or more, else 1-2-5 steps
    written plainly (``0.2``, ``50``)."""
    pos = np.asarray([v for v in np.ravel(values) if np.isfinite(v) and v > 0], dtype=np.float64)
    if not pos.size:
        return {}
    lo, hi = float(pos.min()), float(pos.max())
    if math.log10(hi / lo) >= 2:
        k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        step = max(1, math.ceil((k1 - k0) / 5))
        ks = range(k0, k1 + 1, step)
        return {"tickvals": [10.0**k for k in ks], "ticktext": [_power_of_ten(k) for k in ks]}
    ks = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    vals = [m * 10.0**k for k in ks for m in (1, 2, 5) if lo / 1.5 <= m * 10.0**k <= hi * 1.5]
    return {"tickvals": vals, "ticktext": [f"{v:g}" for v in vals]}


def log_axes(fig: go.Figure, *, x: bool, y: bool, **where: int) -> None:
    """Log or linear axes (of the subplot ``row=, col=`` when given); log axes get readable
    ticks from the data drawn on them (:func:`log_ticks`)."""
    traces = list(fig.select_traces(**where))
    for letter, log, update in (("x", x, fig.update_xaxes), ("y", y, fig.update_yaxes)):
        ticks = log_ticks(np.concatenate([_numbers(getattr(t, letter, None)) for t in traces] or [np.empty(0)])) if log else {}  # fmt: skip
        update(type="log" if log else "linear", **ticks, **where)


def _numbers(values: Any) -> np.ndarray:
    try:
        return np.ravel(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):  # text coordinates
        return np.empty(0)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(k: int) -> str:
    return "1" if k == 0 else "10" if k == 1 else "10" + str(k).translate(_SUPERSCRIPT)


def print_figure(fig: go.Figure, size: ExportSize, *, height_px: int | None = None) -> go.Figure:
    """A copy of ``fig`` laid out ``size.width_in`` wide with every text at print size.

    Fonts: titles ``title_pt``, tick labels ``tick_pt``, everything else ``font_pt`` (at the
    exported size, so ≥ 7 pt in print); margins shrink and grow back only as far as labels
    need (automargin). The height keeps the screen figure's aspect, capped by ``max_aspect``.
    """
    out = go.Figure(fig)
    width = size.width_px
    if width is None:
        return out
    w0 = out.layout.width or 700
    h0 = out.layout.height or 450
    # a row of charts at least 0.45 of the width tall (image tiles with hidden axes keep theirs)
    charts = [k for k in _axis_keys(out, "y") if out.layout[k].visible is not False]
    rows = len({tuple(out.layout[k].domain or (0, 1)) for k in charts})
    least = max(0.6, 0.45 * rows) if rows else 0.0
    aspect = min(max(h0 / w0, least), size.max_aspect)
    height = height_px or round(width * aspect)
    body, tick, title = (round(p * _PT, 2) for p in (size.font_pt, size.tick_pt, size.title_pt))
    spec = out.to_plotly_json()
    _set_fonts(spec, body, tick)
    for trace in spec["data"]:
        if trace.get("texttemplate") or trace.get("text") is not None:
            trace.setdefault("textfont", {})["size"] = tick
    out = go.Figure(spec)
    has_title = bool(out.layout.title.text)
    out.update_layout(
        width=width, height=height, font_size=body, title_font_size=title,
        margin=dict(l=10, r=10, t=title * 2.2 if has_title else 10, b=10),
    )  # fmt: skip
    _wrap_title(out, title)
    _clear_subplot_titles(out, body, title)
    _thin_ticks(out, tick)
    shapes = [np.shape(t.z)[-2:] if t.type == "heatmap" else () for t in fig.data]
    _drop_crowded_cell_text(out, tick, shapes)
    return out


def _drop_crowded_cell_text(fig: go.Figure, tick_px: float, shapes: list[tuple[int, ...]]) -> None:
    """Remove values written in heatmap cells (``shapes`` (rows, cols) per trace) that became
    too small to hold them."""
    for trace, shape in zip(fig.data, shapes, strict=True):
        if trace.type != "heatmap" or not trace.texttemplate or len(shape) != 2:
            continue
        x_len = _axis_length(fig, "x" + (trace.xaxis or "x")[1:])
        y_len = _axis_length(fig, "y" + (trace.yaxis or "y")[1:])
        cell = min(x_len / max(shape[1], 1), y_len / max(shape[0], 1))  # square cells at most
        if cell < 4.5 * tick_px:  # room for '0.62' and a margin, at the plot area's size
            trace.texttemplate = None


def _axis_keys(fig: go.Figure, letter: str) -> list[str]:
    return [k for k in fig.layout.to_plotly_json() if k.startswith(f"{letter}axis")] or [
        f"{letter}axis"
    ]


def _axis_length(fig: go.Figure, name: str) -> float:
    """Approximate drawn length (px) of axis ``name`` ("x", "y2", …) at the figure's size."""
    axis = fig.layout[name.replace("x", "xaxis").replace("y", "yaxis")]
    domain = axis.domain if axis.domain is not None else (0, 1)
    size = (fig.layout.width or 700) if name[0] == "x" else (fig.layout.height or 450)
    return 0.75 * size * (domain[1] - domain[0])


def _thin_ticks(fig: go.Figure, tick_px: float) -> None:
    """Keep every k-th label of an axis whose listed tick labels would overlap."""
    for key in _axis_keys(fig, "x") + _axis_keys(fig, "y"):
        axis = fig.layout[key]
        if axis.tickvals is None or axis.ticktext is None or len(axis.tickvals) < 2:
            continue
        per_label = tick_px * (1.3 if key[0] == "y" or axis.tickangle else 0.6 * max(
            len(str(t)) for t in axis.ticktext))  # fmt: skip
        every = math.ceil(len(axis.tickvals) * per_label / _axis_length(fig, key[0] + key[5:]))
        if every > 1:
            axis.update(tickvals=axis.tickvals[::every], ticktext=axis.ticktext[::every])


def _set_fonts(node: Any, body: float, tick: float) -> None:
    """Set every explicit font size under ``node`` (plotly JSON, template included) to the
    print size: ``tick`` for tick labels, ``body`` for all other text."""
    children = node if isinstance(node, list) else node.values() if isinstance(node, dict) else ()
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("font") and isinstance(value, dict):
                value["size"] = tick if key == "tickfont" else body
    for child in children:
        if isinstance(child, dict | list):
            _set_fonts(child, body, tick)


pio.templates[TEMPLATE_NAME] = _template()
