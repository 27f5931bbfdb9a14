"""One pooling convention for every lens: how (n, T, d) token sequences and (n, C, *spatial)
feature maps become an (n, d) matrix whose rows are samples (or, with ``"tokens"``, points)."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
import torch

from explorer.device import ArrayLike
from explorer.validation import check_array

__all__ = ["POOLS", "Pool", "pool_features"]

Pool: TypeAlias = Literal["mean", "max", "cls", "last", "flatten", "tokens"]
POOLS: tuple[str, ...] = ("mean", "max", "cls", "last", "flatten", "tokens")


def pool_features(
    x: Any, pool: Pool = "mean", *, name: str = "x", finite: bool = True
) -> ArrayLike:
    """Reduce activations to a 2-D matrix; numpy stays numpy, torch stays torch (same device).

    ``x`` must hold real numbers, finite unless ``finite=False`` (the caller checks); ``name``
    is what error messages call it.

    (n, d) and (n,) are returned unchanged. (n, T, d) token sequences: ``"mean"`` / ``"max"``
    over tokens, ``"cls"`` = token 0, ``"last"`` = token T−1 → (n, d); ``"flatten"`` → (n, T·d);
    ``"tokens"`` → (n·T, d), every token a row. (n, C, *spatial) maps: ``"mean"`` / ``"max"``
    over the spatial axes → (n, C); ``"flatten"`` → (n, C·H·W); ``"tokens"`` → (n·H·W, C),
    every position a row; ``"cls"``/``"last"`` are errors.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    x = check_array(x, name, finite=finite)
    if x.ndim <= 2:
        return x
    if pool == "flatten":
        return x.reshape(x.shape[0], -1)
    if x.ndim == 3:  # (n, T, d)
        if pool == "tokens":
            return x.reshape(-1, x.shape[-1])
        if pool == "cls":
            return x[:, 0]
        if pool == "last":
            return x[:, -1]
        axes: tuple[int, ...] = (1,)
    elif pool in ("cls", "last"):
        raise ValueError(
            f"pool={pool!r} applies to (n, T, d) token sequences, got shape {tuple(x.shape)}"
        )
    elif pool == "tokens":  # (n, C, *spatial) → (n·H·W, C)
        moved = x.movedim(1, -1) if isinstance(x, torch.Tensor) else np.moveaxis(x, 1, -1)
        return moved.reshape(-1, x.shape[1])
    else:  # (n, C, *spatial)
        axes = tuple(range(2, x.ndim))
    if isinstance(x, torch.Tensor):
        return x.mean(dim=axes) if pool == "mean" else x.amax(dim=axes)
    return x.mean(axis=axes) if pool == "mean" else x.max(axis=axes)
