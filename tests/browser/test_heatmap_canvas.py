"""The anywidget heatmap canvas drawn by Debian Chromium (no JupyterLab needed): every grid has
a titled colour bar and axis titles, ticks never overflow, a tall narrow map fills its tile,
values and the marked cell show. Screenshots go to ``artifacts/figures/``."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from widgets.canvas import HeatmapGrid
from widgets.figures.training import surface_style

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "figures"
PAGE = """<!doctype html><html><body style="margin:0;width:%dpx;font-family:sans-serif">
<div id="el"></div></body></html>"""
# A stand-in for the anywidget model: state in a dict, change events, bytes as DataViews.
FAKE_MODEL = """
window.mount = (state) => {
  for (const [k, v] of Object.entries(state)) if (v && v.b64 !== undefined) {
    const bin = atob(v.b64), buf = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    state[k] = new DataView(buf.buffer);
  }
  const handlers = {};
  const model = { get: (k) => state[k], set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
    on: (e, f) => (handlers[e] = handlers[e] || []).push(f), off: () => {}, save_changes: () => {} };
  window.model = model;
  render({ model, el: document.getElementById("el") });
};
"""


def _state(grid: HeatmapGrid) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in HeatmapGrid.class_own_traits(sync=True):
        value = getattr(grid, name)
        out[name] = {"b64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value
    return out


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    """One page of the session's browser (a second ``sync_playwright()`` in the same process
    fails once the lab tests have started the first)."""
    js = (REPO / "widgets/static/heatmap_grid.js").read_text()
    js = js.replace("export default { render };", "window.render = render;")
    css = (REPO / "widgets/static/heatmap_grid.css").read_text()
    context = browser.new_context(viewport={"width": 900, "height": 700})
    pg = context.new_page()

    def show(grid: HeatmapGrid, width: int = 700) -> dict[str, Any]:
        pg.set_content(PAGE % width)
        pg.add_style_tag(content=css)
        pg.add_script_tag(content=js + FAKE_MODEL)
        pg.evaluate(f"mount({json.dumps(_state(grid))})")
        return pg.evaluate(
            """() => {
            const root = document.querySelector('.xp-grid-root');
            const bar = document.querySelector('.xp-colorbar');
            const cv = [...document.querySelectorAll('.xp-grid-cell canvas')];
            return {
              bar: bar && bar.dataset.title,
              barVisible: !!bar && bar.getBoundingClientRect().width > 12,
              x: document.querySelector('.xp-axis-x').textContent,
              y: document.querySelector('.xp-axis-y').textContent,
              yWidth: document.querySelector('.xp-axis-y').getBoundingClientRect().width,
              overflow: root.scrollWidth - root.clientWidth,
              canvases: cv.map((c) => [c.width, c.height]),
              marked: [...document.querySelectorAll('[data-marked]')].map((c) => c.dataset.marked),
              legend: document.querySelectorAll('.xp-legend-item').length,
            };
        }"""
        )

    pg.show = show
    try:
        yield pg
    finally:
        context.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".xp-grid-root").screenshot(path=str(SHOTS / f"canvas_{name}.png"))


def test_every_grid_has_a_titled_colour_bar_and_axis_titles(page: Any) -> None:
    rng = np.random.default_rng(0)
    # attention thumbnails: 2 layers × 4 heads, shared colour bar, one pair of axis titles
    heads = rng.dirichlet(np.ones(6), size=(8, 6)).astype(np.float32)
    grid = HeatmapGrid(tile_px=64, columns=4)
    grid.show(heads, [f"L{i // 4} H{i % 4}" for i in range(8)], vmin=0, vmax=1,
              colorbar_title="attention weight", x_title="key", y_title="query")  # fmt: skip
    got = page.show(grid)
    _shot(page, "attention_thumbnails")
    assert got["bar"] == "attention weight" and got["barVisible"]
    assert (got["x"], got["y"]) == ("key", "query") and got["yWidth"] > 5
    assert len(got["canvases"]) == 8 and got["overflow"] <= 0
    # a default grid still shows a colour bar (titled "value")
    got = page.show(HeatmapGrid())
    assert got["bar"] == "value"


def test_tall_narrow_map_fills_its_tile_with_axes(page: Any) -> None:
    """Residual spectrum: 64 frequencies × 3 steps once drew as a 12 px sliver with no axes."""
    power = np.log10(np.random.default_rng(1).random((64, 3)) + 1e-3).astype(np.float32)
    grid = HeatmapGrid(tile_px=260, tile_height=200, aspect="auto", show_labels=True)
    grid.show(power, ["residual power"], colorbar_title="log₁₀ power", x_title="step",
              y_title="frequency", row_labels=[str(k) for k in range(63, -1, -1)],
              col_labels=["0", "100", "200"])  # fmt: skip
    got = page.show(grid)
    _shot(page, "residual_spectrum")
    (w, h), = got["canvases"]  # fmt: skip
    assert w >= 260 and h >= 200  # the map itself fills the tile, ticks and labels besides
    assert got["bar"] == "log₁₀ power" and (got["x"], got["y"]) == ("step", "frequency")
    # numeric axes (extent) tick at 1, 2 or 5 × 10^k: steps 0…10 never show 2.5 / 7.5
    for lo, hi, n in [(0, 10, 4), (0, 10, 3), (0, 100, 4), (0, 0.5, 4), (3, 17, 5)]:
        ticks = page.evaluate(f"niceTicks({lo}, {hi}, {n})")
        assert len(ticks) >= 2 and all(lo <= t <= hi for t in ticks)
        steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1, ticks
        mantissa = float(f"{steps.pop():.3e}".split("e")[0])
        assert mantissa in (1.0, 2.0, 5.0), ticks


def test_alignment_values_and_marked_cell(page: Any) -> None:
    cka = np.corrcoef(np.random.default_rng(2).normal(size=(6, 20))) ** 2
    grid = HeatmapGrid(tile_px=300, show_labels=True, show_values=True, mark_cell=True)
    names = [f"blocks.{i}" for i in range(6)]
    grid.show(cka, ["seed 0 vs seed 1"], vmin=0, vmax=1, row_labels=names, col_labels=names,
              colorbar_title="linear CKA", x_title="seed 1 layer", y_title="seed 0 layer",
              clicked_cell=[2, 4], selected=0)  # fmt: skip
    got = page.show(grid)
    _shot(page, "alignment")
    assert got["marked"] == ["2,4"] and got["bar"] == "linear CKA"
    assert got["overflow"] <= 0


def test_decision_surface_points_stand_out_with_a_legend(page: Any) -> None:
    res = 40
    gx = np.meshgrid(np.linspace(-1, 1, res), np.linspace(1, -1, res))[0]
    p1 = 1 / (1 + np.exp(-6 * gx))
    grid = HeatmapGrid(tile_px=300, point_px=4)
    pts = np.column_stack([np.arange(0, 40, 4), np.arange(0, 40, 4), np.arange(10) % 2])
    grid.show(p1, ["step 100"], **surface_style(2, extent=(-1, 1, -1, 1)))
    grid.set_points(pts)
    got = page.show(grid)
    _shot(page, "decision_surface")
    assert got["legend"] == 2 and got["bar"] == "P(class 1)"
    assert (got["x"], got["y"]) == ("x₁", "x₂")
