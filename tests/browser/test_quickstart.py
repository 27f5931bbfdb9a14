"""The quickstart in real JupyterLab: widgets render, a slider drag and a click reach the kernel.

Its screenshot (artifacts/browser/quickstart.png) is the README's tour picture.
"""

from __future__ import annotations

from labsession import LabSession


def test_quickstart_runs_and_responds(lab: LabSession) -> None:
    lab.open("00_quickstart.ipynb")
    lab.run_all(timeout_s=120)
    page = lab.page
    tiles = page.locator(".xp-quickstart .xp-grid-cell canvas")
    tiles.first.wait_for(timeout=30_000)
    assert tiles.count() == 4
    caption = page.locator(".xp-quickstart .xp-grid-caption")
    assert caption.inner_text() == "temperature 1"

    # keyboard on the slider handle: each ArrowRight is one step (0.05 in log10), 4 → 10**0.2
    handle = page.locator(".xp-quickstart .noUi-handle").first
    handle.click()
    for _ in range(4):
        handle.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.xp-quickstart .xp-grid-caption').textContent"
        " === 'temperature 1.58'",
        timeout=15_000,
    )
    value = float(lab.kernel("print(slider.value)"))
    assert abs(value - 10**0.2) < 1e-9
    assert lab.kernel("print(curve.data[1].x[0])").strip() == str(value)

    tiles.nth(2).click()
    page.wait_for_selector(
        ".xp-quickstart .xp-grid-cell.xp-selected[data-index='2']", timeout=10_000
    )
    assert lab.kernel("print(grid.selected)").strip() == "2"

    # the plotly FigureWidget rendered in the page
    page.locator(".xp-quickstart .js-plotly-plot").first.wait_for(timeout=30_000)

    shot = lab.screenshot("quickstart")
    assert shot.stat().st_size > 10_000
    assert not lab.page_errors, lab.page_errors
