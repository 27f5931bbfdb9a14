"""Training throughput with the live lab vs the same training as a bare loop (issue 20, item 2).

"live lab": ``TrainingLab.play()`` — training in its background thread, snapshots recorded
(every 25 steps for the MLP, 10 for the transformer: the lab's defaults), every view refreshed
at most 10 times a second (the default ``refresh_hz``). "bare loop": ``Trainer.step()`` in a
loop on the same model factory, task and TrainConfig, no recorder, no views. The widgets run
headless: their comm messages are still serialized (state → JSON + binary buffers) and go
nowhere. One torch thread in both arms: the lab trains its built-in models on one
(``TrainingLab.threads``), and the bare loop runs on one too, so the ratio is what the lab adds.

For context, not the goal: a third arm, the bare loop in the main thread at torch's default
count (2 here), 10 runs. On 2 cores it trains the tiny transformer faster than one thread can,
and a training thread beside the kernel cannot match it: with a second OpenMP team, OpenMP
sleeps between ops instead of spinning (the lab's training thread on 2 threads ran at about half
its speed on 1; see the TrainingLab docstring).

Two measures, both reported:

- **A/B** (the goal, ≥ 0.95): the arms alternate in one process, in rounds of reversed order
  (live, bare, then bare, live, …); the ratio is the median of the 40 paired ratios, each live
  run over the bare run next to it. This machine's per-core speed varies by ±12% between
  0.4-s blocks, correlated over ~2 s and not across cores, so one pair is good to about ±10%;
  the median is printed with its distribution-free 95% confidence interval (order statistics
  of the pairs).
- **in-run share**: within each live run, the wall time its training steps took over the run's
  wall time (Play to the return of pause). Both come from the same seconds, so the machine's
  drift cancels; it counts what the lab does between steps (recording, view updates,
  start/stop) but not a step made slower by the lab's presence, which only the A/B can see.

Run from bench/: ``python bench_training.py``.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
from _harness import Bench, interleaved

from explorer.device import torch_threads
from explorer.models.registry import FAMILIES, model_for_task
from explorer.train import Trainer
from widgets.training import TrainingLab

PAIRS = 40
DEFAULT_RUNS = 10
DEFAULT_THREADS = torch.get_num_threads()


def median_ci(values: list[float]) -> tuple[float, float]:
    """Distribution-free 95% confidence interval of the median: the order statistics at
    n/2 ∓ 1.96 √n / 2 (binomial, normal approximation)."""
    v, n = sorted(values), len(values)
    half = 1.96 * math.sqrt(n) / 2
    return v[max(0, math.floor(n / 2 - half) - 1)], v[min(n - 1, math.ceil(n / 2 + half) - 1)]


def count_updates(lab: TrainingLab) -> list[int]:
    """Count the metric plot's updates sent to the page (bench instrumentation)."""
    counter = [0]
    names = ["_py2js_update", "_py2js_restyle", "_py2js_relayout"]

    def seen(change: dict) -> None:
        if change["new"] is not None:
            counter[0] += 1

    lab.panels["metrics"].observe(seen, names=names)
    return counter


def timed_steps(trainer: Trainer) -> list[float]:
    """Wall seconds of each ``trainer.step()`` from now on (bench instrumentation, ~1 µs)."""
    durations: list[float] = []
    step = trainer.step

    def timed() -> dict[str, float]:
        t0 = time.perf_counter()
        try:
            return step()
        finally:
            durations.append(time.perf_counter() - t0)

    trainer.step = timed  # type: ignore[method-assign]
    return durations


def measure(lab: TrainingLab, steps: int) -> dict[str, list[float]]:
    """Interleaved live and bare runs (warm-up dropped): steps/s of each arm, metric-plot
    updates/s, and each live run's in-run share: the wall time its training steps took over the
    run's wall time (Play to the return of pause: recording, view updates and start/stop count
    against it)."""
    out: dict[str, list[float]] = {"live": [], "bare": [], "default": [], "hz": [], "share": []}
    family = lab.controls["family"].value
    knobs = {k: lab.controls[k].value for k in FAMILIES[family]}

    def ours() -> None:
        lab.reset()
        updates = count_updates(lab)  # reset builds the views anew: count on the new plot
        durations = timed_steps(lab.trainer)
        t0 = time.perf_counter()
        lab.play()
        lab.wait(steps=steps, timeout=600)
        lab.pause()
        elapsed = time.perf_counter() - t0
        out["live"].append(lab.trainer.global_step / elapsed)
        out["hz"].append(updates[0] / elapsed)
        out["share"].append(math.fsum(durations) / elapsed)

    def bare(threads: int, key: str) -> None:
        trainer = Trainer(model_for_task(lab.task, family, **knobs), lab.task, lab.trainer.config)
        with torch_threads(threads):
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.step()
            out[key].append(steps / (time.perf_counter() - t0))

    interleaved(
        [ours, lambda: bare(lab.threads, "bare"), lambda: bare(DEFAULT_THREADS, "default")],
        [PAIRS, PAIRS, DEFAULT_RUNS],
        warmup=1,
    )
    return {k: v[1:] for k, v in out.items()}


def main() -> None:
    bench = Bench("training")
    cases = [
        ("2-D MLP (spirals, 3x16, full batch)", TrainingLab("spirals"), 3000),
        ("tiny transformer (copy, 2L 2H d32, batch 64)", TrainingLab("copy"), 400),
    ]
    for name, lab, steps in cases:
        m = measure(lab, steps)
        paired = sorted(a / b for a, b in zip(m["live"], m["bare"]))
        share = statistics.median(m["share"])
        row = bench.record(
            f"{name}: {steps} steps",
            [steps / r for r in m["live"]],
            [steps / r for r in m["bare"]],
            "bare Trainer.step loop",
        )
        low, high = median_ci(paired)
        bench.summary(
            row, size=f"{steps} steps, views ≤ 10 Hz ({statistics.median(m['hz']):.1f}/s)",
            agreement=f"{PAIRS} pairs, median's 95% CI {low:.2f}–{high:.2f}; in-run share {share:.3f}",
            goal_ratio=0.95, ratio=statistics.median(paired),
        )  # fmt: skip
        bench.note(name, "steps/s live lab (median)", round(statistics.median(m["live"]), 1))
        bench.note(name, "steps/s bare loop (median)", round(statistics.median(m["bare"]), 1))
        bench.note(
            name,
            f"steps/s bare loop, main thread, torch's default {DEFAULT_THREADS} threads (median)",
            round(statistics.median(m["default"]), 1),
        )
        bench.note(name, "in-run share (median)", round(share, 3))
        bench.note(
            name, "live / bare (median of paired ratios)", round(statistics.median(paired), 3)
        )
        bench.note(name, "view refreshes per second (median)", round(statistics.median(m["hz"]), 1))
        bench.note(name, "snapshot buffer MiB", round(lab.recorder.nbytes / 2**20, 2))
        lab.close()
    bench.report()


if __name__ == "__main__":
    main()
