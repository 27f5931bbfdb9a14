"""Geometry measures per layer (and per training step) as one tidy DataFrame.

``geometry_profile({"layer": acts, ...})`` → columns ``layer, [step], metric, value``. Activations
may be (n, d), (B, T, d) hidden states (flattened to tokens) or (B, C, H, W) feature maps
(flattened per sample). kNN-based measures use a seeded subsample of ``max_points`` rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from explorer.analysis.frames import tidy
from explorer.analysis.geometry import collapse, dimension, spectrum
from explorer.device import DeviceLike, as_numpy
from explorer.errors import ExplorerWarning

__all__ = ["METRICS", "as_points", "geometry_over_training", "geometry_profile"]


def as_points(a: Any) -> np.ndarray:
    """Activations → (n, d) float numpy: tokens for 3-D, flattened samples for ≥ 4-D."""
    arr = as_numpy(a)
    if arr.ndim == 1:
        return arr.reshape(-1, 1)
    if arr.ndim == 3:
        return arr.reshape(-1, arr.shape[-1])
    if arr.ndim >= 4:
        return arr.reshape(arr.shape[0], -1)
    return arr


_Measure = Callable[[np.ndarray, Any, int, DeviceLike], float]


def _nc(key: str) -> _Measure:
    return lambda x, y, k, dev: collapse.neural_collapse(x, y)[key]


METRICS: dict[str, tuple[bool, _Measure]] = {
    # name: (needs labels, fn(x, labels, k, device))
    "twonn": (False, lambda x, y, k, dev: dimension.twonn(x, device=dev)),
    "mle": (False, lambda x, y, k, dev: dimension.mle_id(x, k, device=dev)),
    "local_pca": (False, lambda x, y, k, dev: dimension.local_pca_id(x, k, device=dev)),
    "effective_rank": (False, lambda x, y, k, dev: spectrum.effective_rank(x, device=dev)),
    "participation_ratio": (
        False,
        lambda x, y, k, dev: spectrum.participation_ratio(x, device=dev),
    ),
    "rank_me": (False, lambda x, y, k, dev: spectrum.rank_me(x, device=dev)),
    "stable_rank": (False, lambda x, y, k, dev: spectrum.stable_rank(x, device=dev)),
    "vne": (False, lambda x, y, k, dev: spectrum.von_neumann_entropy(x, device=dev)),
    "eigen_decay": (False, lambda x, y, k, dev: spectrum.eigen_decay(x, device=dev)),
    "coding_rate": (False, lambda x, y, k, dev: spectrum.coding_rate(x, device=dev)),
    "rate_reduction": (True, lambda x, y, k, dev: spectrum.rate_reduction(x, y, device=dev)),
    "NC1": (True, _nc("NC1")),
    "NC2_equinorm": (True, _nc("NC2_equinorm")),
    "NC2_equiangular": (True, _nc("NC2_equiangular")),
    "mean_cos": (True, _nc("mean_cos")),
}
DEFAULT_METRICS = ("twonn", "mle", "effective_rank", "participation_ratio")


def geometry_profile(
    activations: Mapping[str, Any],
    *,
    metrics: Sequence[str] | None = None,
    labels: Any = None,
    k: int = 20,
    max_points: int = 5000,
    seed: int = 0,
    step: int | None = None,
    device: DeviceLike = "auto",
) -> pd.DataFrame:
    """Tidy frame (layer, [step], metric, value) of ``metrics`` for each activation array.

    Default metrics: TwoNN, MLE, effective rank, participation ratio, plus NC1 and
    NC2_equiangular when ``labels`` (one per row after flattening) are given. Exact duplicate
    rows are dropped by the kNN estimators; their fraction is reported as ``duplicate_fraction``
    instead of a warning per layer. A measure that is undefined for a layer gives NaN.
    """
    names = (
        list(metrics)
        if metrics is not None
        else [*DEFAULT_METRICS, *(("NC1", "NC2_equiangular") if labels is not None else ())]
    )
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    if labels is None and any(METRICS[m][0] for m in names):
        raise ValueError(f"metrics {[m for m in names if METRICS[m][0]]} need labels=")
    y_all = None if labels is None else as_numpy(labels).ravel()
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []
    extra = {} if step is None else {"step": step}
    for layer, acts in activations.items():
        x = as_points(acts)
        if y_all is not None and len(y_all) != len(x):
            raise ValueError(
                f"labels has {len(y_all)} entries but layer {layer!r} has {len(x)} rows"
            )
        rows = np.arange(len(x))
        if len(x) > max_points:
            rows = np.sort(rng.choice(len(x), max_points, replace=False))
        xs, ys = x[rows], None if y_all is None else y_all[rows]
        dup = 1.0 - len(np.unique(xs, axis=0)) / len(xs)
        records.append({"layer": layer, **extra, "metric": "duplicate_fraction", "value": dup})
        for name in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExplorerWarning)
                try:
                    value = METRICS[name][1](xs, ys, k, device)
                except ValueError:
                    value = float("nan")
            records.append({"layer": layer, **extra, "metric": name, "value": float(value)})
    return tidy(records)


def geometry_over_training(
    snapshots: Iterable[tuple[int, Mapping[str, Any]]], **kwargs: Any
) -> pd.DataFrame:
    """:func:`geometry_profile` for each (step, activations) pair, concatenated with ``step``."""
    frames = [geometry_profile(acts, step=step, **kwargs) for step, acts in snapshots]
    if not frames:
        raise ValueError("no snapshots given")
    return pd.concat(frames, ignore_index=True)
