"""The :class:`Task` container every generator returns, and helpers shared by the generators."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explorer.validation import check_positive_int

__all__ = ["IGNORE_INDEX", "KINDS", "Task"]

KINDS = ("classification", "regression", "signal", "image", "sequence")
IGNORE_INDEX = -100  # sequence targets that are not scored (torch cross_entropy's default)


@dataclass
class Task:
    """Train/test tensors plus metadata; rows are samples.

    ``meta`` always holds ``loss`` ("ce" or "mse") and ``seed``; classification tasks add
    ``n_classes``; sequence tasks ``vocab`` (display strings), ``vocab_size``, ``seq_len`` and
    ``ignore_index``; signal/image tasks ``shape`` and the full grid ``x_grid``/``y_grid``.
    """

    name: str
    kind: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Task.kind must be one of {KINDS}, got {self.kind!r}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"x_{split} and y_{split} must have the same number of rows, got "
                    f"{x.shape[0]} and {y.shape[0]}"
                )

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def batches(
        self, batch_size: int, *, split: str = "train", shuffle: bool = True, seed: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(x, y)`` mini-batches (the last may be smaller)."""
        check_positive_int(batch_size, "batch_size")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        n = x.shape[0]
        order = (
            torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            if shuffle
            else torch.arange(n)
        )
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]

    def __repr__(self) -> str:
        shapes = f"x_train={tuple(self.x_train.shape)}, x_test={tuple(self.x_test.shape)}"
        keys = [k for k in self.meta if not k.endswith("_grid")]
        return f"Task({self.name!r}, {self.kind}, {shapes}, meta keys={keys})"


def rng(seed: int) -> np.random.Generator:
    """The numpy generator every task draws from (one seed → one dataset)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def check_fraction(value: float, name: str, *, allow_zero: bool = False) -> float:
    """A fraction strictly inside (0, 1) (or [0, 1) with ``allow_zero``)."""
    ok = (0.0 <= value < 1.0) if allow_zero else (0.0 < value < 1.0)
    if not ok:
        bounds = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must lie in {bounds}, got {value!r}")
    return float(value)


def split_rows(
    x: np.ndarray, y: np.ndarray, test_fraction: float, gen: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffle rows and split into train/test tensors (float inputs → float32)."""
    check_fraction(test_fraction, "test_fraction", allow_zero=True)
    order = gen.permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]

    def t(a: np.ndarray) -> torch.Tensor:
        a = np.ascontiguousarray(a)
        return torch.from_numpy(a.astype(np.float32) if a.dtype.kind == "f" else a)

    return t(x[train]), t(y[train]), t(x[test]), t(y[test])
