"""Geometry measures per layer (and per training step) as one tidy DataFrame.

``geometry_profile({"layer": acts, ...})`` → columns ``layer, [step], metric, value``. Activations
may be (n, d), or (B, T, d) hidden states and (B, C, H, W) feature maps reduced by ``pool``
(default ``"mean"``; ``"tokens"`` makes every token a point). kNN-based measures use a seeded
subsample of ``max_points`` rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from explorer.analysis.geometry import collapse, dimension, spectrum
from explorer.analysis.metric import Metric
from explorer.analysis.pooling import Pool, pool_features
from explorer.device import DeviceLike, as_numpy, resolve_device
from explorer.errors import ExplorerWarning, warn_deprecated
from explorer.frames import tidy
from explorer.validation import check_labels, check_matrix, check_positive_int, check_seed

__all__ = ["METRICS", "geometry_over_training", "geometry_profile"]


def as_points(a: Any) -> np.ndarray:
    """Deprecated: use :func:`explorer.analysis.pool_features` with an explicit ``pool``
    (``"tokens"`` for (B, T, d) hidden states, ``"flatten"`` for (B, C, H, W) maps)."""
    warn_deprecated(
        "explorer.analysis.geometry.as_points(a)",
        'explorer.analysis.pool_features(a, "tokens") (3-D) or (a, "flatten") (4-D and more)',
    )
    arr = as_numpy(a)
    if arr.ndim == 1:
        return arr.reshape(-1, 1)
    return as_numpy(pool_features(arr, "tokens" if arr.ndim == 3 else "flatten"))


_Measure = Callable[[np.ndarray, Any, int, DeviceLike], float]


def _nc(key: str) -> _Measure:
    return lambda x, y, k, dev: collapse.neural_collapse(x, y)[key]


METRICS: dict[str, Metric] = {  # fn(x, labels, k, device) → float
    "twonn": Metric(
        "TwoNN intrinsic dimension", lambda x, y, k, dev: dimension.twonn(x, device=dev)
    ),
    "mle": Metric(
        "MLE intrinsic dimension (k)", lambda x, y, k, dev: dimension.mle_id(x, k, device=dev)
    ),
    "local_pca": Metric(
        "local PCA dimension (k)", lambda x, y, k, dev: dimension.local_pca_id(x, k, device=dev)
    ),
    "effective_rank": Metric(
        "effective rank (σ)", lambda x, y, k, dev: spectrum.effective_rank(x, device=dev)
    ),
    "participation_ratio": Metric(
        "participation ratio", lambda x, y, k, dev: spectrum.participation_ratio(x, device=dev)
    ),
    "rank_me": Metric("RankMe", lambda x, y, k, dev: spectrum.rank_me(x, device=dev)),
    "stable_rank": Metric("stable rank", lambda x, y, k, dev: spectrum.stable_rank(x, device=dev)),
    "vne": Metric(
        "von Neumann entropy", lambda x, y, k, dev: spectrum.von_neumann_entropy(x, device=dev)
    ),
    "eigen_decay": Metric(
        "eigenvalue decay α", lambda x, y, k, dev: spectrum.eigen_decay(x, device=dev)
    ),
    "coding_rate": Metric(
        "coding rate (nats)", lambda x, y, k, dev: spectrum.coding_rate(x, device=dev)
    ),
    "rate_reduction": Metric(
        "rate reduction ΔR (nats)",
        lambda x, y, k, dev: spectrum.rate_reduction(x, y, device=dev),
        needs_labels=True,
    ),
    "NC1": Metric("NC1 tr(Σ_W Σ_B⁺)/C", _nc("NC1"), needs_labels=True),
    "NC2_equinorm": Metric("NC2 equinorm (CoV)", _nc("NC2_equinorm"), needs_labels=True),
    "NC2_equiangular": Metric("NC2 equiangularity", _nc("NC2_equiangular"), needs_labels=True),
    "mean_cos": Metric("mean class-mean cosine", _nc("mean_cos"), needs_labels=True),
}
DEFAULT_METRICS = ("twonn", "mle", "effective_rank", "participation_ratio")


def _points(a: Any, pool: Pool, name: str) -> np.ndarray:
    arr = as_numpy(pool_features(a, pool, name=name))
    return as_numpy(check_matrix(arr.reshape(-1, 1) if arr.ndim == 1 else arr, name, min_rows=2))


def geometry_profile(
    activations: Mapping[str, Any],
    *,
    metrics: Sequence[str] | None = None,
    labels: Any = None,
    k: int = 20,
    max_points: int = 5000,
    seed: int | None = 0,
    step: int | None = None,
    pool: Pool = "mean",
    device: DeviceLike = "auto",
) -> pd.DataFrame:
    """Tidy frame (layer, [step], metric, value) of ``metrics`` for each activation array.

    ``pool`` reduces (B, T, d) and (B, C, H, W) activations (see
    :func:`explorer.analysis.pool_features`; ``"tokens"``: every token a point).
    Default metrics: TwoNN, MLE, effective rank, participation ratio, plus NC1 and
    NC2_equiangular when ``labels`` (one per row after flattening) are given. Exact duplicate
    rows are dropped by the kNN estimators; their fraction is reported as ``duplicate_fraction``
    instead of a warning per layer. A measure that is undefined for a layer (too few unique
    points, a constant layer, …) gives NaN, and one :class:`ExplorerWarning` lists them all.
    """
    names = (
        list(metrics)
        if metrics is not None
        else [*DEFAULT_METRICS, *(("NC1", "NC2_equiangular") if labels is not None else ())]
    )
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    if labels is None and any(METRICS[m].needs_labels for m in names):
        need = [m for m in names if METRICS[m].needs_labels]
        raise ValueError(f"metrics {need} need labels=")
    k = check_positive_int(k, "k", minimum=2)
    max_points = check_positive_int(max_points, "max_points", minimum=3)
    if step is not None:
        step = check_positive_int(step, "step", minimum=0)
    resolve_device(device)
    rng = np.random.default_rng(check_seed(seed))
    records: list[dict[str, Any]] = []
    undefined: list[str] = []
    extra = {} if step is None else {"step": step}
    for layer, acts in activations.items():
        x = _points(acts, pool, f"activations[{layer!r}]")
        y_all = (
            None if labels is None else check_labels(labels, len(x), f"labels (layer {layer!r})")
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
                    fn = METRICS[name].fn
                    assert fn is not None  # every geometry metric computes one value
                    value = fn(xs, ys, k, device)
                except ValueError as err:
                    value = float("nan")
                    undefined.append(f"{name} of {layer!r} ({err})")
            records.append({"layer": layer, **extra, "metric": name, "value": float(value)})
    if undefined:
        warnings.warn(
            f"{len(undefined)} measure(s) are undefined and NaN: " + "; ".join(undefined[:5]),
            ExplorerWarning,
            stacklevel=2,
        )
    return tidy(records)


def geometry_over_training(
    snapshots: Iterable[tuple[int, Mapping[str, Any]]], **kwargs: Any
) -> pd.DataFrame:
    """:func:`geometry_profile` for each (step, activations) pair, concatenated with ``step``."""
    frames = [geometry_profile(acts, step=step, **kwargs) for step, acts in snapshots]
    if not frames:
        raise ValueError("no snapshots given")
    return pd.concat(frames, ignore_index=True)
