"""Training throughput with the live lab vs the same training as a bare loop (issue 20, item 2).

"live lab": ``TrainingLab.play()`` — training in its background thread, snapshots recorded
(every 25 steps for the MLP, 10 for the transformer: the lab's defaults), every view refreshed
at most 10 times a second (the default ``refresh_hz``). "bare loop": ``Trainer.step()`` in a
loop on the same model factory, task and TrainConfig, no recorder, no views. The widgets run
headless: their comm messages are still serialized (state → JSON + binary buffers) and go
nowhere. The two arms alternate call by call in one process; the ratio is the median of the
paired ratios (each live run over the bare run right after it: this machine's speed drifts by
±15% over seconds, which medians of each arm alone pick up). Goal: live ≥ 0.95 of bare. One
torch thread in both arms (tiny models).

Run from bench/: ``python bench_training.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
from _harness import Bench, interleaved

from explorer.models.registry import FAMILIES, model_for_task
from explorer.train import Trainer
from widgets.training import TrainingLab

torch.set_num_threads(1)


def count_updates(lab: TrainingLab) -> list[int]:
    """Count the metric plot's updates sent to the page (bench instrumentation)."""
    counter = [0]
    names = ["_py2js_update", "_py2js_restyle", "_py2js_relayout"]

    def seen(change: dict) -> None:
        if change["new"] is not None:
            counter[0] += 1

    lab.panels["metrics"].observe(seen, names=names)
    return counter


def measure(lab: TrainingLab, steps: int) -> tuple[list[float], list[float], list[float]]:
    """Interleaved runs: (live steps/s, bare steps/s, metric-plot updates/s), warm-up dropped."""
    live: list[float] = []
    bare: list[float] = []
    hz: list[float] = []
    family = lab.controls["family"].value
    knobs = {k: lab.controls[k].value for k in FAMILIES[family]}

    def ours() -> None:
        lab.reset()
        updates = count_updates(lab)  # reset builds the views anew: count on the new plot
        t0 = time.perf_counter()
        lab.play()
        lab.wait(steps=steps, timeout=600)
        lab.pause()
        elapsed = time.perf_counter() - t0
        live.append(lab.trainer.global_step / elapsed)
        hz.append(updates[0] / elapsed)

    def peer() -> None:
        trainer = Trainer(model_for_task(lab.task, family, **knobs), lab.task, lab.trainer.config)
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        bare.append(steps / (time.perf_counter() - t0))

    interleaved([ours, peer], [9, 9], warmup=1)
    return live[1:], bare[1:], hz[1:]


def main() -> None:
    bench = Bench("training")
    cases = [
        ("2-D MLP (spirals, 3x16, full batch)", TrainingLab("spirals"), 3000),
        ("tiny transformer (copy, 2L 2H d32, batch 64)", TrainingLab("copy"), 400),
    ]
    for name, lab, steps in cases:
        live, bare, hz = measure(lab, steps)
        ratio = statistics.median(a / b for a, b in zip(live, bare))
        row = bench.record(
            f"{name}: {steps} steps",
            [steps / r for r in live],
            [steps / r for r in bare],
            "bare Trainer.step loop",
        )
        bench.summary(
            row, size=f"{steps} steps, views ≤ 10 Hz",
            agreement=f"{statistics.median(hz):.1f} metric-plot updates/s", goal_ratio=0.95,
            ratio=ratio,
        )  # fmt: skip
        bench.note(name, "steps/s live lab (median)", round(statistics.median(live), 1))
        bench.note(name, "steps/s bare loop (median)", round(statistics.median(bare), 1))
        bench.note(name, "live / bare (median of paired ratios)", round(ratio, 3))
        bench.note(name, "view refreshes per second (median)", round(statistics.median(hz), 1))
        bench.note(name, "snapshot buffer MiB", round(lab.recorder.nbytes / 2**20, 2))
        lab.close()
    bench.report()


if __name__ == "__main__":
    main()
