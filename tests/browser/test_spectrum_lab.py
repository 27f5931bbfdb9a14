"""SpectrumLab in real JupyterLab: the frequency × step heatmap grows live while the followed
TrainingLab trains; the scale toggle and export reach the kernel."""

from __future__ import annotations

import re

from labsession import LabSession

CAPTION = ".xp-spectrum-lab .xp-spectrum-heatmap .xp-grid-caption"


def _snapshots(text: str) -> int:
    match = re.search(r"(\d+) snapshots", text)
    return int(match.group(1)) if match else -1


def test_spectrum_panel_updates_live_during_training(lab: LabSession) -> None:
    lab.open("05_spectral_bias.ipynb")
    lab.run_all(timeout_s=240)
    page = lab.page
    panel = page.locator(".xp-spectrum-lab")
    panel.locator(".xp-spectrum-heatmap canvas").first.wait_for(timeout=30_000)
    panel.locator(".js-plotly-plot.xp-spectrum-current").wait_for(timeout=30_000)
    caption = page.locator(CAPTION)
    before = _snapshots(caption.inner_text())
    assert before >= 2

    page.get_by_role("button", name="Play").click()
    page.wait_for_function(
        f"""() => {{
          const m = document.querySelector('{CAPTION}').textContent.match(/(\\d+) snapshots/);
          return m && Number(m[1]) >= {before + 3};
        }}""",
        timeout=60_000,
    )
    page.get_by_role("button", name="Pause").click()
    # the last snapshots may still be on their way (trailing redraw): stop, let the lab draw
    # them, then read steps and heatmap together
    shown = lab.kernel(
        "train_lab.pause(); spectrum_lab.wait()\n"
        "print(spectrum_lab.heatmap.shape[2], *spectrum_lab.steps)"
    ).split()
    columns, steps = int(shown[0]), [int(s) for s in shown[1:]]
    assert len(steps) >= before + 3 and steps == sorted(steps)
    assert columns == len(steps)  # one heatmap column per recorded snapshot
    panel.scroll_into_view_if_needed()
    shot = lab.screenshot("spectrum_lab_live")
    assert shot.stat().st_size > 10_000

    panel.get_by_role("button", name="linear").click()  # a comm message; poll the kernel
    for _ in range(20):
        if lab.kernel("print(spectrum_lab.scale.value)").strip() == "linear":
            break
        page.wait_for_timeout(250)
    assert lab.kernel("print(spectrum_lab.current.layout.yaxis.type)").strip() == "linear"

    panel.locator(".xp-lab-export select").nth(1).select_option("html")
    panel.locator(".xp-lab-export-button").click()
    wrote = panel.locator(".xp-lab-status", has_text="wrote")  # every lab says "wrote"
    wrote.wait_for(timeout=30_000)
    assert wrote.inner_text().strip().endswith(".html")
    assert not lab.page_errors, lab.page_errors
