"""Test tiers by directory, CUDA skips, and a loud banner when the browser tier did not run."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
TIER_MARKERS = {
    "unit": "unit",
    "integration": "integration",
    "notebooks": "notebook",
    "browser": "browser",
    "gpu": "cuda",
}


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_configure(config: pytest.Config) -> None:
    import torch

    # tiny models: one intra-op thread is faster than two and keeps timings steady on 2 cores
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_cuda = pytest.mark.skip(reason="needs a CUDA device (run on a GPU machine)")
    cuda = None
    for item in items:
        try:
            tier = Path(item.fspath).relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if tier in TIER_MARKERS:
            item.add_marker(TIER_MARKERS[tier])
        if item.get_closest_marker("cuda"):
            cuda = _cuda_available() if cuda is None else cuda
            if not cuda:
                item.add_marker(no_cuda)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if "tests/browser" in str(r.nodeid)
    ]
    if skipped:
        terminalreporter.write_sep("!", f"BROWSER TIER SKIPPED ({len(skipped)} tests)", red=True)
        reason = skipped[0].longrepr[-1] if isinstance(skipped[0].longrepr, tuple) else ""
        terminalreporter.write_line(f"reason: {reason}", red=True)
