"""Probe inputs on which snapshots record predictions: a grid over a 2-D input plane, the full
coordinate grid of a signal/image, a few test sequences, or a subset of test points."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from explorer.device import as_torch
from explorer.train.config import TaskLike
from explorer.validation import check_positive_int

__all__ = ["Probe", "default_probe"]


@dataclass(frozen=True)
class Probe:
    """Inputs to predict on, and how to lay the predictions out.

    ``kind``: ``"surface"`` (inputs (res², 2) on a grid, ``shape`` (res, res) with rows along
    the second input coordinate and columns along the first, ``extent`` (x0, x1, y0, y1)),
    ``"field"`` (the task's full coordinate grid; ``shape`` the signal/image shape,
    ``target`` (N, C)), ``"sequence"`` (a few token sequences (B, T), ``target`` (B, T)), or
    ``"points"`` (a subset of test inputs, ``target`` their labels).
    """

    kind: str
    inputs: torch.Tensor
    shape: tuple[int, ...] = ()
    extent: tuple[float, float, float, float] | None = None
    target: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _surface(task: TaskLike, resolution: int, margin: float) -> Probe:
    pts = torch.cat([as_torch(task.x_train), as_torch(task.x_test)]).float()
    lo, hi = pts.min(0).values, pts.max(0).values
    pad = (hi - lo).clamp_min(1e-6) * margin
    lo, hi = lo - pad, hi + pad
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    inputs = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    return Probe("surface", inputs, (resolution, resolution), extent)


def default_probe(
    task: TaskLike,
    *,
    resolution: int = 64,
    n_sequences: int = 2,
    n_points: int = 256,
    margin: float = 0.1,
) -> Probe:
    """The natural probe for ``task`` (see :class:`Probe`); sizes are keyword arguments."""
    check_positive_int(resolution, "resolution", minimum=2)
    meta = getattr(task, "meta", None) or {}
    x_test = as_torch(task.x_test)
    if task.kind in ("signal", "image", "regression") and "x_grid" in meta:
        shape = tuple(int(s) for s in meta.get("shape", (len(meta["x_grid"]),)))
        return Probe(
            "field",
            as_torch(meta["x_grid"]).float(),
            shape,
            target=as_torch(meta["y_grid"]).float(),
        )
    x = as_torch(task.x_train)
    if task.kind == "classification" and x.ndim == 2 and x.shape[1] == 2:
        return _surface(task, resolution, margin)
    if task.kind == "sequence":
        src, tgt = (x_test, as_torch(task.y_test)) if len(x_test) else (x, as_torch(task.y_train))
        return Probe(
            "sequence", src[:n_sequences].long(), tuple(src.shape[1:]), target=tgt[:n_sequences]
        )
    src, tgt = (x_test, as_torch(task.y_test)) if len(x_test) else (x, as_torch(task.y_train))
    return Probe("points", src[:n_points], tuple(src.shape[1:]), target=tgt[:n_points])
