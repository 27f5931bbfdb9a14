from __future__ import annotations

from pathlib import Path

import pytest

_DURATIONS: dict[str, float] = {}


@pytest.fixture(scope="session")
def notebook_durations() -> dict[str, float]:
    """Wall time per notebook, printed in the terminal summary."""
    return _DURATIONS


@pytest.fixture(scope="session")
def claims_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the notebooks' ``record_claim`` calls write: one folder per notebook."""
    return tmp_path_factory.mktemp("claims")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _DURATIONS:
        terminalreporter.write_sep("-", "notebook wall times")
        for name, seconds in sorted(_DURATIONS.items()):
            terminalreporter.write_line(f"{name:<40} {seconds:6.1f} s")
