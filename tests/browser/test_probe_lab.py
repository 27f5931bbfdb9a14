"""ProbeLab in real JupyterLab, following a TrainingLab's transformer: every tab with what a
person sees asserted (controls visible, nothing past the output area, every heatmap with a
titled colour bar and axis titles), a click on the patching map and on the attention grid
reaching the kernel, the step slider, and an export from the bar. Screenshots of each tab go to
``artifacts/browser/states/probe_*.png``."""

from __future__ import annotations

from typing import Any

from labsession import LabSession

CELLS = [
    """import pathlib, tempfile
import torch
torch.set_num_threads(1)
from widgets import ProbeLab, TrainingLab
out = pathlib.Path(tempfile.mkdtemp())
tl = TrainingLab("copy", record_every=20, out_dir=out)
tl.step(40)""",
    "probe = ProbeLab(source=tl, n_inputs=16, title='Probe <b>not bold</b>', out_dir=out)\nprobe",
]

# Axis titles of the canvases and of the plotly figures on screen must not be empty; button
# labels are not cut.
AXIS_PROBLEMS = """(root) => {
  const problems = [];
  const shown = (el) => el.getBoundingClientRect().width > 0;
  for (const grid of root.querySelectorAll('.xp-grid-root')) {
    if (!shown(grid) || !grid.querySelector('canvas')) continue;
    for (const cls of ['.xp-axis-x', '.xp-axis-y']) {
      const t = grid.querySelector(cls);
      if (!t || !t.textContent.trim()) problems.push(`canvas grid without ${cls} title`);
    }
  }
  for (const gd of root.querySelectorAll('.js-plotly-plot')) {
    if (!shown(gd) || !gd.data || !gd.data.length) continue;
    for (const cls of ['.xtitle', '.ytitle']) {
      const t = gd.querySelector(cls);
      if (!t || !t.textContent.trim()) problems.push(`plotly figure without ${cls}: ${gd.querySelector('.gtitle')?.textContent}`);
    }
  }
  for (const b of root.querySelectorAll('button')) {
    if (shown(b) && b.scrollWidth > b.clientWidth + 1) problems.push(`truncated label: ${b.textContent}`);
  }
  return problems;
}"""


def _check(lab: LabSession, root: Any, name: str, visible: list[str]) -> None:
    lab.page.wait_for_timeout(400)  # let the last comm messages render
    problems = lab.layout_problems(root, visible) + root.evaluate(AXIS_PROBLEMS)
    lab.lab_screenshot(root, f"probe_{name}")
    assert not problems, f"{name}: {problems}"


def test_probe_lab_in_jupyterlab(lab: LabSession) -> None:
    lab.page.set_viewport_size({"width": 1400, "height": 1800})
    lab.open(lab.write_notebook("probe_lab.ipynb", CELLS))
    lab.run_all(timeout_s=240)
    page = lab.page
    root = page.locator(".xp-probe-lab").first
    patching = root.locator(".xp-probe-patching")
    patching.locator("canvas").first.wait_for(timeout=30_000)
    assert "<b>not bold</b>" in root.locator(".widget-html").first.inner_text()
    common = [".xp-probe-row", ".xp-lab-export", ".xp-lab-steps"]

    # Patching: the map with its colour bar, and the bars of the strongest site
    root.locator(".xp-probe-site-change .main-svg").first.wait_for(timeout=30_000)
    _check(lab, root, "patching", [*common, ".xp-probe-sweep", ".xp-probe-patching .xp-colorbar",
                                   ".xp-probe-site-change .main-svg"])  # fmt: skip
    # a click on a cell of the map selects that site in the kernel and re-draws its bars
    canvas = patching.locator("canvas").first
    box = canvas.bounding_box()
    assert box is not None
    rows, cols = (int(v) for v in lab.kernel("print(*probe.patch_grid.shape[1:])").split())
    canvas.click(position={"x": box["width"] - 12, "y": box["height"] * 0.35})
    page.wait_for_function(
        "(el) => el.querySelector('.xp-grid-cell[data-marked]')", arg=patching.element_handle(),
        timeout=30_000,
    )  # fmt: skip
    # the click reaches the kernel (poll: on a loaded machine the comm message can lag)
    read = "print(probe.site['layer'], probe.site['position'], probe.last_error)"
    for _ in range(60):
        layer, position, error = lab.kernel(read).split()
        if int(position) == cols - 1:
            break
        page.wait_for_timeout(500)
    assert error == "None" and int(layer) in range(rows) and int(position) == cols - 1, position
    page.wait_for_function(  # and its bars are redrawn for that site
        "([el, want]) => (el.querySelector('.gtitle')?.textContent || '').includes(want)",
        arg=[root.locator(".xp-probe-site-change").element_handle(), f"position {position}"],
        timeout=30_000,
    )

    # Intervene: click a head on the attention grid, then mean-ablate it
    root.get_by_role("tab", name="Intervene").click()
    heads = root.locator(".xp-probe-heads .xp-grid-cell canvas")
    heads.first.wait_for(timeout=30_000)
    heads.nth(heads.count() - 1).click()
    root.locator(".xp-probe-effect", has_text="H").wait_for(timeout=30_000)
    root.get_by_role("button", name="mean ablation").click()
    root.locator(".xp-probe-effect", has_text="mean ablation").wait_for(timeout=30_000)
    layer, head = lab.kernel("print(probe.layer, probe.head)").split()
    assert f"L{layer} H{head}" in root.locator(".xp-probe-effect").inner_text()
    _check(lab, root, "intervene", [*common, ".xp-probe-action", ".xp-probe-heads .xp-colorbar",
                                    ".xp-probe-change .main-svg"])  # fmt: skip
    root.get_by_role("button", name="steer to clean").click()
    root.locator(".xp-probe-effect", has_text="steering").wait_for(timeout=30_000)
    _check(lab, root, "intervene_steer", [*common, ".xp-probe-scale", ".xp-probe-change .main-svg"])

    # Attribution (Captum) and the logit lens: heatmaps with colour bars and axis titles
    root.get_by_role("tab", name="Attribution").click()
    root.locator(".xp-probe-attribution .main-svg").first.wait_for(timeout=30_000)
    page.wait_for_function(
        "(el) => el.querySelector('.xp-lab-status').textContent.includes('completeness')",
        arg=root.element_handle(), timeout=30_000,
    )  # fmt: skip
    _check(
        lab, root, "attribution", [*common, ".xp-probe-method", ".xp-probe-attribution .colorbar"]
    )
    root.get_by_role("tab", name="Logit lens").click()
    root.locator(".xp-probe-lens .main-svg").first.wait_for(timeout=30_000)
    _check(lab, root, "logit_lens", [*common, ".xp-probe-lens-color", ".xp-probe-lens .colorbar"])

    # the step slider re-probes the model of an earlier step
    lab.kernel("probe.show_step(tl.recorder.steps[0])")
    page.wait_for_function(
        "(el) => el.querySelector('.xp-lab-step-label').textContent.startsWith('step 0 ')",
        arg=root.element_handle(), timeout=30_000,
    )  # fmt: skip
    assert lab.kernel("print(probe.step, probe.last_error)").split() == ["0", "None"]
    _check(lab, root, "step0_lens", [*common, ".xp-probe-lens .colorbar"])

    # export the view on screen from the bar
    root.locator(".xp-lab-export select").nth(1).select_option("png")
    root.locator(".xp-lab-export-button").click()
    status = root.locator(".xp-lab-status", has_text="wrote")
    status.wait_for(timeout=60_000)
    path = status.inner_text().split("wrote ", 1)[1].strip()
    assert path.endswith(".png") and "logit_lens" in path
    assert lab.kernel(f"import os; print(os.path.getsize({path!r}) > 5_000)").strip() == "True"
    lab.close_labs("probe.close(); tl.close()", ".xp-lab")
    assert not lab.page_errors, lab.page_errors
