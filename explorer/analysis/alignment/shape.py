"""Shape metrics (Williams et al. 2021): Procrustes / angular distance with partial whitening,
normalized Bures similarity, and permutation alignment of units.

Each side is centred and scaled to unit Frobenius norm; unequal widths are zero-padded (the
narrower side is the one rotated). Distances are angles in [0, π/2] computed from the explicit
residual, θ = 2·arcsin(‖X̃ − ỸQ*‖_F / 2), which stays accurate near 0 (arccos of a cosine
near 1 would lose half the digits). Float64 LAPACK on the CPU.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from explorer.analysis.alignment.cca import as_float64
from explorer.analysis.pooling import Pool
from explorer.validation import check_number, check_paired, check_positive_int

__all__ = [
    "aligned_projection",
    "bures_similarity",
    "match_units",
    "permutation_distance",
    "procrustes_distance",
]


def _normalised(x: np.ndarray, name: str, alpha: float, *, rotate: bool = True) -> np.ndarray:
    """Centre, partially whiten (α = 1: none, α = 0: full), scale to unit Frobenius norm.

    Partial whitening maps z to z(αI + (1 − α)C^{-1/2}), C = zᵀz/n. Both terms are on the
    same scale only if C has mean eigenvalue 1, like the whitened C^{-1/2}zᵀz C^{-1/2}/n = I:
    z is scaled to that first, which makes the result invariant to the scale of x (as the
    metric catalogue promises; Williams et al. leave the scale to the caller, and then
    0 < α < 1 changes with it).

    ``rotate``: when d > n, rotate into the n-dimensional row space first (an orthogonal map:
    harmless for rotation-invariant metrics, wrong for unit-wise ones).
    """
    z = x - x.mean(0)
    n, d = z.shape
    if alpha < 1.0:
        if d >= n - 1:
            raise ValueError(
                f"{name} has {d} features for {n} samples: whitening (alpha < 1) saturates like "
                "CCA when d ≥ n − 1; use alpha=1 or fewer features"
            )
        mean_eig = float((z * z).sum()) / (n * d)
        if mean_eig == 0.0:
            raise ValueError(f"{name} is constant across samples: shape metrics are undefined")
        z = z / np.sqrt(mean_eig)
        evals, evecs = np.linalg.eigh(z.T @ z / n)
        tol = evals.max(initial=0.0) * d * np.finfo(np.float64).eps
        inv_sqrt = np.where(evals > tol, 1.0 / np.sqrt(np.maximum(evals, tol)), 0.0)
        whiten = (evecs * inv_sqrt) @ evecs.T
        z = z @ (alpha * np.eye(d) + (1.0 - alpha) * whiten)
    elif rotate and d > n:
        z = np.asarray(np.linalg.qr(z.T, mode="r")).T
    norm = np.linalg.norm(z)
    if norm == 0.0:
        raise ValueError(f"{name} is constant across samples: shape metrics are undefined")
    return z / norm


def _pair(x: Any, y: Any, alpha: float, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    alpha = check_number(alpha, "alpha (0: CCA-like, 1: Procrustes)", low=0.0, high=1.0)
    a, b = as_float64(x, "X", pool=pool), as_float64(y, "Y", pool=pool)
    check_paired(a, b)
    a, b = _normalised(a, "X", alpha), _normalised(b, "Y", alpha)
    return (a, b) if a.shape[1] >= b.shape[1] else (b, a)


def _angle(residual: float) -> float:
    return float(2.0 * np.arcsin(min(1.0, residual / 2.0)))


def procrustes_distance(
    x: Any,
    y: Any,
    *,
    alpha: float = 1.0,
    kind: Literal["angular", "euclidean"] = "angular",
    pool: Pool = "mean",
) -> float:
    """Generalised shape distance between x (n, d₁) and y (n, d₂).

    ``kind="angular"``: arccos ‖X̃ᵀỸ‖_* (a metric in radians, [0, π/2]); ``"euclidean"``:
    min over orthogonal Q of ‖X̃ − ỸQ‖_F = √(2 − 2‖X̃ᵀỸ‖_*). ``alpha`` partially whitens each
    side first: 1 = Procrustes (default), 0 = fully whitened (CCA-like).
    """
    a, b = _pair(x, y, alpha, pool)
    u, _, vt = np.linalg.svd(b.T @ a, full_matrices=False)  # b is the narrower side
    residual = float(np.linalg.norm(a - b @ (u @ vt)))
    if kind == "euclidean":
        return residual
    if kind == "angular":
        return _angle(residual)
    raise ValueError(f"kind must be 'angular' or 'euclidean', got {kind!r}")


def bures_similarity(x: Any, y: Any, *, pool: Pool = "mean") -> float:
    """Normalized Bures similarity ‖X̄ᵀȲ‖_* / (‖X̄‖_F ‖Ȳ‖_F) ∈ [0, 1] (= cos of the angular
    Procrustes distance)."""
    a, b = _pair(x, y, 1.0, pool)
    return float(min(1.0, np.linalg.svd(b.T @ a, compute_uv=False).sum()))


def match_units(x: Any, y: Any, *, pool: Pool = "mean") -> np.ndarray:
    """Best one-to-one matching of x's units to y's: index j of y for each column of x (−1 if
    unmatched when x is wider), maximising Σ ⟨x̃ᵢ, ỹⱼ⟩ (Hungarian algorithm on X̃ᵀỸ)."""
    a, b = _units(x, y, pool)
    return _match(a, b)


def _units(x: Any, y: Any, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_float64(x, "X", pool=pool), as_float64(y, "Y", pool=pool)
    check_paired(a, b)
    return _normalised(a, "X", 1.0, rotate=False), _normalised(b, "Y", 1.0, rotate=False)


def _match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rows, cols = linear_sum_assignment(a.T @ b, maximize=True)
    out = np.full(a.shape[1], -1, dtype=np.int64)
    out[rows] = cols
    return out


def permutation_distance(x: Any, y: Any, *, pool: Pool = "mean") -> float:
    """Angular distance after the best permutation of units (zero-padded): 0 on column-permuted
    copies, ≥ the Procrustes distance (permutations are a subset of rotations)."""
    a, b = _units(x, y, pool)
    perm = _match(a, b)
    aligned = np.zeros_like(a)
    hit = perm >= 0
    aligned[:, hit] = b[:, perm[hit]]
    residual = float(np.sqrt(float(np.linalg.norm(a - aligned)) ** 2 + _unmatched(b, perm)))
    return _angle(residual)


def _unmatched(b: np.ndarray, perm: np.ndarray) -> float:
    """Squared norm of y's columns left out of the matching (when y is wider)."""
    left = np.setdiff1d(np.arange(b.shape[1]), perm[perm >= 0])
    return float((b[:, left] ** 2).sum())


def aligned_projection(
    x: Any, y: Any, *, n_components: int = 2, pool: Pool = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Procrustes-align y to x, then project both on x's top principal axes.

    Both are centred and scaled to unit Frobenius norm; the narrower is zero-padded; the
    orthogonal Q* minimising ‖X̃ − ỸQ‖_F is applied to y. Returns two (n, n_components) arrays
    in the same coordinates — points that coincide are represented alike.
    """
    n_components = check_positive_int(n_components, "n_components")
    a, b = as_float64(x, "X", pool=pool), as_float64(y, "Y", pool=pool)
    check_paired(a, b)
    a, b = _normalised(a, "X", 1.0), _normalised(b, "Y", 1.0)
    width = max(a.shape[1], b.shape[1])
    a = np.pad(a, ((0, 0), (0, width - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, width - b.shape[1])))
    u, _, vt = np.linalg.svd(b.T @ a)
    b = b @ (u @ vt)
    k = min(n_components, width)
    _, _, axes = np.linalg.svd(a, full_matrices=False)
    return a @ axes[:k].T, b @ axes[:k].T
