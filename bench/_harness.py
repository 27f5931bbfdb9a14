"""Benchmark harness: ours and a peer interleaved in one process, warm-ups, medians, one table.

Every bench script times with :meth:`Bench.time` and reports its headline results as
:class:`SummaryRow` s with :meth:`Bench.summary`; ``bench/run_all.py`` runs every
``bench_*.py`` and prints all of their summary rows as ONE table::

    | case | size | ours | peer | ratio | agreement | limit | goal |

- ``ours`` / ``peer``: median seconds (the peer's name says what it is; a peer nobody would use
  at its best is labelled "(straw man)").
- ``ratio`` = peer time / our time (> 1: ours faster; for an overhead case such as the training
  lab vs a bare loop, it is our throughput as a share of the peer's).
- ``agreement``: how close our result is to the peer's (or to a float64 reference), as text.
- ``limit``: the fraction of a machine limit reached (e.g. 0.74 of the float32 GEMM rate measured
  in the same run) and which limit.
- ``goal``: the target, if the issue set one, and whether this run met it.

Usage in a bench script::

    from _harness import Bench
    b = Bench("alignment")
    row = b.time("linear CKA", ours=lambda: linear_cka(x, y), peer=lambda: ref(x, y),
                 peer_name="numpy reference", repeat=7)
    b.summary(row, size="n=8000, 512 vs 1024", agreement="|Δ| 3e-15", goal_ratio=1.3)
    b.note(row["case"], "abs diff vs float64", 3e-15)   # extra detail, printed and in the CSV
    b.report()            # prints this script's rows, writes bench/results/alignment.csv

Timing: one warm-up call of each side, then ``ours`` and ``peer`` alternate call by call, so a
neighbour's load on a shared machine falls on both sides alike; the medians are compared.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
SUMMARY_ENV = "EXPLORER_BENCH_SUMMARY"  # run_all.py: the JSON-lines file every script appends to


def interleaved(
    fns: Sequence[Callable[[], Any]],
    repeats: Sequence[int],
    *,
    warmup: int = 1,
    settle_s: float = 0.2,
) -> list[list[float]]:
    """Seconds per call of each fn, in rounds that alternate their order (a, b, then b, a, …)
    until each has its count: a machine speed that drifts over seconds then favours neither the
    fn that runs first nor the one that runs last. Call i of one fn and call i of another are
    neighbours in time, so their ratio is a paired sample.

    ``warmup`` untimed calls of each fn come first (first-touch allocation, JIT, caches). With
    more than one fn, each timed call starts ``settle_s`` after the last one ended: a BLAS
    library's threads spin for up to ~0.1 s after a call (OpenBLAS under numpy), and on two
    cores they slowed the next call of another library's code by half (our single-pair CKA:
    71 ms alone, 111 ms right after numpy's reference, 71 ms after a 0.1 s pause; the reference
    is not slowed by ours). A user's calls are seconds apart.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    settle = settle_s if len(fns) > 1 else 0.0
    out: list[list[float]] = [[] for _ in fns]
    for r in range(max(repeats)):
        arms = list(zip(fns, repeats, out))
        for fn, want, got in arms if r % 2 == 0 else arms[::-1]:
            if r < want:
                got.append(_once(fn, settle))
    return out


def _once(fn: Callable[[], Any], settle_s: float = 0.0) -> float:
    gc.collect()
    time.sleep(settle_s)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def blocked_gemm_seconds(a: Any, b: Any, block: int = 512) -> float:
    """Seconds of the full a @ bᵀ (numpy float32 or torch bfloat16) in block × block tiles, one
    single-threaded GEMM per tile on each core, with the GEMM explorer itself uses for that
    dtype (float32: :func:`explorer.device.gemm_nt`; bfloat16: torch's, i.e. oneDNN's). The
    machine-limit rates in the summary table come from the best of several such runs.
    """
    import torch

    from explorer.device import gemm_nt, run_on_workers

    n, m = len(a), len(b)
    tiles = [(i, j) for i in range(0, n, block) for j in range(0, m, block)]

    def tile(worker: int, job: tuple[int, int]) -> None:
        i, j = job
        if isinstance(a, torch.Tensor):
            torch.mm(a[i : i + block], b[j : j + block].T)
        else:
            gemm_nt(a[i : i + block], b[j : j + block])

    t0 = time.perf_counter()
    run_on_workers(tile, tiles)
    return time.perf_counter() - t0


def peak_python_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through Python's allocator (numpy included) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@dataclass
class SummaryRow:
    """One line of the `make bench` summary table (see the module docstring for the columns)."""

    bench: str
    case: str
    size: str
    ours_s: float
    peer: str = ""
    peer_s: float | None = None
    ratio: float | None = None
    agreement: str = ""
    limit: float | None = None
    limit_of: str = ""
    goal_ratio: float | None = None
    goal_limit: float | None = None

    @property
    def goal(self) -> str:
        """'ratio ≥ 1.3: met' / 'limit ≥ 0.70: MISSED' / '' (no goal set)."""
        parts = []
        if self.goal_ratio is not None:
            ok = self.ratio is not None and self.ratio >= self.goal_ratio
            parts.append(f"ratio ≥ {self.goal_ratio:g}: {'met' if ok else 'MISSED'}")
        if self.goal_limit is not None:
            ok = self.limit is not None and self.limit >= self.goal_limit
            parts.append(f"limit ≥ {self.goal_limit:.2f}: {'met' if ok else 'MISSED'}")
        return "; ".join(parts)

    def cells(self) -> list[str]:
        """The row as table cells: case, size, ours, peer, ratio, agreement, limit, goal."""
        peer = f"{self.peer} {seconds(self.peer_s)}" if self.peer_s is not None else self.peer
        limit = f"{self.limit:.2f} of {self.limit_of}" if self.limit is not None else ""
        ratio = f"{self.ratio:.2f}×" if self.ratio is not None else ""
        ours = seconds(self.ours_s)
        return [self.case, self.size, ours, peer, ratio, self.agreement, limit, self.goal]


HEADER = ["case", "size", "ours", "peer", "ratio", "agreement", "limit", "goal"]


def seconds(s: float | None) -> str:
    """Human-readable duration: 3.21 s, 41.0 ms, 12.3 µs."""
    if s is None:
        return ""
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """The summary rows as one Markdown table (also readable as plain text)."""
    cells = [HEADER] + [r.cells() for r in rows]
    width = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, width)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in width) + "|")
    return "\n".join(lines)


def read_summary(path: Path) -> list[SummaryRow]:
    """Summary rows appended (JSON lines) by the bench scripts of one run."""
    if not path.exists():
        return []
    names = {f.name for f in fields(SummaryRow)}
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append(SummaryRow(**{k: v for k, v in json.loads(line).items() if k in names}))
    return rows


def machine_line() -> str:
    """Cores, load average and Python: printed with every table (the machine may be shared)."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"cores={os.cpu_count()}, load average {load}, python {sys.version.split()[0]}"


class Bench:
    """Collects timed rows, notes and summary rows of one bench script; prints and writes them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[dict[str, Any]] = []
        self.summaries: list[SummaryRow] = []
        print(f"== {self.name}: {machine_line()}", flush=True)

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
        """Median seconds of ``ours`` (and ``peer``, interleaved call by call) → a row dict.

        The row has ``case``, ``ours_s``, ``peer``, ``peer_s``, ``speedup`` (peer_s / ours_s)
        and the raw ``ours_runs`` / ``peer_runs``.
        """
        if peer is None:
            (t_ours,) = interleaved([ours], [repeat], warmup=warmup)
            return self.record(case, t_ours)
        reps = peer_repeat if peer_repeat is not None else repeat
        t_ours, t_peer = interleaved([ours, peer], [repeat, reps], warmup=warmup)
        return self.record(case, t_ours, t_peer, peer_name)

    def record(
        self,
        case: str,
        ours_runs: list[float],
        peer_runs: list[float] | None = None,
        peer_name: str = "peer",
    ) -> dict[str, Any]:
        """A timed row from run times measured elsewhere (e.g. :func:`interleaved` of 3 fns)."""
        row: dict[str, Any] = {"case": case, "ours_s": statistics.median(ours_runs), "peer": ""}
        if peer_runs is not None:
            row["peer"] = peer_name
            row["peer_s"] = statistics.median(peer_runs)
            row["speedup"] = row["peer_s"] / row["ours_s"] if row["ours_s"] > 0 else float("inf")
            row["peer_runs"] = _runs(peer_runs)
        row["ours_runs"] = _runs(ours_runs)
        self.rows.append(row)
        print(_format(row), flush=True)
        return row

    def summary(
        self,
        row: dict[str, Any] | None = None,
        *,
        case: str | None = None,
        size: str = "",
        ours_s: float | None = None,
        peer: str | None = None,
        peer_s: float | None = None,
        agreement: str = "",
        limit: float | None = None,
        limit_of: str = "",
        goal_ratio: float | None = None,
        goal_limit: float | None = None,
        ratio: float | None = None,
    ) -> SummaryRow:
        """Record one line of the `make bench` summary table.

        Pass the dict :meth:`time` returned (case, times and peer come from it), or give
        ``case``/``ours_s``/``peer``/``peer_s`` directly; keywords override the row's values.
        ``ratio`` is peer_s / ours_s of the medians unless given (e.g. the median of paired
        ratios, each from two runs side by side: robust to a machine whose speed drifts).
        """
        row = row or {}
        ours = ours_s if ours_s is not None else row.get("ours_s")
        if ours is None:
            raise ValueError("summary() needs a timed row or ours_s")
        p_s = peer_s if peer_s is not None else row.get("peer_s")
        if ratio is None and p_s is not None and ours > 0:
            ratio = float(p_s) / float(ours)
        s = SummaryRow(
            bench=self.name,
            case=case if case is not None else row["case"],
            size=size,
            ours_s=float(ours),
            peer=peer if peer is not None else row.get("peer", ""),
            peer_s=None if p_s is None else float(p_s),
            ratio=ratio,
            agreement=agreement,
            limit=limit,
            limit_of=limit_of,
            goal_ratio=goal_ratio,
            goal_limit=goal_limit,
        )
        self.summaries.append(s)
        target = os.environ.get(SUMMARY_ENV)
        if target:  # appended at once: rows survive a later crash of the script
            with open(target, "a") as fh:
                fh.write(json.dumps(asdict(s)) + "\n")
        print("  summary: " + " | ".join(c for c in s.cells() if c), flush=True)
        return s

    def note(self, case: str, key: str, value: Any) -> None:
        """Attach an extra measured value (accuracy difference, bytes, memory) to a case."""
        self.rows.append({"case": case, key: value})
        print(f"  {case}: {key} = {value}", flush=True)

    def report(self) -> Path:
        """Print this script's timed rows and summary table; write results/<name>.csv."""
        RESULTS.mkdir(exist_ok=True)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        path = RESULTS / f"{self.name}.csv"
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        print(f"\n== {self.name} (medians; {machine_line()})")
        for r in self.rows:
            if "ours_s" in r:
                print(_format(r))
        if self.summaries:
            print("\n" + markdown_table(self.summaries))
        print(f"written {path}")
        return path


def _runs(ts: list[float]) -> str:
    return " ".join(f"{t:.4g}" for t in ts)


def _format(row: dict[str, Any]) -> str:
    s = f"{row['case']:<48} ours {seconds(row['ours_s']):>10}"
    if "peer_s" in row:
        s += f" | {row['peer']} {seconds(row['peer_s']):>10} | ratio {row['speedup']:.2f}×"
    return s
