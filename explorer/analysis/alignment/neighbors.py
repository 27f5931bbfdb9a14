"""Neighbourhood alignment: mutual k-nearest neighbours and CKNNA (Huh et al. 2024).

Neighbours are by cosine similarity (rows L2-normalised, then exact Euclidean kNN from
:func:`explorer.analysis.geometry.knn`: top-k selection on GEMM tiles, never an n × n argsort),
self excluded, ties broken by the smaller index.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from scipy import sparse

from explorer.analysis.alignment._hsic import GramStats, hsic_matrix
from explorer.analysis.alignment._prep import prepare
from explorer.analysis.geometry.neighbors import knn
from explorer.analysis.pooling import Pool
from explorer.device import ArrayLike, DeviceLike, as_numpy
from explorer.errors import ExplorerWarning
from explorer.kernels import alignment as kernels
from explorer.validation import check_paired, check_positive_int

__all__ = ["cknna", "cosine_knn", "mutual_knn"]


def _unit_rows(x: ArrayLike, name: str) -> ArrayLike:
    if isinstance(x, torch.Tensor):
        norms = torch.linalg.vector_norm(x.to(torch.float64), dim=1)
    else:
        norms = np.linalg.norm(x.astype(np.float64, copy=False), axis=1)
    zero = np.flatnonzero(as_numpy(norms) == 0)
    if zero.size:
        raise ValueError(
            f"{name} has {zero.size} all-zero row(s) (first: {zero[0]}); cosine neighbours are "
            "undefined for them — drop them first"
        )
    if isinstance(x, torch.Tensor):
        return (x.to(torch.float64) / norms[:, None]).to(x.dtype)
    return (x / norms[:, None]).astype(x.dtype)


def cosine_knn(
    x: Any, k: int = 10, *, device: DeviceLike = "auto", pool: Pool = "mean"
) -> np.ndarray:
    """Indices (n, k) int64 of each row's k most cosine-similar other rows, most similar first."""
    k = check_positive_int(k, "k")
    u = _unit_rows(prepare(x, "X", device=device, pool=pool), "X")
    return knn(u, k, device=device).indices


def _prepared(
    x: Any, y: Any, k: int, device: DeviceLike, pool: Pool
) -> tuple[ArrayLike, ArrayLike, int]:
    k = check_positive_int(k, "k")
    a = _unit_rows(prepare(x, "X", min_rows=2, device=device, pool=pool), "X")
    b = _unit_rows(prepare(y, "Y", min_rows=2, device=device, pool=pool), "Y")
    check_paired(a, b)
    if k > a.shape[0] - 1:
        raise ValueError(f"k={k} neighbours need at least {k + 1} samples, got {a.shape[0]}")
    for name, u in (("X", a), ("Y", b)):
        spread = (u.amax(0) - u.amin(0)) if isinstance(u, torch.Tensor) else np.ptp(u, axis=0)
        if float(spread.max()) == 0.0:
            raise ValueError(
                f"{name} is constant across samples (every row points the same way), so its "
                "cosine neighbours are all ties and the alignment is undefined; check that the "
                "layer is not dead or the inputs not identical"
            )
    return a, b, k


def _overlap(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Boolean (n, k): ia[i, c] ∈ ib[i] — in row chunks to bound memory."""
    out = np.empty(ia.shape, dtype=bool)
    step = max(1, (1 << 24) // max(1, ia.shape[1] * ib.shape[1]))
    for s in range(0, ia.shape[0], step):
        out[s : s + step] = (ia[s : s + step, :, None] == ib[s : s + step, None, :]).any(2)
    return out


def mutual_knn(
    x: Any, y: Any, *, k: int = 10, device: DeviceLike = "auto", pool: Pool = "mean"
) -> float:
    """Mutual kNN alignment: meanᵢ |N_k^X(i) ∩ N_k^Y(i)| / k ∈ [0, 1] (cosine neighbours)."""
    a, b, k = _prepared(x, y, k, device, pool)
    ia, ib = knn(a, k, device=device).indices, knn(b, k, device=device).indices
    return float(_overlap(ia, ib).mean())


def _pair_values(u: ArrayLike, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """cos(u_i, u_j) for each listed pair, float64."""
    if isinstance(u, torch.Tensor):
        r = torch.as_tensor(rows, device=u.device)
        c = torch.as_tensor(cols, device=u.device)
        return (u[r].to(torch.float64) * u[c].to(torch.float64)).sum(1).cpu().numpy()
    out = np.empty(rows.size)
    kernels.pair_dots(np.ascontiguousarray(u), rows, cols, out)
    return out


def _masked_hsic(kv: np.ndarray, lv: np.ndarray, rows: np.ndarray, n: int) -> float:
    """Unbiased HSIC of two kernels that are zero outside the listed pairs (and on the diagonal)."""
    u = np.bincount(rows, kv, minlength=n)
    v = np.bincount(rows, lv, minlength=n)
    r = np.stack([u, v])
    stats = GramStats(
        n=n,
        inner=np.array([[kv @ kv, kv @ lv], [kv @ lv, lv @ lv]]),
        dd=np.zeros((2, 2)),
        trace=np.zeros(2),
        uu=r @ r.T,
        ud=np.zeros((2, 2)),
        total=r.sum(1),
    )
    return float(hsic_matrix(stats, debiased=True)[0, 1])


def _released_hsic(
    kv: np.ndarray, lv: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int
) -> float:
    """The unbiased HSIC formula applied literally to masked (asymmetric) kernels K̃, L̃ with
    zero diagonals: [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2·1ᵀK̃L̃1/(n−2)] / (n(n−3)),
    as the authors' released code computes it (tr(K̃L̃) = Σᵢⱼ K̃ᵢⱼ L̃ⱼᵢ)."""
    km = sparse.csr_matrix((kv, (rows, cols)), shape=(n, n))
    lm = sparse.csr_matrix((lv, (rows, cols)), shape=(n, n))
    trace = float(km.multiply(lm.T).sum())
    totals = float(km.sum()) * float(lm.sum()) / ((n - 1) * (n - 2))
    cross = float(np.asarray(km.sum(axis=0)).ravel() @ np.asarray(lm.sum(axis=1)).ravel())
    return (trace + totals - 2.0 * cross / (n - 2)) / (n * (n - 3))


def cknna(
    x: Any,
    y: Any,
    *,
    k: int = 10,
    variant: Literal["paper", "released"] = "paper",
    device: DeviceLike = "auto",
    pool: Pool = "mean",
) -> float:
    """CKNNA (Huh et al. 2024, "The Platonic Representation Hypothesis"): debiased CKA restricted
    to mutual neighbours.

    Kernels are cosine similarities K_ij = cos(x_i, x_j), L_ij = cos(y_i, y_j). Align(K, L) is
    the unbiased HSIC of K and L with every entry zeroed except pairs (i, j) where j is among
    the k nearest neighbours of i in *both* spaces (the paper's α(i, j));
    CKNNA = Align(K, L) / √(Align(K, K) Align(L, L)), where the self terms keep each space's
    own kNN pairs. With k = n − 1 it equals debiased linear CKA of the row-normalised data.
    Needs n ≥ 4; O(n·k) memory beyond the kNN search.

    ``variant="paper"`` (default) follows the paper's element-wise formula: each masked pair
    (i, j) contributes K_ij·L_ij, and the row sums enter as Σᵢ (K̃1)ᵢ(L̃1)ᵢ. The masks are not
    symmetric (j may be a neighbour of i but not i of j), so this differs from
    ``variant="released"``, the authors' released code (github.com/minyoungg/platonic-rep),
    which applies the matrix formula literally — tr(K̃L̃) = Σ K̃ᵢⱼL̃ⱼᵢ and 1ᵀK̃L̃1 — and adds
    1e-6 to the denominator: typically by 0.02–0.07. Use "released" to compare with numbers
    published with that code.
    """
    if variant not in ("paper", "released"):
        raise ValueError(f"variant must be 'paper' or 'released', got {variant!r}")
    a, b, k = _prepared(x, y, k, device, pool)
    n = int(a.shape[0])
    if n < 4:
        raise ValueError(f"CKNNA uses the unbiased HSIC, which needs n ≥ 4 samples, got {n}")
    ia, ib = knn(a, k, device=device).indices, knn(b, k, device=device).indices
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    ka, la = _pair_values(a, rows, ia.reshape(-1)), _pair_values(b, rows, ia.reshape(-1))
    lb = _pair_values(b, rows, ib.reshape(-1))
    mutual = _overlap(ia, ib).reshape(-1)
    if variant == "released":
        cols_a, cols_b = ia.reshape(-1), ib.reshape(-1)
        h_kl = _released_hsic(ka[mutual], la[mutual], rows[mutual], cols_a[mutual], n)
        h_kk = _released_hsic(ka, ka, rows, cols_a, n)
        h_ll = _released_hsic(lb, lb, rows, cols_b, n)
        return float(h_kl / (np.sqrt(max(h_kk * h_ll, 0.0)) + 1e-6))
    h_kl = _masked_hsic(ka[mutual], la[mutual], rows[mutual], n)
    h_kk = _masked_hsic(ka, ka, rows, n)
    h_ll = _masked_hsic(lb, lb, rows, n)
    if not h_kk * h_ll > 0:
        warnings.warn(
            "CKNNA self-alignment is not positive (too few samples or degenerate neighbourhoods); "
            "returning NaN",
            ExplorerWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(h_kl / np.sqrt(h_kk * h_ll))
