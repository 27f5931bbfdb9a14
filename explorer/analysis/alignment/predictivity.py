"""Linear maps between representations: cross-validated ridge predictivity, and the in-sample
linearity score of "Your Transformer is Secretly Linear" (Razzhigaev et al. 2024)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from explorer.analysis.alignment.cca import as_float64
from explorer.analysis.pooling import Pool
from explorer.validation import check_number, check_paired, check_positive_int, check_seed

__all__ = ["linear_predictivity", "linearity_score"]

DEFAULT_ALPHAS = tuple(10.0**p for p in range(-3, 5))


def linear_predictivity(
    x: Any,
    y: Any,
    *,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
    folds: int = 5,
    seed: int | None = 0,
    pool: Pool = "mean",
) -> float:
    """How well y (n, d₂) is linearly predicted from x (n, d₁): out-of-fold ridge R².

    K-fold cross-validation (shuffled with ``seed``); within each training fold the ridge
    penalty is chosen from ``alphas`` by efficient leave-one-out (sklearn ``RidgeCV``).
    R² = 1 − Σ residual² / Σ (y − mean_train y)² pooled over all outputs and folds (variance
    weighted). Asymmetric: predictivity(x → y) ≠ predictivity(y → x).
    """
    a, b = as_float64(x, "X", pool=pool), as_float64(y, "Y", pool=pool)
    check_paired(a, b)
    folds = check_positive_int(folds, "folds", minimum=2)
    seed = check_seed(seed)
    if a.shape[0] < 2 * folds:
        raise ValueError(f"{a.shape[0]} samples are too few for {folds}-fold cross-validation")
    alphas = tuple(
        check_number(a, "alphas (ridge penalties)", low=0.0, low_open=True) for a in alphas
    )
    if not alphas:
        raise ValueError("alphas must be a non-empty tuple of positive penalties")
    sse = sst = 0.0
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(a):
        model = RidgeCV(alphas=alphas).fit(a[tr], b[tr])
        sse += float(((b[te] - model.predict(a[te])) ** 2).sum())
        sst += float(((b[te] - b[tr].mean(0)) ** 2).sum())
    if sst == 0.0:
        raise ValueError("Y is constant across samples: R² is undefined")
    return 1.0 - sse / sst


def linearity_score(x: Any, y: Any, *, pool: Pool = "mean") -> float:
    """1 − min_A ‖X̃A − Ỹ‖²_F with X̃, Ỹ centred and scaled to unit Frobenius norm (least squares,
    in-sample). Razzhigaev et al. report ≈ 0.99 between consecutive transformer layers."""
    a, b = as_float64(x, "X", pool=pool), as_float64(y, "Y", pool=pool)
    check_paired(a, b)
    a, b = a - a.mean(0), b - b.mean(0)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("X or Y is constant across samples: the linearity score is undefined")
    a, b = a / na, b / nb
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return float(1.0 - np.linalg.norm(a @ coef - b) ** 2)
