"""Benchmark harness: ours and a peer in the same run, warm-up, repeats, medians and ratios.

Usage in a bench script::

    from _harness import Bench
    b = Bench("alignment")
    b.time("linear CKA n=5k", ours=lambda: linear_cka(x, y), peer=lambda: peer_cka(x, y),
           peer_name="torch-cka", repeat=5)
    b.note("CKA n=5k", "abs diff", abs(a - p))
    b.report()            # prints the table, writes bench/results/alignment.csv
"""

from __future__ import annotations

import csv
import gc
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def timings(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def peak_python_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through Python's allocator (numpy included) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Bench:
    """Collects rows (case, ours_s, peer_s, ratio, extra) and prints/writes them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[dict[str, Any]] = []

    def time(
        self,
        case: str,
        ours: Callable[[], Any],
        peer: Callable[[], Any] | None = None,
        *,
        peer_name: str = "peer",
        repeat: int = 5,
        warmup: int = 1,
        peer_repeat: int | None = None,
    ) -> dict[str, Any]:
        t_ours = statistics.median(timings(ours, repeat=repeat, warmup=warmup))
        row: dict[str, Any] = {"case": case, "ours_s": t_ours, "peer": peer_name if peer else ""}
        if peer is not None:
            reps = peer_repeat if peer_repeat is not None else repeat
            t_peer = statistics.median(timings(peer, repeat=reps, warmup=min(warmup, 1)))
            row.update(peer_s=t_peer, speedup=t_peer / t_ours if t_ours > 0 else float("inf"))
        self.rows.append(row)
        print(_format(row), flush=True)
        return row

    def note(self, case: str, key: str, value: Any) -> None:
        """Attach an extra measured value (accuracy difference, bytes, memory) to a case."""
        self.rows.append({"case": case, key: value})
        print(f"  {case}: {key} = {value}", flush=True)

    def report(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        path = RESULTS / f"{self.name}.csv"
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        print(
            f"\n== {self.name} (medians; cores={os.cpu_count()}, python {sys.version.split()[0]})"
        )
        for r in self.rows:
            if "ours_s" in r:
                print(_format(r))
        print(f"written {path}")
        return path


def _format(row: dict[str, Any]) -> str:
    s = f"{row['case']:<48} ours {row['ours_s'] * 1e3:10.2f} ms"
    if "peer_s" in row:
        s += f" | {row['peer']} {row['peer_s'] * 1e3:10.2f} ms | ours is {row['speedup']:.1f}x faster"
    return s
