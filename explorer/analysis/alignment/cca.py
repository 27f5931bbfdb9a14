"""Canonical correlation analysis and its descendants: CCA (ρ̄, R²_CCA), SVCCA, PWCCA.

All three run in float64 LAPACK on the CPU (they are d × d problems). Orthonormal bases come
from a thin SVD with numpy's rank rule (σ > σ_max · max(n, d) · ε), so constant or collinear
features are dropped with a warning instead of producing garbage from an ill-conditioned QR.
CCA is invariant to any invertible linear map of either side, and saturates at 1 when d ≥ n —
which is why d must stay below the number of (centred) samples here.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from explorer.analysis.alignment._prep import prepare
from explorer.analysis.pooling import Pool
from explorer.device import as_numpy
from explorer.errors import ExplorerWarning
from explorer.validation import check_paired

__all__ = ["canonical_correlations", "cca_similarity", "pwcca", "svcca"]

Summary = Literal["mean_rho", "mean_rho2"]


def as_float64(
    x: Any, name: str, *, pool: Pool = "mean", min_rows: int = 2, scale_free: bool = True
) -> np.ndarray:
    """Validated float64 numpy copy of one representation (see :func:`prepare`)."""
    x = prepare(x, name, min_rows=min_rows, device="cpu", pool=pool, scale_free=scale_free)
    return as_numpy(x, np.float64)


_TOO_WIDE = "Use svcca(..., keep=...) to truncate, pool the features, pass more samples, or use CKA"


def _orthonormal_basis(
    x: np.ndarray, name: str, centre: bool, advice: str = _TOO_WIDE
) -> np.ndarray:
    """Orthonormal basis (n, r) of the column space of x (centred first if asked)."""
    n, d = x.shape
    z = x - x.mean(0) if centre else x
    limit = n - 1 if centre else n
    if d >= limit:
        raise ValueError(
            f"{name} has {d} features but only {n} samples{' (centred)' if centre else ''}: CCA "
            f"saturates at 1 when d ≥ {limit}. {advice}"
        )
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    tol = s.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
    rank = int((s > tol).sum())
    if rank == 0:
        raise ValueError(f"{name} is constant across samples: CCA is undefined")
    if rank < d:
        warnings.warn(
            f"{name} has rank {rank} < {d} features (constant or collinear features); CCA uses "
            f"the {rank}-dimensional column space",
            ExplorerWarning,
            stacklevel=4,
        )
    return u[:, :rank]


def _paired(x: Any, y: Any, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_float64(x, "X", pool=pool), as_float64(y, "Y", pool=pool)
    check_paired(a, b)
    return a, b


def _cca(
    x: np.ndarray, y: np.ndarray, centre: bool, advice: str = _TOO_WIDE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ρ descending, basis of X, left singular vectors of Q_xᵀQ_y)."""
    qx = _orthonormal_basis(x, "X", centre, advice)
    qy = _orthonormal_basis(y, "Y", centre, advice)
    a, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), qx, a


def canonical_correlations(
    x: Any, y: Any, *, centre: bool = True, pool: Pool = "mean"
) -> np.ndarray:
    """Canonical correlations ρ (descending, length min(rank X, rank Y)) of x (n, d₁), y (n, d₂)."""
    a, b = _paired(x, y, pool)
    return _cca(a, b, centre)[0]


def _summary(rho: np.ndarray, summary: Summary) -> float:
    if summary == "mean_rho":
        return float(rho.mean())
    if summary == "mean_rho2":
        return float((rho**2).mean())
    raise ValueError(f"summary must be 'mean_rho' or 'mean_rho2' (R²_CCA), got {summary!r}")


def cca_similarity(
    x: Any, y: Any, *, summary: Summary = "mean_rho", centre: bool = True, pool: Pool = "mean"
) -> float:
    """Mean canonical correlation ρ̄ (``"mean_rho"``) or R²_CCA = mean ρ² (``"mean_rho2"``).

    ``centre=False`` reproduces the uncentred QR of the CKA demo notebook (Kornblith et al.).
    """
    return _summary(canonical_correlations(x, y, centre=centre, pool=pool), summary)


def _truncate(x: np.ndarray, keep: float, rule: str, name: str) -> np.ndarray:
    """Project centred x onto its top singular directions (SVCCA's first step)."""
    z = x - x.mean(0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        if not 1 <= keep <= s.size:
            raise ValueError(f"keep={keep} components for {name}, which has {s.size}")
        k = int(keep)
    elif isinstance(keep, float) and 0.0 < keep <= 1.0:
        if rule not in ("variance", "singular"):
            raise ValueError(f"rule must be 'variance' (Σσ²) or 'singular' (Σσ), got {rule!r}")
        w = s**2 if rule == "variance" else s
        frac = np.cumsum(w) / w.sum()
        k = int(np.searchsorted(frac, keep - 1e-12) + 1)
    else:
        raise ValueError(
            f"keep must be a fraction in (0, 1] or a number of components, got {keep!r}"
        )
    return u[:, :k] * s[:k]


def svcca(
    x: Any,
    y: Any,
    *,
    keep: float = 0.99,
    rule: Literal["variance", "singular"] = "variance",
    summary: Summary = "mean_rho",
    pool: Pool = "mean",
) -> float:
    """SVCCA (Raghu et al. 2017): SVD-truncate each side, then CCA.

    Truncation rule: keep the fewest top components whose share of Σσ² (``rule="variance"``,
    explained variance; default) or of Σσ (``rule="singular"``, as in some public code) reaches
    ``keep``; an integer ``keep`` keeps that many components.
    """
    a, b = _paired(x, y, pool)
    return _summary(
        _cca(
            _truncate(a, keep, rule, "X"),
            _truncate(b, keep, rule, "Y"),
            True,
            f"SVCCA kept that many components: lower keep (a smaller fraction, or a number of "
            f"components below {a.shape[0] - 1}), or pass more samples",
        )[0],
        summary,
    )


def pwcca(x: Any, y: Any, *, centre: bool = True, pool: Pool = "mean") -> float:
    """Projection-weighted CCA (Morcos et al. 2018): Σ αᵢ ρᵢ / Σ αᵢ, αᵢ = Σⱼ |⟨hᵢ, xⱼ⟩|.

    hᵢ are the canonical variates of x (unit vectors in sample space), xⱼ the (centred) columns
    of x. Asymmetric: the weights come from x. Correct for unequal widths: there are
    min(rank X, rank Y) variates, each weighted by its projection on all of x's units.
    """
    a, b = _paired(x, y, pool)
    rho, qx, left = _cca(a, b, centre)
    h = qx @ left[:, : rho.size]  # (n, k) canonical variates of x
    za = a - a.mean(0) if centre else a
    alpha = np.abs(h.T @ za).sum(1)
    return float((alpha * rho).sum() / alpha.sum())
