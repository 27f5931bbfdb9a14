"""Spectrum measures of a representation matrix (n, d): rank, entropy, decay, coding rate.

σ are the singular values of X (centred when ``centre=True``), λ = σ² the (unnormalised)
covariance eigenvalues. Variants are named: effective rank on σ (Roy & Vetterli) or on σ²;
RankMe (Garrido et al. 2023) is the σ effective rank of the uncentred matrix with ε = 1e-7.
Spectra are computed in float64 by SVD (torch on CUDA, LAPACK on CPU), by
:func:`explorer.analysis.spectra.singular_values`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from explorer.analysis.spectra.weights import singular_values as spectra_singular_values
from explorer.device import DeviceLike, as_numpy
from explorer.errors import renamed_keywords, warn_deprecated
from explorer.validation import (
    check_labels,
    check_matrix,
    check_number,
    check_positive_int,
    rescale,
)

__all__ = [
    "coding_rate",
    "effective_rank",
    "eigen_decay",
    "participation_ratio",
    "rank_me",
    "rate_reduction",
    "stable_rank",
    "von_neumann_entropy",
]


def _gram_eigenvalues(x: Any, device: DeviceLike, centre: bool = False) -> np.ndarray:
    """Descending eigenvalues σ² (≥ 0, float64) of XᵀX (X centred if asked), from an SVD."""
    return spectra_singular_values(x, centre=centre, device=device) ** 2


def _sigma(x: Any, centre: bool, device: DeviceLike, name: str = "x") -> np.ndarray:
    """Singular values of the validated (n, d) matrix x."""
    return spectra_singular_values(check_matrix(x, name), centre=centre, device=device)


@renamed_keywords(center="centre")
def singular_values(x: Any, *, centre: bool = True, device: DeviceLike = "auto") -> np.ndarray:
    """Deprecated: use :func:`explorer.analysis.spectra.singular_values` with ``centre=True``."""
    warn_deprecated(
        "explorer.analysis.geometry.singular_values(x)",
        "explorer.analysis.spectra.singular_values(x, centre=True)",
        stacklevel=4,  # past the keyword-renaming wrapper
    )
    return _sigma(x, centre, device)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _nonzero(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` divided by their largest (so squares never overflow: every measure built on
    it is scale-free); an error when all are zero."""
    if values.sum() <= 0:
        raise ValueError(
            f"the {what} are all zero (a constant or all-zero matrix); the measure is undefined"
        )
    return values / values.max()


def effective_rank_of(sigma: np.ndarray, variant: Literal["sigma", "sigma2"] = "sigma") -> float:
    """exp(entropy of p), p = σ/Σσ (``"sigma"``) or σ²/Σσ² (``"sigma2"``)."""
    if variant not in ("sigma", "sigma2"):
        raise ValueError(f"variant must be 'sigma' or 'sigma2', got {variant!r}")
    s = _nonzero(sigma, "singular values")
    w = s if variant == "sigma" else s**2
    return float(np.exp(_entropy(w / w.sum())))


@renamed_keywords(center="centre")
def effective_rank(
    x: Any,
    *,
    variant: Literal["sigma", "sigma2"] = "sigma",
    centre: bool = True,
    device: DeviceLike = "auto",
) -> float:
    """Effective rank exp(−Σ pₖ log pₖ) of x (n, d); σ=[3,2,1] → 2.749 (σ), 2.294 (σ²)."""
    return effective_rank_of(_sigma(x, centre, device), variant)


def participation_ratio_of(sigma: np.ndarray) -> float:
    """(Σλ)²/Σλ² with λ = σ²."""
    lam = _nonzero(sigma, "singular values") ** 2
    return float(lam.sum() ** 2 / (lam**2).sum())


@renamed_keywords(center="centre")
def participation_ratio(x: Any, *, centre: bool = True, device: DeviceLike = "auto") -> float:
    """Participation ratio (Σλ)²/Σλ² of the covariance spectrum; σ=[3,2,1] → 2.0."""
    return participation_ratio_of(_sigma(x, centre, device))


def stable_rank_of(sigma: np.ndarray) -> float:
    """‖X‖²_F / ‖X‖²₂ = Σσ²/σ₁²."""
    lam = _nonzero(sigma, "singular values") ** 2
    return float(lam.sum() / lam.max())


@renamed_keywords(center="centre")
def stable_rank(x: Any, *, centre: bool = False, device: DeviceLike = "auto") -> float:
    """Stable rank ‖X‖²_F/‖X‖²₂ (uncentred by default, as for weight matrices); [3,2,1] → 1.5556."""
    return stable_rank_of(_sigma(x, centre, device))


def rank_me_of(sigma: np.ndarray, eps: float = 1e-7) -> float:
    """RankMe: exp(entropy(p)), p = σ/Σσ + ε."""
    eps = check_number(eps, "eps", low=0.0)
    s = _nonzero(sigma, "singular values")
    return float(np.exp(_entropy(s / s.sum() + eps)))


def rank_me(x: Any, *, eps: float = 1e-7, device: DeviceLike = "auto") -> float:
    """RankMe (Garrido et al. 2023) of the uncentred embeddings x (n, d)."""
    return rank_me_of(_sigma(x, False, device), eps)


def von_neumann_entropy(x: Any, *, device: DeviceLike = "auto") -> float:
    """VNE: rows L2-normalised, ρ = ZᵀZ/n (trace 1), VNE = −Σ λ log λ over λ > 0.

    Tiny negative eigenvalues from rounding are clipped to 0 (not silently dropped as NaN).
    """
    z, _ = rescale(check_matrix(x, "x"))  # scale-free: row norms must not overflow
    norms = (
        z.norm(dim=1, keepdim=True)
        if isinstance(z, torch.Tensor)
        else np.linalg.norm(z, axis=1, keepdims=True)
    )
    zero = np.flatnonzero(as_numpy(norms).ravel() == 0)
    if zero.size:
        raise ValueError(
            f"x has {zero.size} all-zero row(s) (first: {zero[0]}); they cannot be L2-normalised"
        )
    lam = _gram_eigenvalues(z / norms, device) / z.shape[0]
    return _entropy(lam)


@renamed_keywords(center="centre")
def eigen_decay(
    x: Any,
    *,
    k_min: int = 1,
    k_max: int | None = None,
    centre: bool = True,
    rtol: float = 1e-10,
    device: DeviceLike = "auto",
) -> float:
    """Power-law exponent α of the covariance spectrum, λₖ ∝ k^(−α).

    Least-squares fit of log λₖ on log k over ranks k_min…k_max (1-based); the default k_max is
    the last eigenvalue above rtol·λ₁. Needs at least 3 ranks in the range.
    """
    k_min = check_positive_int(k_min, "k_min")
    if k_max is not None:
        k_max = check_positive_int(k_max, "k_max")
    rtol = check_number(rtol, "rtol", low=0.0, high=1.0, low_open=True, high_open=True)
    lam = _nonzero(_sigma(x, centre, device), "singular values") ** 2  # λ / λ₁: scale-free
    last = int((lam > rtol * lam[0]).sum())
    hi = last if k_max is None else min(k_max, last)
    if k_min < 1 or hi - k_min + 1 < 3:
        raise ValueError(
            f"eigen_decay needs ≥ 3 non-zero eigenvalues in ranks [{k_min}, {hi}] "
            f"(x has {last} above rtol·λ₁); widen the range or pass more samples/features"
        )
    ranks = np.arange(k_min, hi + 1, dtype=np.float64)
    slope = np.polyfit(np.log(ranks), np.log(lam[k_min - 1 : hi]), 1)[0]
    return float(-slope)


def _logdet_identity_plus(z: Any, scale: float, device: DeviceLike) -> float:
    """log det(I + scale·ZᵀZ) = Σ log(1 + scale·σ²), in log space (no σ² that overflows)."""
    sigma = spectra_singular_values(z, device=device)
    with np.errstate(divide="ignore"):  # σ = 0 contributes log(1) = 0
        return float(np.logaddexp(0.0, np.log(scale) + 2.0 * np.log(sigma)).sum())


def coding_rate(z: Any, *, eps: float = 0.5, device: DeviceLike = "auto") -> float:
    """Coding rate R(Z) = ½ log det(I + d/(n ε²) ZᵀZ) of z (n, d) in nats (Yu et al. 2020)."""
    z = check_matrix(z, "z")
    eps = check_number(eps, "eps", low=0.0, low_open=True)
    n, d = z.shape
    return 0.5 * _logdet_identity_plus(z, d / (n * eps**2), device)


def rate_reduction(z: Any, labels: Any, *, eps: float = 0.5, device: DeviceLike = "auto") -> float:
    """ΔR = R(Z) − Σⱼ (nⱼ/n) R(Zⱼ) (MCR², Yu et al. 2020), Zⱼ the rows with label j."""
    z = check_matrix(z, "z")
    y = check_labels(labels, z.shape[0])
    eps = check_number(eps, "eps", low=0.0, low_open=True)
    n = z.shape[0]
    total = coding_rate(z, eps=eps, device=device)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        zc = z[torch.as_tensor(rows, device=z.device)] if isinstance(z, torch.Tensor) else z[rows]
        total -= len(rows) / n * coding_rate(zc, eps=eps, device=device)
    return total
