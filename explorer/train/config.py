"""Training configuration and the task shape the trainer expects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from explorer.validation import check_number

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

    Divergence (see :class:`~explorer.train.Trainer`): a step stops when its loss exceeds
    ``explode_loss`` × the larger of the first loss and the largest of the last
    ``explode_window`` accepted losses, or its gradient norm exceeds both ``explode_grad`` ×
    the median of the last ``explode_window`` norms and the first step's norm (from 10 steps on,
    and only without ``grad_clip``). ``None`` turns a check off;
    non-finite values always stop. The defaults (100×, 1000×, 50 steps) never fired on healthy
    runs of the tutorial tasks and stop SGD and Adam at lr = 1e3 within a few steps.
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
    explode_loss: float | None = 100.0
    explode_grad: float | None = 1000.0
    explode_window: int = 50

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.loss is not None and self.loss not in LOSSES:
            raise ValueError(
                f"loss must be one of {LOSSES} or None (from the task), got {self.loss!r}"
            )
        check_number(self.lr, "lr", low=0.0, low_open=True)
        check_number(self.weight_decay, "weight_decay", low=0.0)
        check_number(self.momentum, "momentum", low=0.0, high=1.0, high_open=True)
        for name in ("explode_loss", "explode_grad"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name, low=1.0, low_open=True)
        if not isinstance(self.device, str):
            raise TypeError(
                f"device must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}"
            )
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer or None (full batch), got {self.batch_size!r}"
            )
        if self.grad_clip is not None:
            check_number(self.grad_clip, "grad_clip", low=0.0, low_open=True)
        if self.eval_samples is not None and (
            isinstance(self.eval_samples, bool)
            or not isinstance(self.eval_samples, int)
            or self.eval_samples < 1
        ):
            raise ValueError(
                f"eval_samples must be a positive integer or None (all), got {self.eval_samples!r}"
            )
        for name in ("total_steps", "eval_every", "explode_window"):
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
