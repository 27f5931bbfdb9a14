"""The one registry entry type: every lens's ``METRICS`` is a ``dict[str, Metric]``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Metric"]


@dataclass(frozen=True)
class Metric:
    """A named measure, as the labs list and draw it.

    ``label``: what a figure shows, with the variant named. ``fn``: computes one value (the
    signature is the lens's: ``fn(x, y, **options)`` for alignment, ``fn(x, labels, k, device)``
    for geometry); ``None`` when the lens computes its metrics together (attention head
    statistics). ``bounds``: colour-scale range, ``None`` for the data's range. For pairwise
    measures, ``similarity`` (higher = more alike; ``False`` for a distance) and ``symmetric``.
    ``needs_labels``: needs class labels.
    """

    label: str
    fn: Callable[..., float] | None = None
    bounds: tuple[float, float] | None = None
    similarity: bool = True
    symmetric: bool = True
    needs_labels: bool = False
