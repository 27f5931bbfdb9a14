"""`import explorer` (and its compute modules) must never pull in a UI library."""

from __future__ import annotations

import subprocess
import sys

UI_PREFIXES = ("ipywidgets", "anywidget", "plotly", "IPython", "jupyter", "widgets")


def _loaded_ui_modules(code: str) -> list[str]:
    script = (
        f"{code}\nimport sys\n"
        f"print('\\n'.join(m for m in sys.modules if m.split('.')[0].startswith({UI_PREFIXES!r})))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def test_import_explorer_loads_no_ui_module() -> None:
    assert _loaded_ui_modules("import explorer") == []


def test_every_explorer_module_loads_no_ui_module() -> None:
    code = (
        "import importlib, pkgutil, explorer\n"
        "for m in pkgutil.walk_packages(explorer.__path__, 'explorer.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert _loaded_ui_modules(code) == []


def test_guard_detects_a_ui_import() -> None:
    # the check above would catch a leak: importing widgets does load plotly and anywidget
    loaded = _loaded_ui_modules("import widgets")
    assert any(m.startswith("plotly") for m in loaded)
    assert any(m.startswith("anywidget") for m in loaded)


def test_version_from_metadata() -> None:
    import importlib.metadata

    import explorer
    import widgets

    assert explorer.__version__ == importlib.metadata.version("explorer") == widgets.__version__


def _loaded(code: str, prefix: str) -> list[str]:
    script = (
        f"{code}\nimport sys\nprint('\\n'.join(m for m in sys.modules if m.startswith({prefix!r})))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def test_analysis_and_train_do_not_import_each_other() -> None:
    walk = (
        "import importlib, pkgutil, explorer.{0} as p\n"
        "for m in pkgutil.walk_packages(p.__path__, 'explorer.{0}.'):\n"
        "    importlib.import_module(m.name)"
    )
    assert _loaded(walk.format("analysis"), "explorer.train") == []
    assert _loaded(walk.format("train"), "explorer.analysis") == []
