"""A JupyterLab page driven by Playwright: open a notebook, run it, talk to its kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"


class LabSession:
    """One JupyterLab page: open a notebook, run it, talk to its kernel, take screenshots."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.page_errors: list[str] = []
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))

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
        """Execute ``code`` in the notebook's kernel; return its stdout (raise on error)."""
        result = self.page.evaluate(
            """async (code) => {
              const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
              const f = k.requestExecute({code, store_history: false});
              let out = '', err = null;
              f.onIOPub = (msg) => {
                const t = msg.header.msg_type;
                if (t === 'stream') out += msg.content.text;
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

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path
