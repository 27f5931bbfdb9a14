"""AttentionLab in real JupyterLab on MiniLM (notebook 03): click a head (and time the switch),
pick a query token in the head view, export from the button, and token text stays text."""

from __future__ import annotations

import os
import statistics

from labsession import LabSession

# Click a thumbnail and resolve when the enlarged head's title names the new head.
SWITCH_MS = """async ([index, want]) => {
  const root = document.querySelector('.xp-attention-lab');
  const canvas = root.querySelector(`.xp-attention-grid .xp-grid-cell[data-index='${index}'] canvas`);
  const detail = root.querySelector('.xp-attention-detail');
  const title = () => (detail.querySelector('.xp-grid-title') || {}).textContent || '';
  const rect = canvas.getBoundingClientRect();
  const t0 = performance.now();
  const done = new Promise((resolve, reject) => {
    const obs = new MutationObserver(() => {
      if (title().startsWith(want)) { obs.disconnect(); resolve(performance.now() - t0); }
    });
    obs.observe(detail, {subtree: true, childList: true, characterData: true});
    setTimeout(() => { obs.disconnect(); reject(new Error('no update for ' + want)); }, 10000);
  });
  canvas.dispatchEvent(new MouseEvent('click', {bubbles: true,
    clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2}));
  return await done;
}"""


def test_attention_lab_on_minilm(lab: LabSession) -> None:
    dialogs: list[str] = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    lab.open("03_attention_minilm.ipynb")
    lab.run_all(timeout_s=150)
    page = lab.page
    root = page.locator(".xp-attention-lab").first
    tiles = root.locator(".xp-attention-grid .xp-grid-cell canvas")
    tiles.first.wait_for(timeout=30_000)
    assert tiles.count() == 72  # 6 layers × 12 heads, all visible at once

    # click a head: the selection reaches the kernel and the enlarged view follows
    tiles.nth(15).click()
    page.wait_for_selector(".xp-attention-grid .xp-grid-cell.xp-selected[data-index='15']")
    assert lab.kernel("print(lab.layer, lab.head)").split() == ["1", "3"]
    switches = [
        page.evaluate(SWITCH_MS, [i, f"L{i // 12} H{i % 12}"]) for i in (20, 33, 47, 58, 5, 66, 9)
    ]
    median_ms = statistics.median(switches)
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(
        f"head switch to view updated: median {median_ms:.1f} ms, all {switches}, load {load:.1f}"
    )
    # The goal is < 100 ms on a quiet machine; on an oversubscribed one (load per core > 1.5)
    # scheduling dominates the kernel round trip, so only the best switch is held to it.
    assert (median_ms if load < 1.5 else min(switches)) < 100, switches

    # pick a query token in the head view (left column, 4th row)
    page.get_by_role("tab", name="Head view").first.click()
    canvas = root.locator(".xp-attention-headview canvas")
    canvas.wait_for(timeout=10_000)
    canvas.click(position={"x": 60, "y": 4 + 3 * 16 + 8})
    page.wait_for_function(
        "() => document.querySelector('.xp-attention-lab select').value !== ''", timeout=10_000
    )
    lab.page.wait_for_timeout(300)
    assert lab.kernel("print(lab.query)").strip() == "3"

    # export from the bar: choose the format in the page, press Export, read "wrote <path>"
    bar = root.locator(".xp-lab-export select")
    bar.nth(1).select_option("html")
    root.locator(".xp-lab-export-button").click()
    status = root.locator(".xp-lab-status", has_text="wrote")
    status.wait_for(timeout=30_000)
    path = status.inner_text().split("wrote ", 1)[1].strip()
    assert path.endswith(".html")
    assert lab.kernel(f"import os; print(os.path.getsize({path!r}) > 10_000)").strip() == "True"

    # the user-tensor lab: markup in tokens and titles is shown as text, never run
    small = page.locator(".xp-attention-lab").nth(1)
    small.scroll_into_view_if_needed()
    assert "<b>not bold</b>" in small.locator(".widget-html").first.inner_text()
    options = [o.replace("\xa0", " ") for o in small.locator("select option").all_inner_texts()]
    assert "2: <script>alert(1)</script>" in options
    small_bar = small.locator(".xp-lab-export select")
    small_bar.nth(0).select_option("head_view")
    small_bar.nth(1).select_option("html")
    small.locator(".xp-lab-export-button").click()
    wrote = small.locator(".xp-lab-status", has_text="wrote")
    wrote.wait_for(timeout=30_000)
    evil = wrote.inner_text().split("wrote ", 1)[1].strip()
    exported = lab.kernel(f"print(open({evil!r}).read().count('<script>alert(1)'))")
    assert exported.strip() == "0"
    lab.screenshot("attention_lab")
    assert not dialogs, dialogs
    assert not lab.page_errors, lab.page_errors
