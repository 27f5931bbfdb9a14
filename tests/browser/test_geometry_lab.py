"""The geometry lab in real JupyterLab: on MiniLM hidden states (notebook 08) and following a live
training run (notebook 07). A real mouse click on a WebGL point reaches the kernel and shows the
point's input and exact neighbours; menus, Play and export buttons work from the page."""

from __future__ import annotations

from typing import Any

from labsession import LabSession
from playwright.sync_api import TimeoutError as PlaywrightTimeout

# page coordinates of the first point of the first trace of a lab's scatter
_POINT_XY = """(gd) => {
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, tr = gd._fullData[0];
  const r = gd.getBoundingClientRect();
  return [r.left + xa._offset + xa.l2p(tr.x[0]), r.top + ya._offset + ya.l2p(tr.y[0])];
}"""


def _click_first_point(lab: LabSession, root: Any) -> None:
    """Real mouse click on the first drawn point of the scatter in ``root`` (plotly picks the
    closest point under the cursor, which may be another one drawn on top)."""
    page = lab.page
    plot = root.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    # a redraw replaces the traces: wait until points are drawn again
    plot.evaluate(
        "(gd) => new Promise((ok) => { const t = setInterval(() => { const d = gd._fullData;"
        " if (d && d[0] && d[0].x && d[0].x.length) { clearInterval(t); ok(); } }, 100); })"
    )
    x, y = plot.evaluate(_POINT_XY)
    page.mouse.move(x + 3, y + 3)
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def _wait_status(page: Any, which: int, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "([i, t]) => document.querySelectorAll('.xp-geometry-lab .xp-geometry-status')[i]"
        ".textContent.includes(t)",
        arg=[which, text],
        timeout=timeout,
    )


def test_geometry_lab_on_minilm_hidden_states(lab: LabSession) -> None:
    lab.open("08_hidden_geometry.ipynb")
    lab.run_all(timeout_s=240)
    page = lab.page
    root = page.locator(".xp-geometry-lab").first
    root.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
    assert "L5" in (root.locator(".gtitle").first.text_content() or "")

    # a real click on a WebGL point → the kernel picks it and the info panel names it
    assert lab.kernel("print(lab.picked)").strip() == "40"  # picked by the notebook
    _click_first_point(lab, root)
    page.wait_for_function(
        "() => !document.querySelector('.xp-geometry-lab .xp-geometry-info')"
        ".textContent.startsWith('point 40 ')",
        timeout=20_000,
    )
    picked = lab.kernel("print(lab.picked)").strip()
    info = root.locator(".xp-geometry-info").inner_text()
    assert info.startswith(f"point {picked} ") and "«" in info  # the token and its sequence
    assert lab.kernel("print(len(lab.neighbors))").strip() == "10"

    # layer and colour menus reach the kernel
    root.locator(".xp-geometry-layer select").select_option(label="L0")
    root.locator(".xp-geometry-color select").select_option(label="position")
    page.wait_for_function(
        "() => document.querySelector('.xp-geometry-lab .gtitle').textContent.startsWith('L0')",
        timeout=20_000,
    )
    assert lab.kernel("print(lab.selection['layer'], lab.selection['color'])").split() == [
        "L0",
        "position",
    ]

    # export the coordinates (the scatter view's data) from the export bar
    root.locator(".xp-lab-export select").nth(1).select_option("csv")
    root.locator(".xp-lab-export-button").click()
    _wait_status(page, 0, "wrote")
    path = root.locator(".xp-geometry-status").inner_text().split("wrote ", 1)[1].strip()
    assert path.endswith("geometry_scatter.csv")
    rows = lab.kernel(f"import pandas as pd; print(len(pd.read_csv({path!r})))").strip()
    assert rows == str(60 * 32)  # every token state the lab holds: every other sequence × 32
    lab.screenshot("geometry_lab_minilm")
    assert not lab.page_errors, lab.page_errors


def test_geometry_lab_follows_training(lab: LabSession) -> None:
    lab.open("07_neural_collapse.ipynb")
    lab.run_all(timeout_s=240)
    page = lab.page
    live = page.locator(".xp-geometry-lab").nth(1)
    live.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    before = int(lab.kernel("print(live.metrics().step.max())"))

    # Play on the training lab: the geometry lab's scatter title moves to a later step
    page.locator(".xp-training-lab").get_by_role("button", name="Play").click()
    page.wait_for_function(
        "([el, s]) => { const t = el.querySelector('.gtitle');"
        " const m = t && t.textContent.match(/step (\\d+)/); return m && +m[1] > s; }",
        arg=[live.element_handle(), before],
        timeout=60_000,
    )
    page.locator(".xp-training-lab").get_by_role("button", name="Pause").click()
    assert int(lab.kernel("print(live.metrics().step.nunique())")) >= 2

    # colour by step overlays the kept snapshots; a click picks an input (its 2-D coordinates)
    live.locator(".xp-geometry-color select").select_option(label="step")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.xp-geometry-lab')][1]"
        ".querySelectorAll('.legendtext').length >= 2",
        timeout=20_000,
    )
    # the scatter may still be redrawn by the last refresh after Pause: re-aim and retry
    for attempt in range(3):
        _click_first_point(lab, live)
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll('.xp-geometry-lab .xp-geometry-info')][1]"
                ".textContent.includes('input [')",
                timeout=8_000,
            )
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    bar = live.locator(".xp-lab-export select")
    bar.nth(0).select_option("training")
    bar.nth(1).select_option("csv")
    live.locator(".xp-lab-export-button").click()
    _wait_status(page, 1, "wrote")
    lab.screenshot("geometry_lab_training")
    assert not lab.page_errors, lab.page_errors
