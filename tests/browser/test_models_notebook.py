"""Notebook 01 in real JupyterLab: the variant grid and the MiniLM grid render, a click syncs."""

from __future__ import annotations

from labsession import LabSession


def test_models_notebook_renders_and_syncs(lab: LabSession) -> None:
    lab.open("01_models_and_capture.ipynb")
    lab.run_all(timeout_s=180)
    page = lab.page
    tiles = page.locator(".xp-models-variants .xp-grid-cell canvas")
    tiles.first.wait_for(timeout=60_000)
    assert tiles.count() == 7
    tiles.nth(4).click()  # the linear-attention tile
    page.wait_for_selector(
        ".xp-models-variants .xp-grid-cell.xp-selected[data-index='4']", timeout=10_000
    )
    assert lab.kernel("print(grid.selected)").strip() == "4"

    lm_tiles = page.locator(".xp-models-minilm .xp-grid-cell canvas")
    lm_tiles.first.wait_for(timeout=60_000)
    assert lm_tiles.count() == 12
    assert lab.kernel("print(len(toks))").strip() == "14"
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    assert lab.screenshot("models_and_capture").stat().st_size > 10_000
    assert not lab.page_errors, lab.page_errors
