"""A JupyterLab page driven by Playwright: open a notebook, run it, talk to its kernel."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"


class LabSession:
    """One JupyterLab page: open a notebook, run it, talk to its kernel, take screenshots."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.page_errors: list[str] = []
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))

    def write_notebook(self, name: str, cells: Sequence[str]) -> str:
        """Write a notebook of ``cells`` (code) to the server as ``name``; returns ``name``."""
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        body = json.dumps({"type": "notebook", "format": "json", "content": nb}).encode()
        req = urllib.request.Request(
            f"{self.url}/api/contents/{name}", data=body, method="PUT",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30):
            return name

    def open(self, notebook: str, timeout_s: float = 90) -> None:
        """Open ``notebook`` (relative to notebooks/) and wait for an idle kernel."""
        self.page.goto(f"{self.url}/lab/tree/{notebook}?reset", timeout=timeout_s * 1000)
        self.page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
            timeout=timeout_s * 1000,
        )

    def run_all(self, timeout_s: float = 180) -> None:
        """Run every cell; wait until all have run and the kernel is idle; fail on an error output."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.page.wait_for_function(
            """() => {
              const w = window.jupyterapp.shell.currentWidget;
              const cells = w.content.widgets.filter(c => c.model.type === 'code');
              const errored = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
              const done = cells.every(c => c.model.executionCount !== null && c.promptNode.textContent.indexOf('*') < 0);
              return errored || (done && w.sessionContext.session.kernel.status === 'idle');
            }""",
            timeout=timeout_s * 1000,
            polling=250,
        )
        errors = self.page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.widgets
                 .flatMap(c => c.model.type === 'code' ? c.model.outputs.toJSON() : [])
                 .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)"""
        )
        assert not errors, f"notebook raised: {errors}"

    def kernel(self, code: str, timeout_s: float = 60) -> str:
        """Execute ``code`` in the notebook's kernel; return its stdout (raise on error;
        warnings on stderr are not part of the result)."""
        result = self.page.evaluate(
            """async (code) => {
              const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
              const f = k.requestExecute({code, store_history: false});
              let out = '', err = null;
              f.onIOPub = (msg) => {
                const t = msg.header.msg_type;
                if (t === 'stream' && msg.content.name === 'stdout') out += msg.content.text;
                if (t === 'execute_result') out += msg.content.data['text/plain'];
                if (t === 'error') err = msg.content.ename + ': ' + msg.content.evalue;
              };
              await f.done;
              return {out, err};
            }""",
            code,
        )
        if result["err"]:
            raise AssertionError(f"kernel error: {result['err']}")
        return str(result["out"])

    def close_labs(self, code: str, selector: str, timeout_s: float = 30) -> None:
        """Run ``code`` (it closes labs) in the kernel, wait until nothing matches ``selector``
        in the page, then one second more: a figure's late messages (plotly answers a resize
        100 ms later) would raise in the page by then, and ``page_errors`` records them."""
        self.kernel(code)
        self.page.wait_for_function(
            "(sel) => !document.querySelector(sel)", arg=selector, timeout=timeout_s * 1000
        )
        self.page.wait_for_timeout(1000)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def layout_problems(
        self, root: Any, visible: Sequence[str] = (), hidden: Sequence[str] = ()
    ) -> list[str]:
        """The lab's layout invariants (see LAYOUT_PROBLEMS) plus error outputs in the notebook."""
        problems = root.evaluate(
            f"(el, args) => ({LAYOUT_PROBLEMS})([el, ...args])", [list(visible), list(hidden)]
        )
        return list(problems) + [f"error output: {e}" for e in self.page.evaluate(ERROR_OUTPUTS)]

    def lab_screenshot(self, root: Any, name: str) -> Path:
        """A screenshot of one lab (the element), under artifacts/browser/states/."""
        folder = ARTIFACTS / "states"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        root.scroll_into_view_if_needed()
        root.screenshot(path=str(path))
        return path


# Layout invariants of one lab, checked in the page (returns a list of problems, [] when fine):
# - every element of the lab lies inside its notebook output area (nothing clipped at the right
#   edge); content inside a scrolling box only needs that box inside the area
# - every canvas heatmap grid shows a colour bar with a title, and axis titles are not empty
# - every plotly heatmap trace drawn shows a colour bar
# - selectors in `visible` are displayed (non-zero size), selectors in `hidden` are not
LAYOUT_PROBLEMS = """([root, visible, hidden]) => {
  const problems = [];
  const area = root.closest('.jp-OutputArea-output') || root.parentElement;
  const limit = area.getBoundingClientRect().right + 1;
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  const scroller = (el) => {
    for (let p = el.parentElement; p && p !== area; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return p;
    }
    return null;
  };
  for (const el of root.querySelectorAll('*')) {
    if (!shown(el)) continue;
    const box = scroller(el);
    const right = (box || el).getBoundingClientRect().right;
    if (right > limit) {
      const name = (el.className && el.className.baseVal === undefined ? el.className : el.tagName);
      problems.push(`clipped: ${el.tagName.toLowerCase()}.${String(name).split(' ').join('.')} ` +
                    `ends at ${Math.round(right)} px, output area at ${Math.round(limit)} px`);
      break;
    }
  }
  for (const grid of root.querySelectorAll('.xp-grid-root')) {
    if (!shown(grid) || !grid.querySelector('.xp-grid-cell canvas')) continue;
    const bar = grid.querySelector('.xp-colorbar');
    if (!bar || !shown(bar) || !(bar.dataset.title || '').trim()) {
      problems.push(`canvas heatmap without a titled colour bar: ${grid.querySelector('.xp-grid-caption')?.textContent}`);
    }
  }
  for (const gd of root.querySelectorAll('.js-plotly-plot')) {
    if (!shown(gd) || !gd.data) continue;
    const heat = gd.data.filter((t) => t.type === 'heatmap' && t.visible !== false);
    if (heat.length && !gd.querySelector('.colorbar')) {
      problems.push(`plotly heatmap without a colour bar: ${gd.querySelector('.gtitle')?.textContent}`);
    }
  }
  for (const sel of visible) {
    const els = [...root.querySelectorAll(sel)];
    if (!els.length || !els.some(shown)) problems.push(`should be visible: ${sel}`);
  }
  for (const sel of hidden) {
    if ([...root.querySelectorAll(sel)].some(shown)) problems.push(`should be hidden: ${sel}`);
  }
  return problems;
}"""

ERROR_OUTPUTS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .flatMap(c => c.model.type === 'code' ? c.model.outputs.toJSON() : [])
  .filter(o => o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr'
           && /Error|Traceback/.test(o.text)))
  .map(o => o.ename ? o.ename + ': ' + o.evalue : o.text.slice(0, 300))"""
