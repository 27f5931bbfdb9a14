"""The training tutorial in real JupyterLab: Play and watch the loss fall in the page, Pause,
100 rapid clicks, change the architecture while running, drag the scrubber, export a view."""

from __future__ import annotations

import random
import re

from labsession import LabSession

THREADS = "import threading; print(sum(t.name == 'xp-training-lab' and t.is_alive() for t in threading.enumerate()))"


def _train_loss_in_page(page) -> list[float]:
    """The 'train loss' trace of the first lab's loss plot, as drawn in the page."""
    return page.evaluate(
        """() => {
          const gd = document.querySelector('.xp-training-lab .js-plotly-plot');
          const tr = gd.data.find(t => t.name === 'train loss');
          return Array.from(tr.y || []);
        }"""
    )


def test_training_lab_in_jupyterlab(lab: LabSession) -> None:
    lab.open("02_training_lab.ipynb")
    lab.run_all(timeout_s=240)
    page = lab.page
    root = page.locator(".xp-training-lab").first
    root.locator(".xp-grid-cell canvas").first.wait_for(timeout=30_000)
    button = {
        n: root.get_by_role("button", name=n, exact=True)
        for n in ("Play", "Pause", "Step", "Reset")
    }

    # Reset, Play: the loss falls in the page
    button["Reset"].click()
    page.wait_for_function(
        "() => document.querySelector('.xp-training-lab .xp-lab-step-label').textContent.includes('trained 0')",
        timeout=20_000,
    )
    button["Play"].click()
    page.wait_for_function(
        """() => {
          const gd = document.querySelector('.xp-training-lab .js-plotly-plot');
          const tr = gd && gd.data.find(t => t.name === 'train loss');
          return tr && tr.x && tr.x.length > 0 && tr.x[tr.x.length - 1] >= 150;
        }""",
        timeout=60_000,
        polling=200,
    )
    losses = _train_loss_in_page(page)
    assert losses[-1] < 0.8 * losses[0], losses
    label = root.locator(".xp-lab-step-label").inner_text()
    assert re.search(r"trained \d+", label) and "steps/s" in label, label
    button["Pause"].click()
    assert lab.kernel(THREADS).strip() == "0"

    # 100 rapid clicks: one training thread or none, consistent state, no page error
    rng = random.Random(0)
    for _ in range(100):
        button[rng.choice(["Play", "Pause", "Step", "Reset"])].click(delay=0, no_wait_after=True)
    running = lab.kernel("print(int(lab.running))").strip()
    assert lab.kernel(THREADS).strip() == running
    button["Pause"].click()
    state = lab.kernel(
        "t = lab.trainer; print(len(t.history) == t.global_step, all(s <= t.global_step for s in lab.recorder.steps), lab.last_error)"
    )
    assert state.split() == ["True", "True", "None"], state
    assert lab.kernel(THREADS).strip() == "0"

    # change the architecture while running: stop, rebuild, continue
    button["Play"].click()
    layers = root.locator(".widget-hslider").filter(has_text="layers").locator(".noUi-handle").first
    layers.click()
    layers.press("ArrowRight")
    page.wait_for_timeout(1500)
    out = lab.kernel(
        "print(lab.running, len(lab.trainer.model.layers), lab.trainer.global_step > 0)"
    )
    assert out.split() == ["True", "4", "True"], out
    button["Pause"].click()
    assert lab.kernel(THREADS).strip() == "0"

    # drag the scrubber back: every view shows an older snapshot
    handle = root.locator(".xp-training-steps .noUi-handle").first
    handle.click()
    handle.press("Home")
    page.wait_for_function(
        "() => document.querySelector('.xp-training-lab .xp-lab-step-label').textContent.startsWith('showing step 0 ')",
        timeout=10_000,
    )
    assert lab.kernel("print(lab.shown_step, lab.recorder.latest.step > 0)").split() == [
        "0",
        "True",
    ]

    # export the main view as PNG through the button
    root.locator(".xp-lab-export-button").click()
    status = root.locator(".xp-training-status")
    status.filter(has_text="wrote").wait_for(timeout=60_000)
    path = re.search(r"wrote (\S+\.png)", status.inner_text()).group(1)
    size = int(lab.kernel(f"import os; print(os.path.getsize({path!r}))"))
    assert size > 5_000

    shot = lab.screenshot("training_lab")
    assert shot.stat().st_size > 10_000
    assert not lab.page_errors, lab.page_errors
