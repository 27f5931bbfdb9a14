"""Publication invariants of every public figure builder, at screen and print sizes.

The builders are found by inspecting ``widgets.figures`` (a new one is covered at once, and
fails here until it has a case in ``widgets.figures._gallery``); each draws small real results.
Checked on every figure: each heatmap shows a colour bar with a title; every axis with data
has a title (small multiples: on the outer axis of its row or column); repeated tokens keep
their own rows/columns; the legend sits outside the plot area; the title fits the width; at
print sizes no text is under 7 pt.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from skimage.color import deltaE_ciede2000, rgb2lab

from widgets.export import figure_html
from widgets.figures._gallery import TOKENS, builders, cases
from widgets.theme import COLORWAY, EXPORT_SIZES, print_figure

PX_PER_PT = 96 / 72


@pytest.fixture(scope="module")
def figures() -> dict[str, go.Figure]:
    return {name: case() for name, case in cases().items()}


def test_every_builder_has_a_case() -> None:
    found, drawn = set(builders()), set(cases())
    assert len(found) >= 20
    assert found == drawn, f"builders without a case: {found - drawn}; stale: {drawn - found}"


def _template(fig: go.Figure, *path: str) -> Any:
    node: Any = fig.layout.template.layout
    for key in path:
        node = node[key] if node is not None else None
    return node


def _layout(fig: go.Figure, *path: str) -> Any:
    """A layout property as drawn: the figure's own value, else the template's."""
    node: Any = fig.layout
    for key in path:
        node = node[key] if node is not None else None
    return node if node is not None else _template(fig, *path)


def _colour_bar_problems(fig: go.Figure) -> list[str]:
    out = []
    for i, t in enumerate(fig.data):
        if t.type != "heatmap":
            continue
        if t.coloraxis:
            axis = fig.layout[t.coloraxis]
            shown, title = axis.showscale is not False, axis.colorbar.title.text
        else:
            shown, title = t.showscale is not False, t.colorbar.title.text
        if not shown or not title:
            out.append(f"heatmap {i} has no titled colour bar (shown={shown}, title={title!r})")
    return out


def _axis_problems(fig: go.Figure) -> list[str]:
    """Every visible axis carrying data has a title, or shares one with its row/column."""
    used: dict[str, set[str]] = {"x": set(), "y": set()}
    for t in fig.data:
        if t.type in ("scatter3d", "image") or (
            getattr(t, "x", None) is None and t.type != "heatmap"
        ):
            continue
        if t.type == "scatter" and t.x is not None and all(v is None for v in t.x):
            continue  # a legend-only entry
        used["x"].add("xaxis" + (t.xaxis or "x")[1:])
        used["y"].add("yaxis" + (t.yaxis or "y")[1:])
    out = []
    for letter, names in used.items():
        titled = {n: bool(fig.layout[n].title.text) for n in _axes(fig, letter)}
        for name in names:
            axis = fig.layout[name]
            if axis.visible is False or titled.get(name):
                continue
            same_line = [  # x axes in the same column, y axes in the same row
                n for n in titled
                if titled[n] and tuple(fig.layout[n].domain or (0, 1)) == tuple(axis.domain or (0, 1))
            ]  # fmt: skip
            if not same_line:
                out.append(f"{name} carries data but has no title")
    for t in fig.data:
        if t.type == "scatter3d":
            scene = fig.layout[t.scene or "scene"]
            if not all(scene[a].title.text for a in ("xaxis", "yaxis", "zaxis")):
                out.append("3-D scene axis without a title")
    return out


def _axes(fig: go.Figure, letter: str) -> list[str]:
    return [k for k in fig.layout.to_plotly_json() if k.startswith(f"{letter}axis")]


def _token_problems(fig: go.Figure) -> list[str]:
    """Heatmap coordinates are distinct, and token tick labels keep every repeat of "the"."""
    out = []
    for i, t in enumerate(fig.data):
        if t.type == "heatmap":
            for name in ("x", "y"):
                v = getattr(t, name)
                if v is not None and len(set(map(str, v))) != len(v):
                    out.append(f"heatmap {i}: repeated {name} values merge columns: {list(v)}")
    for name in _axes(fig, "x") + _axes(fig, "y"):
        text = fig.layout[name].ticktext
        if text is not None and "saw" in text and list(text).count("the") != TOKENS.count("the"):
            out.append(f"{name} ticks {list(text)} lost a repeated token")
    return out


def _legend_problems(fig: go.Figure) -> list[str]:
    if not any(getattr(t, "showlegend", False) is not False and t.name for t in fig.data) or (
        fig.layout.showlegend is False
    ):
        return []
    yref, y = _layout(fig, "legend", "yref"), _layout(fig, "legend", "y")
    yanchor, x = _layout(fig, "legend", "yanchor"), _layout(fig, "legend", "x")
    xanchor = _layout(fig, "legend", "xanchor")
    if yref == "container" and y is not None and y <= 0.02 and yanchor == "bottom":
        return []
    if y is not None and ((y >= 1 and yanchor == "bottom") or (y <= 0 and yanchor == "top")):
        return []
    if x is not None and x >= 1 and xanchor == "left":
        return []
    return [f"legend may cover the data (yref={yref}, x={x}, y={y}, yanchor={yanchor})"]


def _title_problems(fig: go.Figure) -> list[str]:
    text = fig.layout.title.text
    if not text:
        return []
    size = _layout(fig, "title", "font", "size") or 14
    width = fig.layout.width or 700
    lines = re.split(r"<br\s*/?>", text)
    wide = [line for line in lines if 0.6 * size * len(re.sub(r"&\w+;", "x", line)) > width]
    return [f"title line wider than the figure: {wide}"] if wide else []


def _font_sizes(node: Any) -> list[float]:
    sizes: list[float] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("font") and isinstance(value, dict) and "size" in value:
                sizes.append(float(value["size"]))
            sizes += _font_sizes(value)
    elif isinstance(node, list):
        for value in node:
            sizes += _font_sizes(value)
    return sizes


@pytest.mark.parametrize("size", list(EXPORT_SIZES))
def test_publication_invariants(figures: dict[str, go.Figure], size: str) -> None:
    problems = []
    for name, screen in figures.items():
        fig = print_figure(screen, EXPORT_SIZES[size])
        found = (
            _colour_bar_problems(fig) + _axis_problems(fig) + _legend_problems(fig)
            + _title_problems(fig) + (_token_problems(fig) if size == "screen" else [])
        )  # fmt: skip
        if EXPORT_SIZES[size].width_in is not None:
            smallest = min([*_font_sizes(fig.to_dict()), fig.layout.font.size])
            if smallest < 7 * PX_PER_PT:
                found.append(f"text at {smallest / PX_PER_PT:.1f} pt")
            if fig.layout.width != round(EXPORT_SIZES[size].width_in * 96):
                found.append(f"width {fig.layout.width} px")
        problems += [f"{name} [{size}]: {p}" for p in found]
    assert not problems, "\n".join(problems)


def test_tokens_stay_escaped_in_html(figures: dict[str, go.Figure]) -> None:
    """``<script>`` in a token is text in every figure, and in the exported HTML."""
    for name in ("attention.attention_map_figure", "attention.head_view_figure"):
        html = figure_html(figures[name])
        assert "&lt;script&gt;" in html and '"<script>"' not in html, name
        assert "\\\\x00" in html  # the NUL byte shows as an escape, never raw
        assert "\x00" not in html and "\\u0000" not in html


def test_categorical_palette_has_20_distinct_colours() -> None:
    lab = rgb2lab(np.array([[[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in COLORWAY]]))[
        0
    ]
    d = deltaE_ciede2000(lab[:, None], lab[None, :])
    np.fill_diagonal(d, np.inf)
    white = deltaE_ciede2000(lab, np.broadcast_to(rgb2lab(np.ones((1, 1, 3)))[0, 0], lab.shape))
    assert len(COLORWAY) >= 20 and d.min() >= 20 and white.min() >= 20


def test_geometry_colours_do_not_repeat_for_22_classes(figures: dict[str, go.Figure]) -> None:
    classes = [t for t in figures["geometry.scatter_figure"].data if t.showlegend is not False]
    assert len(classes) == 22 and len({t.marker.color for t in classes}) == 22
