"""Intrinsic dimension: TwoNN, MLE (Levina–Bickel), local PCA, and per-point (local) ID.

All estimators use exact neighbours from :func:`~explorer.analysis.geometry.knn` and drop
duplicate rows first (with an :class:`~explorer.errors.ExplorerWarning`): distance ratios are
undefined at distance 0, which is where other tools return NaN.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from explorer.analysis.geometry._points import unique_points
from explorer.analysis.geometry.neighbors import knn
from explorer.device import DeviceLike, as_numpy
from explorer.kernels import intrinsic_dim as kernels
from explorer.validation import check_number, check_positive_int

__all__ = ["local_id", "local_pca_id", "mle_id", "twonn"]

PcaRule = Literal["fraction", "ratio", "broken_stick"]
_RULES = {
    "fraction": kernels.RULE_FRACTION,
    "ratio": kernels.RULE_RATIO,
    "broken_stick": kernels.RULE_BROKEN_STICK,
}


def twonn(
    x: Any,
    *,
    discard_fraction: float = 0.1,
    estimator: Literal["fit", "mle"] = "fit",
    device: DeviceLike = "auto",
) -> float:
    """TwoNN intrinsic dimension (Facco et al. 2017) of the points ``x`` (n, D).

    μᵢ = r₂/r₁ (second over first neighbour distance). ``estimator="fit"``: slope through the
    origin of −log(1 − F(μ₍ᵢ₎)) against log μ₍ᵢ₎, F(μ₍ᵢ₎) = i/n (i = 1…n), over the smallest
    ``1 − discard_fraction`` of μ (scikit-dimension 0.5's definition); ``"mle"``:
    d = (n − 1)/Σ log μᵢ on all points.
    """
    discard_fraction = check_number(
        discard_fraction, "discard_fraction", low=0.0, high=1.0, high_open=True
    )
    if estimator not in ("fit", "mle"):
        raise ValueError(f"estimator must be 'fit' or 'mle', got {estimator!r}")
    x = unique_points(x, "x", min_rows=3)
    dist = _resolved(knn(x, 2, device=device).distances)
    mu = np.sort(dist[:, 1] / dist[:, 0])
    mu[mu < 1.0 + 64 * np.finfo(np.float64).eps] = 1.0  # equal up to rounding
    n = len(mu)
    equidistant = "every point's two nearest neighbours are at the same distance (a lattice, or "
    equidistant += "quantised or saturated activations): TwoNN is undefined for such data"
    if estimator == "mle":
        if np.log(mu).sum() <= 0:
            raise ValueError(equidistant)
        return float((n - 1) / np.log(mu).sum())
    keep = min(int(n * (1 - discard_fraction)), n - 1)  # F = 1 at the last point: dropped
    if keep < 2:
        raise ValueError(
            f"discard_fraction={discard_fraction} leaves {keep} point(s); use more points"
        )
    log_mu = np.log(mu[:keep])
    if not log_mu.any():
        raise ValueError(equidistant)
    y = -np.log1p(-np.arange(1, keep + 1) / n)
    return float(log_mu @ y / (log_mu @ log_mu))


def _resolved(dist: np.ndarray) -> np.ndarray:
    """kNN distances, refusing distinct points whose squared distance underflowed to 0."""
    if not (dist > 0).all():
        raise ValueError(
            "some distinct points are closer than float64 can resolve relative to the data's "
            "spread (squared distances underflow): the data span too many orders of magnitude "
            "for a distance-ratio estimate"
        )
    return dist


def _pointwise_mle(dist: np.ndarray) -> np.ndarray:
    """(k − 1)/Σⱼ log(T_k/T_j) per row of ascending distances (n, k)."""
    k = dist.shape[1]
    return (k - 1) / np.log(dist[:, -1:] / dist).sum(axis=1)


def _checked_k(k: int, n_points: int) -> int:
    k = check_positive_int(k, "k", minimum=2)
    if k >= n_points:
        raise ValueError(
            f"k={k} neighbours need at least {k + 1} unique points, got {n_points}; lower k"
        )
    return k


def mle_id(x: Any, k: int = 20, *, device: DeviceLike = "auto") -> float:
    """Levina–Bickel MLE of the intrinsic dimension with k neighbours (x: (n, D)).

    Per point m̂ = (k − 1)/Σⱼ₌₁ᵏ log(T_k/T_j); global = 1/mean(1/m̂) (MacKay–Ghahramani
    combination, scikit-dimension's default ``comb="mle"``).
    """
    return float(1.0 / np.mean(1.0 / local_id(x, k, method="mle", device=device)))


def local_id(
    x: Any,
    k: int = 20,
    *,
    method: Literal["mle", "pca"] = "mle",
    rule: PcaRule = "fraction",
    threshold: float | None = None,
    device: DeviceLike = "auto",
) -> np.ndarray:
    """Per-point intrinsic dimension (n_unique,), from each point's k nearest neighbours.

    ``method="mle"``: Levina–Bickel m̂ per point. ``method="pca"``: number of significant
    eigenvalues of the neighbourhood (the point + k neighbours) by ``rule``:
    ``"fraction"`` λ > threshold·λ_max (default 0.05), ``"ratio"`` fewest components reaching
    ``threshold`` of the variance (default 0.95), ``"broken_stick"``.
    Duplicate rows are dropped first, so the output follows the unique rows in input order.
    """
    if method not in ("mle", "pca"):
        raise ValueError(f"method must be 'mle' or 'pca', got {method!r}")
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {sorted(_RULES)}, got {rule!r}")
    if threshold is not None:
        threshold = check_number(threshold, "threshold", low=0.0, high=1.0, low_open=True)
    x = unique_points(x, "x", min_rows=3)
    k = _checked_k(k, len(x))
    nb = knn(x, k, device=device)
    if method == "mle":
        return _pointwise_mle(_resolved(nb.distances))
    thr = threshold if threshold is not None else (0.95 if rule == "ratio" else 0.05)
    out = np.empty(len(x), dtype=np.int64)
    data = np.ascontiguousarray(as_numpy(x), dtype=np.float64)
    kernels.local_pca(data, nb.indices, _RULES[rule], float(thr), out)
    return out.astype(np.float64)


def local_pca_id(
    x: Any,
    k: int = 20,
    *,
    rule: PcaRule = "fraction",
    threshold: float | None = None,
    device: DeviceLike = "auto",
) -> float:
    """Mean local-PCA dimension over points (see :func:`local_id` with ``method="pca"``)."""
    return float(local_id(x, k, method="pca", rule=rule, threshold=threshold, device=device).mean())
