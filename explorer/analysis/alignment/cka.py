"""Centred kernel alignment (Kornblith et al. 2019): linear (biased / debiased), RBF, all-pairs.

Variants, named:

- ``debiased=False``: biased HSIC ("Gretton"), CKA = ‖ȲᵀX̄‖²_F / (‖X̄ᵀX̄‖_F ‖ȲᵀȲ‖_F). Inflated
  when d ≫ n (independent Gaussians give ≈ 0.97 at n = 16, d = 512).
- ``debiased=True``: unbiased HSIC ("Song" et al. 2012), needs n ≥ 4; near 0 for independent data.
- Linear CKA has two exact routes, picked by flop count unless ``route`` says: ``"feature"``
  (d × d cross-covariances, cheap when n > d) and ``"gram"`` (n × n Gram matrices in row blocks,
  cheap when d > n). Both agree to rounding.
- Precision: products run in the input precision (float32 → BLAS sgemm), every sum in float64;
  pass float64 arrays for float64 throughout (agreement then ~1e-12).
- RBF CKA bandwidth: σ² = threshold² × median of the squared pairwise distances (zeros on the
  diagonal included), as in the CKA demo notebook accompanying Kornblith et al. 2019.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import torch

from explorer.analysis.alignment._hsic import (
    GramStats,
    cka_from_hsic,
    feature_moments,
    hsic_matrix,
)
from explorer.analysis.alignment._prep import prepare, prepare_many
from explorer.analysis.pooling import Pool
from explorer.device import ArrayLike, DeviceLike
from explorer.kernels import alignment as kernels
from explorer.validation import check_paired

__all__ = ["Route", "centre", "cka_matrix", "linear_cka", "rbf_cka"]

Route: TypeAlias = Literal["auto", "feature", "gram"]
_BLOCK_BYTES = 1 << 28  # 256 MiB of Gram rows in flight


def centre(x: ArrayLike, name: str = "X") -> ArrayLike:
    """Column-centre ``x`` (mean in float64, result in x's dtype); reject constant data."""
    if isinstance(x, torch.Tensor):
        z = x - x.to(torch.float64).mean(0).to(x.dtype)
        norm = float(torch.linalg.vector_norm(z.to(torch.float64)))
    else:
        z = x - x.mean(0, dtype=np.float64).astype(x.dtype)
        norm = float(np.linalg.norm(z.astype(np.float64, copy=False)))
    if norm == 0.0:
        raise ValueError(
            f"{name} is constant across samples (every row identical), so its similarity to "
            "anything is undefined; check that the layer is not dead or the inputs not identical"
        )
    return z


def _min_rows(debiased: bool) -> int:
    return 4 if debiased else 2


def _gram_blocks(zs: Sequence[Any], rows: int) -> Iterator[tuple[int, ArrayLike]]:
    """Yield (start, (m, t, n) rows start…start+t of every linear Gram Z_a Z_aᵀ)."""
    n = zs[0].shape[0]
    if isinstance(zs[0], torch.Tensor):
        for start in range(0, n, rows):
            yield start, torch.stack([z[start : start + rows] @ z.T for z in zs])
        return
    buf = np.empty((len(zs), min(rows, n), n), dtype=zs[0].dtype)  # reused: no per-block copies
    for start in range(0, n, rows):
        t = min(n, start + rows) - start
        for a, z in enumerate(zs):
            np.matmul(z[start : start + t], z.T, out=buf[a, :t])
        yield start, buf[:, :t]


def gram_stats(blocks: Iterator[tuple[int, ArrayLike]], m: int, n: int) -> GramStats:
    """Reduce row blocks of m Gram matrices to :class:`GramStats` (float64, one pass)."""
    inner = np.zeros((m, m))
    diag = np.zeros((m, n))
    rowsum = np.zeros((m, n))
    for start, block in blocks:
        t = block.shape[1]
        idx = np.arange(t)
        if isinstance(block, torch.Tensor):
            b64 = block.to(torch.float64)
            flat = b64.reshape(m, -1)
            inner += (flat @ flat.T).cpu().numpy()
            rowsum[:, start : start + t] = b64.sum(2).cpu().numpy()
            diag[:, start : start + t] = b64[:, idx, start + idx].cpu().numpy()
        else:
            rs = np.empty((m, t))
            kernels.gram_block_sums(block, inner, rs)
            rowsum[:, start : start + t] = rs
            diag[:, start : start + t] = block[:, idx, start + idx]
    return GramStats(
        n=n,
        inner=inner,
        dd=diag @ diag.T,
        trace=diag.sum(1),
        uu=rowsum @ rowsum.T,
        ud=rowsum @ diag.T,
        total=rowsum.sum(1),
    )


def _choose_route(n: int, dims: Sequence[int], pairs: set[tuple[int, int]]) -> Route:
    feature = n * (sum(d * d for d in dims) / 2 + sum(dims[a] * dims[b] for a, b in pairs))
    m = len(dims)
    gram = n * n * (sum(dims) + m * (m + 1) / 2)
    return "feature" if feature <= gram else "gram"


def _linear_stats(zs: list[ArrayLike], pairs: set[tuple[int, int]], route: Route) -> GramStats:
    n = int(zs[0].shape[0])
    if route == "auto":
        route = _choose_route(n, [int(z.shape[1]) for z in zs], pairs)
    if route == "feature":
        return feature_moments(zs, pairs).centred_stats()
    if route == "gram":
        itemsize = zs[0].element_size() if isinstance(zs[0], torch.Tensor) else zs[0].itemsize
        rows = max(1, min(n, _BLOCK_BYTES // (len(zs) * n * itemsize)))
        return gram_stats(_gram_blocks(zs, rows), len(zs), n)
    raise ValueError(f"route must be 'auto', 'feature' or 'gram', got {route!r}")


def _common_dtype(xs: list[ArrayLike]) -> list[ArrayLike]:
    """Promote to float64 when precisions are mixed (one GEMM dtype for all pairs)."""
    wide = any(x.dtype in (np.float64, torch.float64) for x in xs)
    if not wide:
        return xs
    return [
        x.to(torch.float64) if isinstance(x, torch.Tensor) else x.astype(np.float64) for x in xs
    ]


def cka_matrix(
    reps_a: Any,
    reps_b: Any = None,
    *,
    debiased: bool = False,
    route: Route = "auto",
    device: DeviceLike = "auto",
    pool: Pool = "mean",
) -> np.ndarray:
    """Linear CKA between every pair of representations, in one pass.

    reps_a, reps_b: sequences or mappings (name → array) of (n, d_i) representations over the
    same n samples (d may differ; conv maps/token sequences are reduced with ``pool``).
    Returns (m_a, m_b) float64, or (m_a, m_a) when ``reps_b`` is None. Self-terms are computed
    once per representation, not once per pair.
    """
    _, xs_a = prepare_many(reps_a, "reps_a", min_rows=_min_rows(debiased), device=device, pool=pool)
    m_a = len(xs_a)
    if reps_b is None:
        xs = xs_a
        rows = cols = np.arange(m_a)
        pairs = {(a, b) for a in range(m_a) for b in range(a + 1, m_a)}
    else:
        _, xs_b = prepare_many(
            reps_b, "reps_b", min_rows=_min_rows(debiased), device=device, pool=pool
        )
        check_paired(xs_a[0], xs_b[0], ("reps_a", "reps_b"))
        xs = xs_a + xs_b
        rows, cols = np.arange(m_a), m_a + np.arange(len(xs_b))
        pairs = {(int(a), int(b)) for a in rows for b in cols}
    zs = [centre(x, f"representation {i}") for i, x in enumerate(_common_dtype(xs))]
    h = hsic_matrix(_linear_stats(zs, pairs, route), debiased=debiased)
    return cka_from_hsic(h, rows, cols)


def linear_cka(
    x: Any,
    y: Any,
    *,
    debiased: bool = False,
    route: Route = "auto",
    device: DeviceLike = "auto",
    pool: Pool = "mean",
) -> float:
    """Linear CKA of x (n, d₁) and y (n, d₂); ``debiased`` = unbiased HSIC (n ≥ 4)."""
    return float(
        cka_matrix([x], [y], debiased=debiased, route=route, device=device, pool=pool)[0, 0]
    )


def _rbf_gram(x: ArrayLike, threshold: float) -> ArrayLike:
    """exp(−‖xᵢ−xⱼ‖² / (2 σ²)), σ² = threshold² · median(squared distances), float64."""
    if isinstance(x, torch.Tensor):
        x64 = x.to(torch.float64)
        sq = (x64 * x64).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * (x64 @ x64.T)).clamp_min(0.0)
        flat = d2.reshape(-1)
        k = flat.numel()  # numpy's median: mean of the two middle values when k is even
        med = 0.5 * float(flat.kthvalue((k + 1) // 2).values + flat.kthvalue(k // 2 + 1).values)
        return torch.exp(-d2 / (2.0 * threshold**2 * med))
    a = np.asarray(x, dtype=np.float64)
    norms = np.einsum("ij,ij->i", a, a)
    dist2 = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (a @ a.T), 0.0)
    return np.exp(-dist2 / (2.0 * threshold**2 * float(np.median(dist2))))


def rbf_cka(
    x: Any,
    y: Any,
    *,
    threshold: float = 0.5,
    debiased: bool = False,
    device: DeviceLike = "auto",
    pool: Pool = "mean",
) -> float:
    """CKA with Gaussian kernels; bandwidth σ² = threshold² × median squared distance.

    O(n²) memory: two n × n float64 kernels. ``debiased`` uses the unbiased HSIC of the raw
    (uncentred) kernels.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    x = prepare(x, "X", min_rows=_min_rows(debiased), device=device, pool=pool)
    y = prepare(y, "Y", min_rows=_min_rows(debiased), device=device, pool=pool)
    check_paired(x, y)
    grams: list[Any] = []
    for name, a in (("X", x), ("Y", y)):
        centre(a, name)  # rejects constant data (median distance 0)
        grams.append(_rbf_gram(a, threshold))
    n = int(x.shape[0])
    block = torch.stack(grams) if isinstance(grams[0], torch.Tensor) else np.stack(grams)
    stats = gram_stats(iter([(0, block)]), 2, n)
    return float(cka_from_hsic(hsic_matrix(stats, debiased=debiased))[0, 1])
