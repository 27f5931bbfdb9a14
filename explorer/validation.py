"""Checks at public boundaries: fail early with a message that says what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explorer.device import ArrayLike

__all__ = ["check_finite", "check_matrix", "check_paired", "check_positive_int"]


def _shape(x: ArrayLike) -> tuple[int, ...]:
    return tuple(x.shape)


def check_finite(x: ArrayLike, name: str = "input") -> None:
    """Raise ValueError if ``x`` holds NaN or inf, saying how many and where the first is."""
    bad = ~torch.isfinite(x) if isinstance(x, torch.Tensor) else ~np.isfinite(x)
    n_bad = int(bad.sum())
    if n_bad:
        idx = np.unravel_index(int(bad.reshape(-1).nonzero()[0][0]), _shape(x))
        raise ValueError(
            f"{name} contains {n_bad} non-finite value(s) (NaN or inf), first at index "
            f"{tuple(int(i) for i in idx)}; remove or impute them before calling this."
        )


def check_matrix(
    x: Any, name: str = "X", *, min_rows: int = 1, min_cols: int = 1, finite: bool = True
) -> ArrayLike:
    """Validate an (n, d) matrix (rows are samples). Returns it as numpy or torch, unchanged.

    Lists are converted to numpy. 1-D input is rejected with a hint to reshape.
    """
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        x = np.asarray(x)
    if x.ndim != 2:
        hint = " (use x.reshape(-1, 1) for one feature)" if x.ndim == 1 else ""
        hint = hint or " (flatten or pool extra axes first, e.g. x.reshape(len(x), -1))"
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {_shape(x)}{hint}")
    if isinstance(x, np.ndarray) and not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
    n, d = _shape(x)
    if n < min_rows:
        raise ValueError(f"{name} has {n} rows (samples); this needs at least {min_rows}")
    if d < min_cols:
        raise ValueError(f"{name} has {d} columns (features); this needs at least {min_cols}")
    if finite:
        check_finite(x, name)
    return x


def check_paired(x: ArrayLike, y: ArrayLike, names: tuple[str, str] = ("X", "Y")) -> None:
    """Raise ValueError unless ``x`` and ``y`` have the same number of rows (paired samples)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of rows (paired samples), got "
            f"{x.shape[0]} and {y.shape[0]}"
        )


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer ≥ ``minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
