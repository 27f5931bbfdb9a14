"""Import time of the packages (fresh interpreter each time), median of several runs.

Goal: `import explorer` under 1.5 s. Subpackages load lazily, so the first use of
``explorer.analysis`` (which imports torch and numba) is timed separately.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from _harness import Bench

CASES = {
    "import explorer": "import explorer",
    "import explorer + explorer.analysis (torch, numba)": "import explorer, explorer.analysis, explorer.device",
    "import widgets (plotly, anywidget)": "import widgets",
    "peer: import torch": "import torch",
}


def import_seconds(stmt: str, repeat: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeat)
    ]
    return statistics.median(runs)


if __name__ == "__main__":
    bench = Bench("import")
    seconds = {case: import_seconds(stmt) for case, stmt in CASES.items()}
    for case, value in seconds.items():
        bench.note(case, "median_s", round(value, 3))
    bench.summary(
        case="import explorer (fresh interpreter)",
        size="median of 5",
        ours_s=seconds["import explorer"],
        limit=1.5 / seconds["import explorer"],
        limit_of="the 1.5 s budget (budget / time)",
        goal_limit=1.0,
    )
    bench.report()
