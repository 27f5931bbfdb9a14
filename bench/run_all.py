"""Run every ``bench/bench_*.py`` (each in its own process) and print ONE summary table.

Each script appends its :class:`~_harness.SummaryRow` s to a JSON-lines file named by the
environment variable ``EXPLORER_BENCH_SUMMARY``; after the last script this prints them all as
one Markdown table (case, size, ours, peer, ratio, agreement, limit, goal) and writes it to
``bench/results/summary.md``. ``--only geometry,alignment`` runs a subset; a script that fails
is listed and makes the exit status 1, the others still run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _harness import RESULTS, SUMMARY_ENV, machine_line, markdown_table, read_summary, seconds


def main() -> int:
    here = Path(__file__).parent
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default="", help="comma-separated names (bench_<name>.py)")
    args = ap.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    scripts = [
        p
        for p in sorted(here.glob("bench_*.py"))
        if not only or p.stem.removeprefix("bench_") in only
    ]
    RESULTS.mkdir(exist_ok=True)
    summary = RESULTS / "summary.jsonl"
    summary.unlink(missing_ok=True)
    env = {**os.environ, SUMMARY_ENV: str(summary)}
    failed, walls = [], []
    start = machine_line()
    for script in scripts:
        print(f"\n######## {script.name}", flush=True)
        t0 = time.perf_counter()
        if subprocess.call([sys.executable, str(script)], cwd=here, env=env) != 0:
            failed.append(script.name)
        walls.append(f"{script.stem.removeprefix('bench_')} {seconds(time.perf_counter() - t0)}")
    table = markdown_table(read_summary(summary))
    text = (
        f"{table}\n\nMedians of interleaved runs (ours and peer alternating in one process); "
        f"ratio = peer time / our time.\nMachine at start: {start}\nMachine at end: "
        f"{machine_line()}\nWall time per script: {', '.join(walls)}\n"
        f"Failed: {', '.join(failed) if failed else 'none'}\n"
    )
    (RESULTS / "summary.md").write_text(text)
    print("\n######## summary\n\n" + text, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
