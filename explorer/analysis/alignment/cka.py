"""Centred kernel alignment (Kornblith et al. 2019): linear (biased / debiased), RBF, all-pairs.

Variants, named:

- ``debiased=False``: biased HSIC ("Gretton"), CKA = ‖ȲᵀX̄‖²_F / (‖X̄ᵀX̄‖_F ‖ȲᵀȲ‖_F). Inflated
  when d ≫ n (independent Gaussians give ≈ 0.97 at n = 16, d = 512).
- ``debiased=True``: unbiased HSIC ("Song" et al. 2012), needs n ≥ 4; near 0 for independent data.
- Linear CKA has two exact routes, picked by multiply-add count unless ``route`` says:
  ``"feature"`` (d × d cross-covariances Z_aᵀZ_b, cheap when n > d) and ``"gram"`` (n × n
  Gram matrices, cheap when d > n). Both use symmetry — only the upper triangle of each self
  product Z_aᵀZ_a, only the Gram tiles on and above the diagonal — and agree to rounding. On
  the CPU the products are cache-sized tiles, one single-threaded BLAS GEMM each, spread over
  one worker thread per core and folded into float64 accumulators by numba kernels.
- Precision: each representation is centred once (float64 column means, the result rounded
  to the input dtype), products run in the input precision (float32 → BLAS sgemm), and the
  sums and corrections are float64 — but for one tile row of the Gram route's K_a ⊙ K_b
  (≤ 1408 terms), summed in the input precision first. No float64 copy of the data. float32
  input then agrees with a float64 computation to ~1e-9 (the plain float32 formula: ~1e-6);
  pass float64 arrays for float64 throughout (~1e-13).
- RBF CKA bandwidth: σ² = threshold² × median of the squared pairwise distances (zeros on the
  diagonal included), as in the CKA demo notebook accompanying Kornblith et al. 2019.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal, TypeAlias

import numpy as np
import torch

from explorer.analysis.alignment._hsic import (
    PARALLEL_WORK,
    GramStats,
    Shifted,
    cka_from_hsic,
    column_means,
    feature_moments,
    hsic_matrix,
    reduce_rows,
    row_dots_into,
    shift,
    upper_tiles,
)
from explorer.analysis.alignment._prep import prepare, prepare_many
from explorer.analysis.pooling import Pool
from explorer.device import ArrayLike, DeviceLike, gemm_nt, run_on_workers
from explorer.kernels import alignment as kernels
from explorer.validation import check_number, check_paired

__all__ = ["Route", "cka_matrix", "linear_cka", "rbf_cka"]

Route: TypeAlias = Literal["auto", "feature", "gram"]
_TILE_BYTES = 1 << 24  # Gram route: one row-block tile of every representation, ≤ 16 MiB


def _min_rows(debiased: bool) -> int:
    return 4 if debiased else 2


def _block_rows(n: int, m: int, itemsize: int) -> int:
    """Rows per Gram tile: m tiles of rows² fit in :data:`_TILE_BYTES` (multiple of 64)."""
    rows = int((_TILE_BYTES / (m * itemsize)) ** 0.5) // 64 * 64
    return max(64, min(n, rows))


def _gram_inner(zs: Sequence[Any]) -> np.ndarray:
    """(m, m) ⟨K_a, K_b⟩_F of the linear Grams K_a = Z_a Z_aᵀ, float64.

    Only tiles of the upper triangle are multiplied (:func:`upper_tiles`; K is symmetric: an
    entry above the diagonal counts twice), one tile of every K_a at a time, in the input
    precision; the tile sums are float64. CPU: tiles on worker threads (:func:`~explorer.device.run_on_workers`).
    """
    m, n = len(zs), int(zs[0].shape[0])
    torch_path = isinstance(zs[0], torch.Tensor)
    rows = _block_rows(n, m, zs[0].element_size() if torch_path else zs[0].itemsize)
    if torch_path:
        inner_t = torch.zeros((m, m), dtype=torch.float64, device=zs[0].device)
        for i0, j0, ti, tj in upper_tiles(n, rows):
            tiles = torch.stack([z[i0 : i0 + ti] @ z[j0 : j0 + tj].T for z in zs])
            gi = torch.arange(i0, i0 + ti, device=zs[0].device)[:, None]
            gj = torch.arange(j0, j0 + tj, device=zs[0].device)[None, :]
            weight = (gj > gi).double() + (gj >= gi).double()  # 2 above the diagonal, 1 on it
            flat = (tiles.to(torch.float64) * weight.sqrt()).reshape(m, -1)
            inner_t += flat @ flat.T
        return inner_t.cpu().numpy()
    buffers: dict[int, np.ndarray] = {}
    partial: dict[int, np.ndarray] = {}

    def tile(worker: int, job: tuple[int, int, int, int]) -> None:
        i0, j0, ti, tj = job
        buf = buffers.setdefault(worker, np.empty((m, rows, rows), dtype=zs[0].dtype))
        for a, z in enumerate(zs):
            buf[a, :ti, :tj] = gemm_nt(z[i0 : i0 + ti], z[j0 : j0 + tj])  # one GEMM, one thread
        acc = partial.setdefault(worker, np.zeros((m, m)))
        kernels.tile_pair_sums(buf[:, :ti, :tj], i0, j0, acc)

    work = n * n * sum(int(z.shape[1]) for z in zs) // 2
    jobs = sorted(upper_tiles(n, rows), key=lambda j: -j[2] * j[3])  # big first
    run_on_workers(tile, jobs, parallel=work > PARALLEL_WORK)
    return np.sum(list(partial.values()), axis=0)


def _gram_row_sums(s: Shifted) -> np.ndarray:
    """(n, m) float64 row sums K_a 1 = Z_a (Z_aᵀ1) of the linear Grams."""
    if isinstance(s.zs[0], torch.Tensor):
        cols = [
            z.to(torch.float64) @ torch.as_tensor(v, device=z.device) for z, v in zip(s.zs, s.sums)
        ]
        return torch.stack(cols, dim=1).cpu().numpy()
    out = np.empty((len(s.zs), s.n))
    reduce_rows(
        [
            (s.n, z.shape[1], partial(row_dots_into, z[None], v[None], out[a : a + 1]), ())
            for a, (z, v) in enumerate(zip(s.zs, s.sums))
        ]
    )
    return out.T


def _gram_route_stats(s: Shifted) -> GramStats:
    """:class:`GramStats` of the linear Grams K_a = Z_a Z_aᵀ: inner products from Gram tiles,
    the rest from float64 moments (diag K_a = q_a, K_a 1 = Z_a (Z_aᵀ1))."""
    q = s.q.cpu().numpy() if isinstance(s.q, torch.Tensor) else s.q
    r = _gram_row_sums(s)
    return GramStats(
        n=s.n,
        inner=_gram_inner(s.zs),
        dd=q.T @ q,
        trace=q.sum(0),
        uu=r.T @ r,
        ud=r.T @ q,
        total=r.sum(0),
    )


def kernel_stats(grams: ArrayLike) -> GramStats:
    """:class:`GramStats` of m full (n, n) kernel matrices (m, n, n), reduced in float64."""
    m, n = int(grams.shape[0]), int(grams.shape[1])
    if isinstance(grams, torch.Tensor):
        g64 = grams.to(torch.float64)
        flat = g64.reshape(m, -1)
        inner = (flat @ flat.T).cpu().numpy()
        rowsum = g64.sum(2).cpu().numpy()
        diag = torch.diagonal(g64, dim1=1, dim2=2).cpu().numpy()
    else:
        inner = np.zeros((m, m))
        kernels.tile_pair_sums(grams, 0, 0, inner)  # symmetric: the upper triangle suffices
        rowsum = grams.sum(2, dtype=np.float64)
        diag = np.diagonal(grams, axis1=1, axis2=2).astype(np.float64)
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
    """The cheaper exact route by multiply-adds: ZᵀZ feature products (upper halves for the
    self terms) vs upper-triangle Gram tiles plus their float64 pair sums (counted twice: not
    BLAS)."""
    m = len(dims)
    feature = n * (sum(d * d for d in dims) / 2 + sum(dims[a] * dims[b] for a, b in pairs))
    gram = n * n / 2 * (sum(dims) + m * (m + 1))
    return "feature" if feature <= gram else "gram"


def _linear_stats(
    xs: list[ArrayLike],
    pairs: set[tuple[int, int]],
    route: Route,
    names: Sequence[str],
    debiased: bool = True,
) -> GramStats:
    """Centre every x (float64 column means; products on the centred data) → :class:`GramStats`
    (``debiased=False``: ``dd`` may be left out, NaN)."""
    if route not in ("auto", "feature", "gram"):
        raise ValueError(f"route must be 'auto', 'feature' or 'gram', got {route!r}")
    if route == "auto":
        route = _choose_route(int(xs[0].shape[0]), [int(x.shape[1]) for x in xs], pairs)
    s = shift(xs, column_means(xs), transposed=route == "feature")
    for name, total in zip(names, s.q.sum(0).tolist()):
        if total == 0.0:
            s.release()
            raise ValueError(
                f"{name} is constant across samples (every row identical), so its similarity "
                "to anything is undefined; check that the layer is not dead or the inputs not "
                "identical"
            )
    try:
        if route == "feature":
            return feature_moments(s, pairs, debiased=debiased).centred_stats()
        return _gram_route_stats(s)
    finally:
        s.release()


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
    labels_a, xs_a = prepare_many(
        reps_a, "reps_a", min_rows=_min_rows(debiased), device=device, pool=pool
    )
    m_a = len(xs_a)
    if reps_b is None:
        xs, labels = xs_a, labels_a
        rows = cols = np.arange(m_a)
        pairs = {(a, b) for a in range(m_a) for b in range(a + 1, m_a)}
    else:
        labels_b, xs_b = prepare_many(
            reps_b, "reps_b", min_rows=_min_rows(debiased), device=device, pool=pool
        )
        check_paired(xs_a[0], xs_b[0], ("reps_a", "reps_b"))
        xs = xs_a + xs_b
        labels = labels_a + labels_b
        rows, cols = np.arange(m_a), m_a + np.arange(len(xs_b))
        pairs = {(int(a), int(b)) for a in rows for b in cols}
    names = [f"representation {lab!r}" for lab in labels]
    stats = _linear_stats(_common_dtype(xs), pairs, route, names, debiased)
    h = hsic_matrix(stats, debiased=debiased)
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
        cka_matrix({"X": x}, {"Y": y}, debiased=debiased, route=route, device=device, pool=pool)[
            0, 0
        ]
    )


def _rbf_gram(x: ArrayLike, threshold: float, name: str) -> ArrayLike:
    """exp(−‖xᵢ−xⱼ‖² / (2 σ²)), σ² = threshold² · median(squared distances), float64."""
    if isinstance(x, torch.Tensor):
        x64 = x.to(torch.float64)
        sq = (x64 * x64).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * (x64 @ x64.T)).clamp_min(0.0)
        flat = d2.reshape(-1)
        k = flat.numel()  # numpy's median: mean of the two middle values when k is even
        med = 0.5 * float(flat.kthvalue((k + 1) // 2).values + flat.kthvalue(k // 2 + 1).values)
    else:
        a = np.asarray(x, dtype=np.float64)
        norms = np.einsum("ij,ij->i", a, a)
        d2 = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (a @ a.T), 0.0)
        med = float(np.median(d2))
    if med == 0.0:
        raise ValueError(
            f"{name}: the median squared distance between samples is 0 (constant across "
            "samples, or most rows identical), so the RBF bandwidth is undefined"
        )
    scale = -1.0 / (2.0 * threshold**2 * med)
    return torch.exp(d2 * scale) if isinstance(d2, torch.Tensor) else np.exp(d2 * scale)


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
    threshold = check_number(threshold, "threshold", low=0.0, low_open=True)
    x = prepare(x, "X", min_rows=_min_rows(debiased), device=device, pool=pool)
    y = prepare(y, "Y", min_rows=_min_rows(debiased), device=device, pool=pool)
    check_paired(x, y)
    grams: list[Any] = [_rbf_gram(x, threshold, "X"), _rbf_gram(y, threshold, "Y")]
    block = torch.stack(grams) if isinstance(grams[0], torch.Tensor) else np.stack(grams)
    return float(cka_from_hsic(hsic_matrix(kernel_stats(block), debiased=debiased))[0, 1])
