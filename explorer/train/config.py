"""Training configuration and the task shape the trainer expects."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

__all__ = ["OPTIMIZERS", "SCHEDULES", "TaskLike", "TrainConfig"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear", "step")
LOSSES = ("ce", "mse")


class TaskLike(Protocol):
    """What the trainer reads from a task (``explorer.data.Task`` satisfies it).

    ``x_*``/``y_*`` are arrays or tensors with samples on axis 0; ``kind`` is one of
    classification|regression|signal|image|sequence; ``meta`` may hold ``loss`` ("ce"|"mse").
    """

    name: str
    kind: str
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    meta: dict[str, Any]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run besides the model and the task.

    ``batch_size=None`` trains full batch. ``schedule`` scales ``lr`` over ``total_steps``
    (after ``warmup_steps`` of linear warm-up); ``"step"`` divides it by 10 at 50% and 75%.
    ``grad_clip`` bounds the global gradient L2 norm. Train/test metrics are computed every
    ``eval_every`` steps. ``loss=None`` takes it from the task (``meta["loss"]``, else
    ``"ce"`` for classification/sequence tasks and ``"mse"`` otherwise).
    """

    optimizer: str = "adam"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int | None = None
    schedule: str = "constant"
    total_steps: int = 1000
    warmup_steps: int = 0
    grad_clip: float | None = None
    eval_every: int = 10
    eval_samples: int | None = 1024
    seed: int = 0
    device: str = "auto"
    loss: str | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.loss is not None and self.loss not in LOSSES:
            raise ValueError(
                f"loss must be one of {LOSSES} or None (from the task), got {self.loss!r}"
            )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer or None (full batch), got {self.batch_size!r}"
            )
        if self.grad_clip is not None and not (
            math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if self.eval_samples is not None and (
            isinstance(self.eval_samples, bool)
            or not isinstance(self.eval_samples, int)
            or self.eval_samples < 1
        ):
            raise ValueError(
                f"eval_samples must be a positive integer or None (all), got {self.eval_samples!r}"
            )
        for name in ("total_steps", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
