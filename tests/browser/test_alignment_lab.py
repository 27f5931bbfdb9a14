"""The relative-representations tutorial in real JupyterLab: the alignment lab follows a training
run (live vs checkpoint vs trained seeds) and shows MiniLM's layers; metric switcher, model menus,
cell clicks, the step slider and the export buttons reach the kernel."""

from __future__ import annotations

from labsession import LabSession

NBSP = "\xa0"  # ipywidgets renders spaces in option labels as non-breaking spaces


def _label(text: str) -> str:
    return text.replace(" ", NBSP)


def test_alignment_lab_in_jupyterlab(lab: LabSession) -> None:
    lab.open("10_relative_representations.ipynb")
    lab.run_all(timeout_s=300)
    page = lab.page
    live, text = page.locator(".xp-alignment-lab").nth(0), page.locator(".xp-alignment-lab").nth(1)
    canvas = live.locator(".xp-alignment-heatmap canvas").first
    canvas.wait_for(timeout=30_000)
    caption = live.locator(".xp-grid-caption")
    assert caption.inner_text().startswith("rows: live layers · columns: seed 1 layers")

    # seeds from the training lab are offered in both menus
    options = [
        o.replace(NBSP, " ")
        for o in live.locator(".xp-alignment-rows select option").all_inner_texts()
    ]
    assert options == ["live", "checkpoint", "seed 1", "seed 2"]

    # click a heatmap cell: the Procrustes-aligned pair view is drawn for that pair
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    # the canvas holds tick labels around the map: hover inward from the bottom-right corner
    # until the value tip shows (a cell is under the pointer), then click there
    tip = live.locator(".xp-grid-tip").first
    for f in (0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6):
        position = {"x": box["width"] * f, "y": box["height"] * f}
        canvas.hover(position=position)
        if tip.is_visible():
            break
    assert tip.is_visible(), "no heatmap cell under the pointer"
    canvas.click(position=position)  # the bottom-right cell
    # the click hit a cell (the page marks it at once); the kernel then draws the pair view —
    # 30 s for a 2-core CI machine where the kernel may still be busy with the MiniLM lab below
    live.locator(".xp-grid-cell[data-marked]").wait_for(timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.xp-alignment-lab .gtitle')].some(t => t.textContent.includes('Procrustes-aligned'))",
        timeout=30_000,
    )
    pair = lab.kernel("print(*live.selected_pair[:2])").split()
    assert len(pair) == 2 and all(p.startswith("L") for p in pair)  # a pair of hidden layers

    # metric switcher: the caption flips to "lower = more similar" for a distance
    live.locator(".xp-alignment-metric select").select_option(
        label=_label("angular Procrustes distance (rad) [procrustes]")
    )
    page.wait_for_function(
        "() => document.querySelector('.xp-alignment-lab .xp-grid-caption').textContent.includes('lower = more similar')",
        timeout=15_000,
    )
    sel = "s = live.selection; print((s['rows'], s['cols'], s['metric']))"
    assert lab.kernel(sel).strip() == "('live', 'seed 1', 'procrustes')"

    # rows menu: seed vs seed
    live.locator(".xp-alignment-rows select").select_option(label=_label("seed 2"))
    page.wait_for_function(
        "() => document.querySelector('.xp-alignment-lab .xp-grid-caption').textContent.startsWith('rows: seed 2')",
        timeout=15_000,
    )

    # step slider: the checkpoint follows the recorded step
    handle = live.locator(".xp-alignment-step .noUi-handle").first
    handle.click()
    for _ in range(3):
        handle.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.xp-alignment-lab .xp-alignment-status').textContent.includes('checkpoint = step')",
        timeout=15_000,
    )
    assert int(lab.kernel("print(live.selection['compare_step'])")) > 0

    # export the matrix (the heatmap view's data) from the export bar
    live.locator(".xp-lab-export select").nth(1).select_option("csv")
    live.locator(".xp-lab-export-button").click()
    page.wait_for_function(
        "() => document.querySelector('.xp-alignment-lab .xp-alignment-status').textContent.includes('wrote')",
        timeout=20_000,
    )
    assert (
        lab.kernel(
            "import pathlib; print(len(list(pathlib.Path('exports').glob('alignment_heatmap*.csv'))))"
        ).strip()
        != "0"
    )

    # the MiniLM lab: 7 × 7 layer heatmap labelled with the model name
    text.locator(".xp-grid-cell canvas").first.wait_for(timeout=30_000)
    assert (
        text.locator(".xp-grid-caption")
        .inner_text()
        .startswith("rows: MiniLM layers · columns: MiniLM layers")
    )
    assert lab.kernel("print(text_lab.matrix().shape)").strip() == "(7, 7)"

    shot = lab.screenshot("alignment_lab")
    assert shot.stat().st_size > 10_000
    assert not lab.page_errors, lab.page_errors
