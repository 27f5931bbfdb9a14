"""Run every bench/bench_*.py script in turn (each in its own process) and summarise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
failed = []
for script in sorted(here.glob("bench_*.py")):
    print(f"\n######## {script.name}", flush=True)
    if subprocess.call([sys.executable, str(script)], cwd=here) != 0:
        failed.append(script.name)
print("\nfailed:", ", ".join(failed) if failed else "none")
sys.exit(1 if failed else 0)
