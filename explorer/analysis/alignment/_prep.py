"""Input preparation shared by every alignment measure: validation, pooling, dtype and device."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from explorer.analysis.pooling import Pool, pool_features
from explorer.device import (
    ArrayLike,
    DeviceLike,
    as_numpy,
    as_torch,
    backend_for,
    resolve_device,
)
from explorer.kernels import alignment as kernels
from explorer.validation import check_finite, check_matrix, check_paired, rescale

__all__ = ["layer_representations", "prepare", "prepare_many"]


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
    return {k: pool_features(activations[k], pool, name=str(k)) for k in keys}


def _float(x: ArrayLike) -> ArrayLike:
    """float32 stays float32, float64 stays float64, anything else becomes float64."""
    if isinstance(x, torch.Tensor):
        return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


_SCAN_VIEWS = {
    np.dtype(np.float32): (np.int32, 0x7FFF_FFFF, 0x7F80_0000),
    np.dtype(np.float64): (np.int64, 0x7FFF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000),
}  # dtype → (integer view, mask of all but the sign bit, bits of +inf)


def _scannable(x: Any) -> bool:
    """An (n, d) float32/float64 C-contiguous numpy array (:func:`_checked_peak` reads it)."""
    return (
        isinstance(x, np.ndarray)
        and x.ndim == 2
        and x.dtype in _SCAN_VIEWS
        and bool(x.flags.c_contiguous)
    )


def _checked_peak(x: np.ndarray, name: str) -> float:
    """max |x| of a :func:`_scannable` array, in one pass over its bits
    (:func:`explorer.kernels.alignment.abs_max_bits`); NaN or inf raise as in
    :func:`~explorer.validation.check_finite` (how many, where the first is)."""
    ints, mask, inf_bits = _SCAN_VIEWS[x.dtype]
    bits = kernels.abs_max_bits(x.reshape(-1).view(ints), mask)
    if bits >= inf_bits:
        check_finite(x, name)  # raises
    return float(np.array(bits, dtype=ints).view(x.dtype))


def prepare(
    x: Any,
    name: str = "X",
    *,
    min_rows: int = 2,
    device: DeviceLike = "auto",
    pool: Pool = "mean",
    scale_free: bool = True,
) -> ArrayLike:
    """Validate one representation; return it as float numpy (CPU) or torch (CUDA).

    Conv maps / token sequences are reduced with ``pool`` first (see :func:`pool_features`).
    With ``scale_free`` (the alignment measures are invariant to the scale of each side),
    values beyond about 1e±100 are brought to order 1 by an exact power-of-two factor
    (:func:`explorer.validation.rescale`), so no sum of squares overflows.
    """
    scan = _scannable(x) and backend_for(device, x) == "numba"
    pooled = pool_features(x, pool, name=name, finite=not scan)  # checks that x is finite
    x = check_matrix(pooled, name, min_rows=min_rows, finite=pooled is not x)
    if scan:  # one pass checks it and finds its peak, not three numpy passes
        peak = _checked_peak(x, name)
        return rescale(x, peak=peak)[0] if scale_free else x
    if backend_for(device, x) == "torch":  # CUDA (or the torch path forced on the CPU)
        x = _float(as_torch(x, resolve_device(device, x)))
    else:
        x = _float(as_numpy(x))
    return rescale(x)[0] if scale_free else x


def prepare_many(
    reps: Any,
    name: str = "reps",
    *,
    min_rows: int = 2,
    device: DeviceLike = "auto",
    pool: Pool = "mean",
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
