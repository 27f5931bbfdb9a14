"""Training throughput with the live lab vs the same loop with no UI.

Both arms train the lab's default model on the lab's default task for the same number of steps:
"no UI" is a bare ``Trainer.step()`` loop; "live lab" is ``TrainingLab.play()`` (background
thread, snapshots every 10 steps, every view refreshed ~10×/s). The widgets run headless, so the
comm messages are still serialized (state → JSON + binary buffers) but go nowhere. Goal: lab
throughput ≥ 90% of the bare loop. One torch thread in both arms (tiny models).

Run from bench/: ``python bench_training.py``.
"""

from __future__ import annotations

import time

import torch
from _harness import Bench

from explorer.train import Trainer
from widgets.training import TrainingLab

torch.set_num_threads(1)


def live_run(lab: TrainingLab, steps: int, refreshes: list[int]) -> None:
    lab.reset()
    n0 = lab._metrics_refreshes
    lab.play()
    lab.wait(steps=steps, timeout=600)
    lab.pause()
    refreshes.append(lab._metrics_refreshes - n0)


def bare_run(lab: TrainingLab, steps: int) -> None:
    trainer = Trainer(lab.trainer._source, lab.task, lab.trainer.config)
    for _ in range(steps):
        trainer.step()


def instrument(lab: TrainingLab) -> None:
    """Count view refreshes (bench-only instrumentation)."""
    lab._metrics_refreshes = 0  # type: ignore[attr-defined]
    update = lab._update_metrics

    def counted() -> None:
        lab._metrics_refreshes += 1  # type: ignore[attr-defined]
        update()

    lab._update_metrics = counted  # type: ignore[method-assign]


def main() -> None:
    bench = Bench("training")
    cases = [
        ("2-D MLP (spirals, 3x16, full batch)", TrainingLab("spirals"), 1500),
        (
            "tiny transformer (copy, 2L 4H d64, batch 64)",
            TrainingLab("copy", train={"batch_size": 64, "lr": 3e-3}),
            120,
        ),
    ]
    for name, lab, steps in cases:
        instrument(lab)
        refreshes: list[int] = []
        t_start = time.perf_counter()
        row = bench.time(
            f"{name}: {steps} steps",
            ours=lambda lab=lab, steps=steps, r=refreshes: live_run(lab, steps, r),
            peer=lambda lab=lab, steps=steps: bare_run(lab, steps),
            peer_name="no UI",
            repeat=3,
        )
        elapsed = time.perf_counter() - t_start
        bench.note(name, "steps/s live lab", round(steps / row["ours_s"], 1))
        bench.note(name, "steps/s no UI", round(steps / row["peer_s"], 1))
        bench.note(name, "throughput ratio live/noUI", round(row["peer_s"] / row["ours_s"], 3))
        bench.note(name, "view refreshes per second", round(refreshes[-1] / row["ours_s"], 1))
        bench.note(name, "snapshot buffer MiB", round(lab.recorder.nbytes / 2**20, 2))
        bench.note(name, "bench wall s", round(elapsed, 1))
        lab.close()
    bench.report()


if __name__ == "__main__":
    main()
