"""Representational similarity analysis (Kriegeskorte et al. 2008): compare RDMs.

An RDM holds the dissimilarity of every pair of samples within one representation; two
representations are compared by a rank or linear correlation of their RDMs' upper triangles.
Named RDM variants: ``"correlation"`` (1 − Pearson r between samples' patterns),
``"euclidean"`` (plain, not squared), ``"sqeuclidean"``, ``"cosine"`` (1 − cos).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from explorer.analysis.alignment.cca import as_float64
from explorer.analysis.pooling import Pool
from explorer.validation import check_paired, rescale

__all__ = ["rdm", "rsa"]

RDMMetric = Literal["correlation", "euclidean", "sqeuclidean", "cosine"]
Compare = Literal["spearman", "pearson", "kendall"]
_METRICS = ("correlation", "euclidean", "sqeuclidean", "cosine")


def _condensed(x: np.ndarray, metric: str, name: str) -> np.ndarray:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    if metric in ("correlation", "cosine"):
        ref = x - x.mean(1, keepdims=True) if metric == "correlation" else x
        bad = np.flatnonzero(np.linalg.norm(ref, axis=1) == 0)
        if bad.size:
            what = "constant" if metric == "correlation" else "all-zero"
            raise ValueError(
                f"{name} has {bad.size} {what} row(s) (first: {bad[0]}); the {metric} RDM is "
                "undefined for them — drop them or use metric='euclidean'"
            )
    return pdist(x, metric=metric)


def rdm(x: Any, *, metric: RDMMetric = "correlation", pool: Pool = "mean") -> np.ndarray:
    """Representational dissimilarity matrix (n, n) of x (n, d), float64, zero diagonal.

    Euclidean distances are in x's units (computed at an exact power-of-two scale and scaled
    back, so inputs of any magnitude are safe until the distances themselves overflow).
    """
    a, e = rescale(as_float64(x, "X", pool=pool, scale_free=False))
    power = {"euclidean": 1, "sqeuclidean": 2}.get(metric, 0)
    out = np.ldexp(squareform(_condensed(a, metric, "X")), power * e)
    if not np.isfinite(out).all():
        raise ValueError(f"the {metric} distances of X overflow float64: rescale X first")
    return out


def rsa(
    x: Any,
    y: Any,
    *,
    metric: RDMMetric = "correlation",
    compare: Compare = "spearman",
    pool: Pool = "mean",
) -> float:
    """Correlation (``compare``: Spearman ρ, Pearson r or Kendall τ-b) between the RDMs of
    x (n, d₁) and y (n, d₂) over the n(n−1)/2 distinct pairs; needs n ≥ 3."""
    a = as_float64(x, "X", pool=pool, min_rows=3)
    b = as_float64(y, "Y", pool=pool, min_rows=3)
    check_paired(a, b)
    da, db = _condensed(a, metric, "X"), _condensed(b, metric, "Y")
    for name, d in (("X", da), ("Y", db)):
        if np.ptp(d) == 0:
            raise ValueError(f"every pairwise dissimilarity of {name} is equal: RSA is undefined")
    funcs = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}
    if compare not in funcs:
        raise ValueError(f"compare must be one of {tuple(funcs)}, got {compare!r}")
    return float(funcs[compare](da, db)[0])
