"""Residual power per frequency of a run's snapshots, each snapshot computed once: the state
behind the "residual spectrum over training" views of TrainingLab and SpectrumLab. The
numbers come from :func:`explorer.analysis.spectra.residual_history`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.analysis.spectra import Spectrum, residual_history

__all__ = ["ResidualRows"]


class ResidualRows:
    """step → residual power row (k,) against ``target`` (N, C) on a grid of ``shape``."""

    def __init__(self, target: Any, shape: tuple[int, ...]) -> None:
        self.target = np.asarray(target, dtype=np.float64)
        self.shape = tuple(int(s) for s in shape)
        self._rows: dict[int, np.ndarray] = {}
        self._freqs: np.ndarray | None = None

    def add(self, predictions: Mapping[int, Any]) -> None:
        """Compute the rows of ``predictions`` (step → (N, C) on the grid), replacing any
        already held for those steps."""
        if not predictions:
            return
        steps = list(predictions)
        preds = np.stack([np.asarray(predictions[s], dtype=np.float64) for s in steps])
        spec = residual_history(preds, self.target, self.shape)
        self._freqs = spec.freqs
        self._rows.update(zip(steps, spec.power))

    def from_source(self, source: Any, step: int) -> tuple[list[int], Spectrum | None]:
        """Rows of every snapshot of ``source`` up to ``step`` (those not held yet are
        computed now): (steps, Spectrum with power (steps, k))."""
        steps = [s for s in source.steps if s <= step]
        missing = {s: source.at(s).predictions for s in steps if s not in self._rows}
        self.add({s: p for s, p in missing.items() if p is not None})
        return self.until(step)

    def until(self, step: int | None = None) -> tuple[list[int], Spectrum | None]:
        """The rows held up to ``step`` (all when None), in step order."""
        steps = sorted(s for s in self._rows if step is None or s <= step)
        if not steps or self._freqs is None:
            return [], None
        power = np.stack([self._rows[s] for s in steps])
        return steps, Spectrum(self._freqs, power, "residual")
