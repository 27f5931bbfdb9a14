"""SweepLab in real JupyterLab: a finished sweep through every view and control, a trial
clicked on the plot and opened in the training lab, and a second lab following a sweep while
it runs. After each state the lab's DOM holds the invariants of
``labsession.LAYOUT_PROBLEMS`` (controls visible, nothing past the output area, every heatmap
with a colour bar, no error output) and a screenshot is saved under artifacts/browser/states/."""

from __future__ import annotations

from typing import Any

from labsession import LabSession

NBSP = "\xa0"
SETUP = """\
import pathlib, tempfile, threading, time
import torch
torch.set_num_threads(1)
from explorer.models import MLPConfig
from explorer.train.sweep import run_sweep
from widgets import SweepLab
root = pathlib.Path(tempfile.mkdtemp())
base = dict(task="spirals", model=MLPConfig(in_dim=2, out_dim=2, depth=2, width=16),
            train={"lr": 0.02, "batch_size": 64, "eval_every": 10}, progress=False, workers=0)
run_sweep(**base, grid={"width": [8, 16, 32]}, seeds=[0, 1, 2], steps=60, directory=root / "done")
lab = SweepLab(source=root / "done", out_dir=root / "exports", min_interval_s=0)
lab"""
LIVE = """\
runner = threading.Thread(target=run_sweep, kwargs=dict(
    **base, grid={"lr": [0.003, 0.01, 0.03]}, seeds=[0, 1], steps=60, directory=root / "live"))
runner.start()
while not (root / "live" / "sweep.json").exists():
    time.sleep(0.05)
live = SweepLab(source=root / "live", poll_s=0.3, min_interval_s=0)
live"""
CONTROLS = [".xp-sweep-view", ".xp-sweep-x", ".xp-sweep-metric", ".xp-sweep-progress",
            ".xp-sweep-figure", ".xp-sweep-trial", ".xp-sweep-open", ".xp-lab-export"]  # fmt: skip
AXES = (".xp-sweep-x", ".xp-sweep-metric")  # the metric view's own controls
ANALYSIS = [c for c in CONTROLS if c not in AXES]


def _check(lab: LabSession, root: Any, name: str, visible=CONTROLS, hidden=()) -> None:  # type: ignore[no-untyped-def]
    lab.page.wait_for_timeout(400)  # let the last comm messages render
    problems = lab.layout_problems(root, visible, hidden)
    lab.lab_screenshot(root, name)
    assert not problems, f"{name}: {problems}"


def _view(lab: LabSession, root: Any, name: str, title: str) -> None:
    root.locator(".xp-sweep-view button", has_text=name).click()
    lab.page.wait_for_function(
        "([el, t]) => [...el.querySelectorAll('.xp-sweep-figure .gtitle')]"
        ".some(g => g.textContent.includes(t))",
        arg=[root.element_handle(), title], timeout=90_000,  # first CKA: numba compiles
    )  # fmt: skip


def test_sweep_lab_in_jupyterlab(lab: LabSession) -> None:
    lab.open(lab.write_notebook("sweep_lab.ipynb", [SETUP, LIVE]))
    lab.run_all(timeout_s=300)
    page = lab.page
    done = page.locator(".xp-sweep-lab").nth(0)
    live = page.locator(".xp-sweep-lab").nth(1)
    done.locator(".xp-sweep-figure .scatterlayer").first.wait_for(timeout=30_000)

    # the metric view: progress full, the x axis and title say what is drawn
    assert "9/9 finished" in done.locator(".xp-sweep-progress-line").inner_text()
    assert "width" in (done.locator(".xp-sweep-figure .xtitle").first.text_content() or "")
    _check(lab, done, "sweep_metric")

    # another metric from the menu
    done.locator(".xp-sweep-metric select").select_option("test_acc")
    page.wait_for_function(
        "(el) => el.querySelector('.xp-sweep-figure .ytitle').textContent.includes('test_acc')",
        arg=done.element_handle(), timeout=60_000,
    )  # fmt: skip
    _check(lab, done, "sweep_metric_acc")

    # the analysis views, each with its colour scale (checked by the invariants)
    _view(lab, done, "seed similarity", "seed × seed")
    assert done.locator(".xp-sweep-figure .colorbar").count() >= 1
    _check(lab, done, "sweep_seed_similarity", ANALYSIS, AXES)
    _view(lab, done, "config similarity", "config × config")
    _check(lab, done, "sweep_config_similarity", ANALYSIS, AXES)
    _view(lab, done, "disagreement", "disagree")
    _check(lab, done, "sweep_disagreement", ANALYSIS, AXES)

    # back to the metric; click a trial's marker: it is selected and can be opened
    _view(lab, done, "metric", "test_acc")
    point = done.locator(".xp-sweep-figure .scatterlayer .trace .point").last
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "(el) => !el.querySelector('.xp-sweep-open button, button.xp-sweep-open').disabled",
        arg=done.element_handle(), timeout=20_000,
    )  # fmt: skip
    selected = lab.kernel("print(lab.selection['trial'])").strip()
    assert selected.endswith(("-s0", "-s1", "-s2")), selected
    menu = done.locator(".xp-sweep-trial select")
    assert menu.evaluate("(s) => s.options[s.selectedIndex].text").replace(NBSP, " ") != "—"
    done.locator(".xp-sweep-open button, button.xp-sweep-open").first.click()
    done.locator(".xp-sweep-opened .xp-training-lab").wait_for(timeout=60_000)
    assert lab.kernel("print(type(lab._opened).__name__)").strip() == "TrainingLab"
    _check(lab, done, "sweep_opened_trial")

    # a lab following a sweep while it runs: the counts move to the end without a redraw call
    page.wait_for_function(
        "(el) => (el.querySelector('.xp-sweep-progress-line')?.textContent || '')"
        ".includes('6/6 finished')",
        arg=live.element_handle(), timeout=120_000,
    )  # fmt: skip
    lab.kernel("runner.join(); live.wait()")
    _check(lab, live, "sweep_live_finished")
    assert not lab.page_errors, lab.page_errors
