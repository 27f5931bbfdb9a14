"""Input helpers shared by the geometry measures: coercion to (n, d) and duplicate removal."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from explorer.device import ArrayLike
from explorer.errors import ExplorerWarning
from explorer.validation import check_matrix, rescale

__all__ = ["flatten_tokens", "unique_points"]


def flatten_tokens(x: Any, name: str = "x") -> ArrayLike:
    """(n, d) stays; (B, T, d) hidden states become (B·T, d); anything else is an error."""
    if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 3:
        return x.reshape(-1, x.shape[-1])
    return check_matrix(x, name, finite=False)


def unique_points(x: ArrayLike, name: str = "x", *, min_rows: int = 2) -> ArrayLike:
    """Validate ``x`` (n, d) and drop exact duplicate rows (warning how many were dropped).

    kNN-ratio estimators (TwoNN, MLE) are undefined at zero distance; duplicates are removed
    rather than producing NaN/inf. Row order of the survivors is kept. The estimators are
    scale-free, so values of any magnitude are first brought to order 1 by an exact power of
    two (:func:`explorer.validation.rescale`).
    """
    x, _ = rescale(check_matrix(x, name, min_rows=min_rows))
    if isinstance(x, torch.Tensor):
        _, inverse = torch.unique(x, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(x), device=x.device, dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(x), device=x.device), "amin")
        keep: Any = torch.sort(first).values
        n_unique = len(keep)
    else:
        keep = _first_of_each_row(np.asarray(x))
        n_unique = len(keep)
    dropped = len(x) - n_unique
    if dropped:
        warnings.warn(
            f"{name} has {dropped} duplicate row(s); they were dropped ({n_unique} unique points "
            "remain) because distance ratios are undefined at distance 0",
            ExplorerWarning,
            stacklevel=3,
        )
        x = x[keep]
    if len(x) < min_rows:
        raise ValueError(f"{name} has {n_unique} unique point(s); this needs at least {min_rows}")
    return x


def _first_of_each_row(x: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct row of x (n, d).

    Rows are hashed first (a wrapping integer sum of their bit patterns times fixed odd
    multipliers; −0.0 is turned into 0.0 so equal rows hash equally); only when two hashes
    collide is the exact (sorting) comparison run, so the common case is one cheap pass.
    """
    rows = np.ascontiguousarray(x + 0.0)
    bits = rows.view(f"u{rows.itemsize}").astype(np.uint64)
    multipliers = np.random.default_rng(0).integers(1, 2**62, size=rows.shape[1], dtype=np.uint64)
    hashes = (bits * (multipliers | np.uint64(1))).sum(axis=1, dtype=np.uint64)
    if len(np.unique(hashes)) == len(hashes):
        return np.arange(len(x))
    _, keep = np.unique(x, axis=0, return_index=True)
    return np.sort(keep)
