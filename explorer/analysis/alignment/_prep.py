"""Input preparation shared by every alignment measure: validation, pooling, dtype and device."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import numpy as np
import torch

from explorer.device import ArrayLike, DeviceLike, as_numpy, as_torch, resolve_device
from explorer.validation import check_matrix, check_paired

__all__ = ["Pool", "layer_representations", "pool_features", "prepare", "prepare_many"]

Pool: TypeAlias = Literal["flatten", "mean", "max", "cls", "last"]
_POOLS = ("flatten", "mean", "max", "cls", "last")


def pool_features(x: Any, pool: Pool = "flatten") -> ArrayLike:
    """Reduce an activation tensor to an (n, d) representation, rows = samples.

    (n, d) is returned unchanged. (n, C, H, W) conv maps: ``flatten`` → (n, C·H·W), ``mean`` /
    ``max`` over the spatial axes → (n, C). (n, T, d) token sequences: ``flatten`` → (n, T·d),
    ``mean`` / ``max`` over tokens, ``cls`` = token 0, ``last`` = token T−1 → (n, d).
    """
    if pool not in _POOLS:
        raise ValueError(f"pool must be one of {_POOLS}, got {pool!r}")
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        x = np.asarray(x)
    if x.ndim <= 2:
        return x
    if pool == "flatten":
        return x.reshape(x.shape[0], -1)
    if x.ndim == 3:  # (n, T, d)
        if pool == "cls":
            return x[:, 0]
        if pool == "last":
            return x[:, -1]
        axes: tuple[int, ...] = (1,)
    elif pool in ("cls", "last"):
        raise ValueError(
            f"pool={pool!r} applies to (n, T, d) token sequences, got shape {tuple(x.shape)}"
        )
    else:  # (n, C, *spatial)
        axes = tuple(range(2, x.ndim))
    if isinstance(x, torch.Tensor):
        return x.mean(dim=axes) if pool == "mean" else x.amax(dim=axes)
    return x.mean(axis=axes) if pool == "mean" else x.max(axis=axes)


def layer_representations(
    activations: Mapping[str, Any], names: Iterable[str] | None = None, *, pool: Pool = "mean"
) -> dict[str, ArrayLike]:
    """Name → (n, d) representation from a capture (``ActivationCache``) or any mapping.

    ``names`` selects and orders layers (default: the mapping's order); see :func:`pool_features`.
    """
    keys = list(activations) if names is None else list(names)
    missing = [k for k in keys if k not in activations]
    if missing:
        raise KeyError(f"layers {missing} not found; available: {list(activations)[:20]}")
    return {k: pool_features(activations[k], pool) for k in keys}


def _float(x: ArrayLike) -> ArrayLike:
    """float32 stays float32, float64 stays float64, anything else becomes float64."""
    if isinstance(x, torch.Tensor):
        return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def prepare(
    x: Any,
    name: str = "X",
    *,
    min_rows: int = 2,
    device: DeviceLike = "auto",
    pool: Pool = "flatten",
) -> ArrayLike:
    """Validate one representation; return it as float numpy (CPU) or torch (CUDA).

    Conv maps / token sequences are reduced with ``pool`` first (see :func:`pool_features`).
    """
    x = pool_features(x, pool)
    x = check_matrix(x, name, min_rows=min_rows)
    if resolve_device(device, x).type == "cuda":
        return _float(as_torch(x, resolve_device(device, x)))
    return _float(as_numpy(x))


def prepare_many(
    reps: Any,
    name: str = "reps",
    *,
    min_rows: int = 2,
    device: DeviceLike = "auto",
    pool: Pool = "flatten",
) -> tuple[list[str], list[ArrayLike]]:
    """A mapping name → array, or a sequence of arrays → (labels, prepared arrays), all paired."""
    if isinstance(reps, Mapping):
        labels, arrays = [str(k) for k in reps], list(reps.values())
    elif isinstance(reps, (np.ndarray, torch.Tensor)) and reps.ndim == 2:
        raise TypeError(f"{name} must be a list or mapping of (n, d) arrays, got one array")
    else:
        arrays = list(reps)
        labels = [str(i) for i in range(len(arrays))]
    if not arrays:
        raise ValueError(f"{name} is empty: pass at least one (n, d) representation")
    out = [
        prepare(a, f"{name}[{lab!r}]", min_rows=min_rows, device=device, pool=pool)
        for lab, a in zip(labels, arrays)
    ]
    for lab, a in zip(labels[1:], out[1:]):
        check_paired(out[0], a, (f"{name}[{labels[0]!r}]", f"{name}[{lab!r}]"))
    return labels, out
