"""HSIC from sufficient statistics: the one place the biased and unbiased formulas live.

Everything CKA-like (in-memory feature or Gram route, all-pairs, streaming, minibatch, RBF)
reduces m kernel matrices K_a (n × n) to m × m statistics and calls :func:`hsic_matrix`:

- ``inner[a, b] = ⟨K_a, K_b⟩_F``, ``dd[a, b] = diag(K_a)·diag(K_b)``,
  ``uu[a, b] = (K_a 1)·(K_b 1)``, ``ud[a, b] = (K_a 1)·diag(K_b)``,
  ``total[a] = 1ᵀK_a1``, ``trace[a] = tr K_a``.

Biased ("Gretton") HSIC = tr(K H L H)/(n−1)². Unbiased ("Song" et al. 2012) HSIC_u =
[tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2·1ᵀK̃L̃1/(n−2)] / (n(n−3)), K̃ = K with zero diagonal.
For linear kernels the statistics follow from feature moments (:class:`FeatureMoments`), which
add up over batches — that is what makes exact streaming CKA possible.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from explorer.device import ArrayLike
from explorer.errors import ExplorerWarning

__all__ = ["FeatureMoments", "GramStats", "cka_from_hsic", "feature_moments", "hsic_matrix"]


@dataclass
class GramStats:
    """m × m sufficient statistics of m kernel matrices over the same n samples (float64)."""

    n: int
    inner: np.ndarray
    dd: np.ndarray
    trace: np.ndarray
    uu: np.ndarray | None = None  # None: kernels are centred (K 1 = 0)
    ud: np.ndarray | None = None
    total: np.ndarray | None = None


def hsic_matrix(s: GramStats, *, debiased: bool) -> np.ndarray:
    """(m, m) HSIC between every pair of kernels; ``debiased`` picks the unbiased estimator."""
    n = s.n
    m = s.inner.shape[0]
    uu = s.uu if s.uu is not None else np.zeros((m, m))
    ud = s.ud if s.ud is not None else np.zeros((m, m))
    total = s.total if s.total is not None else np.zeros(m)
    if not debiased:
        return (s.inner - (2.0 / n) * uu + np.outer(total, total) / n**2) / (n - 1) ** 2
    tr = s.inner - s.dd
    off_total = total - s.trace
    cross = uu - ud - ud.T + s.dd
    num = tr + np.outer(off_total, off_total) / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)
    return num / (n * (n - 3))


def cka_from_hsic(
    h: np.ndarray, rows: np.ndarray | None = None, cols: np.ndarray | None = None
) -> np.ndarray:
    """CKA[a, b] = HSIC[a, b] / √(HSIC[a, a] HSIC[b, b]) for the requested rows/columns.

    A non-positive self-HSIC (possible for the unbiased estimator on tiny or degenerate data)
    gives NaN with an :class:`ExplorerWarning` instead of a silent NaN from a negative sqrt.
    """
    m = h.shape[0]
    rows = np.arange(m) if rows is None else rows
    cols = np.arange(m) if cols is None else cols
    self_h = np.diag(h)
    denom = np.outer(self_h[rows], self_h[cols])
    out = np.full(denom.shape, np.nan)
    ok = denom > 0
    out[ok] = h[np.ix_(rows, cols)][ok] / np.sqrt(denom[ok])
    if not ok.all():
        warnings.warn(
            "a self-HSIC is zero or negative (representation without variance, or the unbiased "
            "estimator on very few samples); CKA is undefined there and returned as NaN",
            ExplorerWarning,
            stacklevel=3,
        )
    return out


@dataclass
class FeatureMoments:
    """Additive moments of m representations Z_a (n × d_a), stored in float64.

    ``gram[a][b] = Z_aᵀZ_b`` (a ≤ b), ``sums[a] = Z_aᵀ1``, ``w[a][b] = Z_aᵀ q_b`` with
    q_b = row norms² of Z_b, ``qq = QᵀQ``, ``qsum = Σq``. Each Z_a is shifted by a fixed
    vector (``shift``) before accumulation; every HSIC formula is invariant to it, and
    a shift near the mean keeps the float64 sums well conditioned.
    """

    n: int
    gram: list[list[np.ndarray | None]]
    sums: list[np.ndarray]
    w: list[list[np.ndarray]]
    qq: np.ndarray
    qsum: np.ndarray

    def add(self, other: FeatureMoments) -> None:
        """In-place sum of two moment sets over disjoint samples (same shifts)."""
        self.n += other.n
        for a, row in enumerate(self.gram):
            for b, g in enumerate(row):
                if g is not None:
                    g += other.gram[a][b]
            self.sums[a] += other.sums[a]
            for b in range(len(self.w[a])):
                self.w[a][b] += other.w[a][b]
        self.qq += other.qq
        self.qsum += other.qsum

    def centred_stats(self) -> GramStats:
        """Statistics of the centred linear kernels K̄_a = Z̄_a Z̄_aᵀ (K̄ 1 = 0)."""
        n = self.n
        m = len(self.sums)
        mu = [s / n for s in self.sums]
        msq = np.array([float(u @ u) for u in mu])
        inner = np.zeros((m, m))
        dd = np.zeros((m, m))
        trace = np.zeros(m)
        for a in range(m):
            for b in range(a, m):
                g = self.gram[a][b]
                if g is None:
                    inner[a, b] = inner[b, a] = np.nan
                    continue
                c = g - n * np.outer(mu[a], mu[b])  # Z̄_aᵀ Z̄_b
                inner[a, b] = inner[b, a] = float(np.sum(c * c))
                if a == b:
                    trace[a] = float(np.trace(c))
                # Σ_i q̄_a,i q̄_b,i with q̄ = ‖z − μ‖² = q − 2 z·μ + ‖μ‖²
                val = (
                    self.qq[a, b]
                    - 2.0 * float(mu[b] @ self.w[b][a])
                    - 2.0 * float(mu[a] @ self.w[a][b])
                    + msq[b] * self.qsum[a]
                    + msq[a] * self.qsum[b]
                    + 4.0 * float(mu[a] @ g @ mu[b])
                    - 3.0 * n * msq[a] * msq[b]
                )
                dd[a, b] = dd[b, a] = val
        return GramStats(n=n, inner=inner, dd=dd, trace=trace)


def _numpy64(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().to(torch.float64).cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def feature_moments(
    zs: Sequence[ArrayLike], pairs: set[tuple[int, int]] | None = None
) -> FeatureMoments:
    """Moments of one batch of m (already shifted) representations, numpy or torch alike.

    ``Z_aᵀZ_b`` runs in the input precision (float32 → BLAS sgemm); every sum is float64.
    ``pairs``: the cross products a < b to form (default all); self products always.
    """
    m = len(zs)
    n = int(zs[0].shape[0])
    q: Any
    z64: list[Any]
    if isinstance(zs[0], torch.Tensor):
        z64 = [torch.as_tensor(z).to(torch.float64) for z in zs]
        q = torch.stack([(z * z).sum(1) for z in z64], dim=1)  # (n, m)
    else:
        z64 = [np.asarray(z, dtype=np.float64) for z in zs]
        q = np.stack([np.einsum("ij,ij->i", z, z) for z in z64], axis=1)
    gram: list[list[np.ndarray | None]] = [[None] * m for _ in range(m)]
    for a in range(m):
        for b in range(a, m):
            if a == b or pairs is None or (a, b) in pairs:
                gram[a][b] = _numpy64(zs[a].T @ zs[b])
    return FeatureMoments(
        n=n,
        gram=gram,
        sums=[_numpy64(z.sum(0)) for z in z64],
        w=[list(_numpy64(z.T @ q).T) for z in z64],
        qq=_numpy64(q.T @ q),
        qsum=_numpy64(q.sum(0)),
    )
