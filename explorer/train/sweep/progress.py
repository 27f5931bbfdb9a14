"""Live progress of a sweep: counts of finished, running and failed trials and the best value
so far, fed by the backends' events and drawn by a tqdm bar (``tqdm.auto``) or any callback."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["ProgressCallback", "SweepProgress", "Tracker", "tqdm_progress"]


@dataclass(frozen=True)
class SweepProgress:
    """How a sweep stands: trials done, diverged, stopped early (by a scheduler), failed and
    running, out of ``total``. ``best`` is the best value of ``metric`` (by ``mode``) reported
    so far by any trial, ``best_trial`` the trial that reported it; ``states`` maps each trial
    seen to its state."""

    total: int
    metric: str
    mode: str
    done: int = 0
    diverged: int = 0
    stopped: int = 0
    failed: int = 0
    running: int = 0
    best: float | None = None
    best_trial: str | None = None
    states: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Trials that will not run again: done, diverged or stopped."""
        return self.done + self.diverged + self.stopped

    @property
    def pending(self) -> int:
        return self.total - self.finished - self.failed - self.running

    def describe(self) -> str:
        """``"12/16 finished · 2 running · 1 failed · best test_loss 0.0123"``."""
        parts = [f"{self.finished}/{self.total} finished", f"{self.running} running"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.diverged:
            parts.append(f"{self.diverged} diverged")
        if self.stopped:
            parts.append(f"{self.stopped} stopped early")
        if self.best is not None:
            parts.append(f"best {self.metric} {self.best:.4g}")
        return " · ".join(parts)


ProgressCallback = Callable[[SweepProgress], None]


class Tracker:
    """Turns backend events into :class:`SweepProgress` and hands each new one to ``callback``."""

    def __init__(
        self, total: int, metric: str, mode: str, callback: ProgressCallback | None
    ) -> None:
        self.state = SweepProgress(total=total, metric=metric, mode=mode)
        self.callback = callback
        self._states: dict[str, str] = {}

    def event(self, ev: dict[str, Any]) -> None:
        """Apply one event: ``running``, ``progress`` (step, value), ``finished`` (state)."""
        trial, kind = ev["trial_id"], ev["event"]
        changes: dict[str, Any] = {}
        if kind == "running":
            self._states[trial] = "running"
        elif kind == "finished":
            self._states[trial] = ev["state"]
        value = ev.get("value")
        if value is not None and math.isfinite(value):
            best = self.state.best
            if best is None or (value < best if self.state.mode == "min" else value > best):
                changes.update(best=float(value), best_trial=trial)
        self._publish(**changes)

    def _publish(self, **changes: Any) -> None:
        counts: dict[str, Any] = dict.fromkeys(
            ("done", "diverged", "stopped", "failed", "running"), 0
        )
        for s in self._states.values():
            counts[s] += 1
        self.state = replace(self.state, **counts, **changes, states=dict(self._states))
        if self.callback is not None:
            self.callback(self.state)


class tqdm_progress:
    """A ``tqdm.auto`` bar over trials with the counts and the best value as its postfix."""

    def __init__(self, desc: str = "sweep") -> None:
        self.desc = desc
        self._bar: Any = None

    def __call__(self, p: SweepProgress) -> None:
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=p.total, desc=self.desc, unit="trial", dynamic_ncols=True)
        self._bar.n = p.finished + p.failed
        self._bar.set_postfix_str(p.describe().split(" · ", 1)[-1], refresh=False)
        self._bar.refresh()
        if p.pending == 0 and p.running == 0:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
