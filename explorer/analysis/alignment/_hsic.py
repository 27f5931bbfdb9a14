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

Precision: each representation is shifted once (``z = x − shift``, rounded to the input
dtype), the products ZᵀZ run in the input precision (float32 → BLAS sgemm) on the shifted
data, and everything else — row norms, column sums, the shift corrections — in float64 from
the stored z, so the statistics are exact for the data as multiplied.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numba
import numpy as np
import torch

from explorer.device import gemm_nt, give_back, run_on_workers, scratch
from explorer.errors import ExplorerWarning
from explorer.kernels import alignment as kernels

__all__ = [
    "FeatureMoments",
    "GramStats",
    "Shifted",
    "cka_from_hsic",
    "column_means",
    "feature_moments",
    "hsic_matrix",
    "reduce_rows",
    "row_dots_into",
    "shift",
    "upper_tiles",
]

_FEATURE_TILE = 512  # CPU: ZᵀZ in tiles of ≤ 512 × 512 features (256 on the diagonal)
_CHUNK_ELEMENTS = 1 << 18  # CPU: row ranges of at least this many elements per worker job
PARALLEL_WORK = 1 << 24  # CPU: multiply-adds below which GEMM tiles run on the calling thread
# CPU feature products sum samples in chunks of 2048, one GEMM each adding into the last one's
# output (oneDNN's float32 sums over 8000 samples in one GEMM came out a few times less
# accurate in CKA: ~1e-8 against float64 with chunks, the float32 formula's ~1e-6).
_SAMPLE_CHUNK = 2048


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


RowKernel = Callable[[int, int, np.ndarray], None]


def reduce_rows(tasks: Sequence[tuple[int, int, RowKernel, tuple[int, ...]]]) -> list[np.ndarray]:
    """Run row-range numba kernels for several arrays in one pass of the worker threads.

    Each task ``(n, d, kernel, shape)`` covers an (n, d) array: its rows are split into ranges
    and ``kernel(r0, r1, acc)`` adds each range into a float64 accumulator of ``shape`` (zeros)
    owned by the worker that runs it. Returns each task's accumulators summed.
    """
    threads = max(1, numba.get_num_threads())
    jobs = []
    for t, (n, d, _, _) in enumerate(tasks):
        step = -(-n // max(1, min(2 * threads, n * d // _CHUNK_ELEMENTS, n)))
        jobs += [(t, r0, min(n, r0 + step)) for r0 in range(0, n, step)]
    acc: dict[tuple[int, int], np.ndarray] = {}

    def job(worker: int, j: tuple[int, int, int]) -> None:
        t, r0, r1 = j
        tasks[t][2](r0, r1, acc.setdefault((worker, t), np.zeros(tasks[t][3])))

    run_on_workers(job, jobs, parallel=len(jobs) > len(tasks))
    return [
        np.sum([v for (_, u), v in acc.items() if u == t], axis=0) if n else np.zeros(shape)
        for t, (n, _, _, shape) in enumerate(tasks)
    ]


@dataclass
class Shifted:
    """m representations over the same n samples, each shifted by a fixed vector.

    ``zs[a]`` = x_a − shift_a in x_a's precision (numpy on the CPU, torch on any device): as
    (n, d_a), or when ``transposed`` as feature rows in chunks of k samples, (C, d_a, k) with
    ``zs[a][c, j, i] = z_a[c k + i, j]`` (CPU: C equal chunks of k ≤ 2048, zero-padded past n;
    torch: C = 1) —
    the layout the feature products Z_aᵀZ_b multiply fastest. ``q`` (n, m) float64: row norms²
    of each z_a; ``sums[a]`` (d_a,) float64: column sums of z_a (≈ 0 when the shift is the mean).
    """

    zs: list[Any]  # all numpy or all torch
    q: Any
    sums: list[np.ndarray]
    transposed: bool = False

    @property
    def n(self) -> int:
        return int(self.q.shape[0])

    def release(self) -> None:
        """Hand the shifted copies back for reuse (CPU, :func:`~explorer.device.scratch`);
        nothing may read ``zs`` afterwards."""
        if not isinstance(self.q, torch.Tensor):
            give_back(*self.zs)
        self.zs = []


def column_means(xs: Sequence[Any]) -> list[Any]:
    """(d_a,) float64 column means of each x_a (n, d_a), summed in float64 without a float64
    copy on the CPU (numba, all arrays in one pass of the workers); torch on its device."""
    if isinstance(xs[0], torch.Tensor):
        return [x.sum(0, dtype=torch.float64) / x.shape[0] for x in xs]
    cs = [np.ascontiguousarray(x) for x in xs]
    tasks = [(c.shape[0], c.shape[1], partial(_column_sums, c), (c.shape[1],)) for c in cs]
    return [total / c.shape[0] for total, c in zip(reduce_rows(tasks), cs)]


def _column_sums(x: np.ndarray, r0: int, r1: int, acc: np.ndarray) -> None:
    kernels.column_sums(x, r0, r1, acc)


def _shift_rows(
    x: np.ndarray, by: np.ndarray, z: np.ndarray, q: np.ndarray, transposed: bool,
    r0: int, r1: int, acc: np.ndarray,
) -> None:  # fmt: skip
    kernels.shift_rows(x, by, r0, r1, z, q, acc, transposed)


def row_dots_into(
    z: np.ndarray, v: np.ndarray, out: np.ndarray, r0: int, r1: int, _: Any = None
) -> None:
    """out[:, r0:r1] ← float64 dots of z's rows with each row of v (see
    :func:`explorer.kernels.alignment.row_dots`)."""
    kernels.row_dots(z, v, r0, r1, out)


def shift(xs: Sequence[Any], shifts: Sequence[Any], *, transposed: bool = False) -> Shifted:
    """Shift every x_a (n, d_a) by shifts[a] (float64 (d_a,)); float64 row/column moments."""
    if isinstance(xs[0], torch.Tensor):
        zs_t = [x - s.to(x.dtype) for x, s in zip(xs, shifts)]
        q_t = torch.stack([(z.to(torch.float64) ** 2).sum(1) for z in zs_t], dim=1)
        sums = [z.sum(0, dtype=torch.float64).cpu().numpy() for z in zs_t]
        return Shifted([z.T[None] if transposed else z for z in zs_t], q_t, sums, transposed)
    n = int(xs[0].shape[0])
    per_chunk = -(-n // -(-n // _SAMPLE_CHUNK))  # equal chunks: little zero padding
    k = min(n, -(-per_chunk // 16) * 16)
    q = np.empty((len(xs), n))
    srcs = [np.ascontiguousarray(x) for x in xs]
    zs = [
        scratch((-(-n // k), x.shape[1], k) if transposed else (1, n, x.shape[1]), x.dtype)
        for x in srcs
    ]
    if transposed:
        for z in zs:
            z[-1, :, n - (len(z) - 1) * k :] = 0  # the padding past n
    tasks = [
        (n, x.shape[1], partial(_shift_rows, x, np.asarray(s, dtype=np.float64), z, q[a],
                                transposed), (x.shape[1],))
        for a, (x, s, z) in enumerate(zip(srcs, shifts, zs))
    ]  # fmt: skip
    sums = reduce_rows(tasks)
    return Shifted(
        [z if transposed else z[0] for z in zs], np.ascontiguousarray(q.T), sums, transposed
    )


@dataclass
class FeatureMoments:
    """Additive moments of m shifted representations Z_a (n × d_a), stored in float64.

    ``gram[a][b] = Z_aᵀZ_b`` for a < b (None where not needed) and ``gram[a][a]`` = the upper
    triangle of Z_aᵀZ_a (strict lower part zero); ``sums[a] = Z_aᵀ1``, ``w[a][b] = Z_aᵀ q_b``
    with q_b = row norms² of Z_b, ``qq = QᵀQ``, ``qsum = Σq``. Every HSIC formula is
    invariant to the shifts, and a shift near the mean keeps the float64 sums well conditioned.
    """

    n: int
    gram: list[list[np.ndarray | None]]
    sums: list[np.ndarray]
    w: list[list[np.ndarray]] | None  # None: moments for the biased estimator only
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
            if self.w is not None and other.w is not None:
                for b in range(len(self.w[a])):
                    self.w[a][b] += other.w[a][b]
        self.qq += other.qq
        self.qsum += other.qsum

    def centred_stats(self) -> GramStats:
        """Statistics of the centred linear kernels K̄_a = Z̄_a Z̄_aᵀ (K̄ 1 = 0); ``dd`` is NaN
        when the moments were formed for the biased estimator only (``w`` None)."""
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
                # ‖Z̄_aᵀZ̄_b‖²_F with Z̄_aᵀZ̄_b = G − n μ_a μ_bᵀ, and μ_aᵀ G μ_b
                frob, quad = kernels.centred_frobenius(g, mu[a], mu[b], float(n), a == b)
                inner[a, b] = inner[b, a] = frob
                if a == b:
                    trace[a] = float(np.trace(g)) - n * msq[a]
                if self.w is None:
                    dd[a, b] = dd[b, a] = np.nan
                    continue
                # Σ_i q̄_a,i q̄_b,i with q̄ = ‖z − μ‖² = q − 2 z·μ + ‖μ‖²
                val = (
                    self.qq[a, b]
                    - 2.0 * float(mu[b] @ self.w[b][a])
                    - 2.0 * float(mu[a] @ self.w[a][b])
                    + msq[b] * self.qsum[a]
                    + msq[a] * self.qsum[b]
                    + 4.0 * quad
                    - 3.0 * n * msq[a] * msq[b]
                )
                dd[a, b] = dd[b, a] = val
        return GramStats(n=n, inner=inner, dd=dd, trace=trace)


def _products(m: int, pairs: set[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """(a, b) with a ≤ b whose ZᵀZ is needed: every self product, and the listed cross ones."""
    return [
        (a, b) for a in range(m) for b in range(a, m) if a == b or pairs is None or (a, b) in pairs
    ]


def upper_tiles(n: int, t: int) -> Iterator[tuple[int, int, int, int]]:
    """(i0, j0, rows, cols) tiles covering the upper triangle (diagonal included) of an n × n
    symmetric matrix: t × t blocks above the diagonal, and each diagonal block as row panels
    of t/4 rows from the diagonal to the block's end (only the t/4-wide triangles under the
    diagonal get computed needlessly: 1/8 of a diagonal block). Clipped at n."""
    p = max(1, t // 4)
    for i0 in range(0, n, t):
        for j0 in range(i0 + t, n, t):
            yield i0, j0, min(t, n - i0), min(t, n - j0)
        end = min(n, i0 + t)
        for r in range(i0, end, p):
            yield r, r, min(p, end - r), end - r


def _feature_tiles(
    widths: Sequence[int], products: list[tuple[int, int]]
) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(a, b, i0, j0, rows, cols) tiles of every Z_aᵀZ_b: ``_FEATURE_TILE``² blocks, only the
    upper triangle's (:func:`upper_tiles`) when a = b."""
    t = _FEATURE_TILE
    for a, b in products:
        if a == b:
            yield from ((a, a, *tile) for tile in upper_tiles(widths[a], t))
            continue
        for i0 in range(0, widths[a], t):
            for j0 in range(0, widths[b], t):
                yield a, b, i0, j0, min(t, widths[a] - i0), min(t, widths[b] - j0)


def _gram_products(
    s: Shifted, products: list[tuple[int, int]]
) -> dict[tuple[int, int], np.ndarray]:
    """Z_aᵀZ_b in float64 for each product (upper triangle for a = b), GEMMs in input precision."""
    zts = s.zs  # (C, d_a, k) each
    if isinstance(zts[0], torch.Tensor):
        out = {}
        for a, b in products:
            g = zts[a][0] @ zts[b][0].T
            out[a, b] = (torch.triu(g) if a == b else g).to(torch.float64).cpu().numpy()
        return out
    widths = [int(z.shape[1]) for z in zts]
    grams = {(a, b): np.zeros((widths[a], widths[b])) for a, b in products}

    def tile(worker: int, job: tuple[int, int, int, int, int, int]) -> None:
        a, b, i0, j0, rows, cols = job
        product = None
        for left, right in zip(zts[a], zts[b]):  # one GEMM per sample chunk (one thread),
            product = gemm_nt(left[i0 : i0 + rows], right[j0 : j0 + cols], product)  # summed
        kernels.add_tile(grams[a, b], product, i0, j0, a == b)

    work = s.n * sum(widths[a] * widths[b] for a, b in products)
    jobs = sorted(_feature_tiles(widths, products), key=lambda j: -j[4] * j[5])  # big first:
    run_on_workers(tile, jobs, parallel=work > PARALLEL_WORK)  # the last jobs finish together
    return grams


def feature_moments(
    s: Shifted, pairs: set[tuple[int, int]] | None = None, *, debiased: bool = True
) -> FeatureMoments:
    """Moments of one batch of m shifted representations (``s.transposed``), numpy or torch.

    ``Z_aᵀZ_b`` runs in the input precision (CPU: float32 feature tiles of one GEMM per sample
    chunk (:func:`~explorer.device.gemm_nt`) on worker threads, only the upper tiles of
    Z_aᵀZ_a); every sum is float64. ``pairs``: the cross products a < b to form (default all);
    self products always. ``debiased=False`` skips the row-norm moments (``w``) that only the
    unbiased estimator needs.
    """
    if not s.transposed:
        raise ValueError("feature_moments needs shift(..., transposed=True)")
    m = len(s.zs)
    products = _products(m, pairs)
    grams = _gram_products(s, products)
    gram: list[list[np.ndarray | None]] = [[grams.get((a, b)) for b in range(m)] for a in range(m)]
    w: list[Any] | None = None
    if isinstance(s.q, torch.Tensor):
        q = s.q
        if debiased:
            w = [(q.T @ zt[0].to(torch.float64).T).cpu().numpy() for zt in s.zs]
        qq, qsum = (q.T @ q).cpu().numpy(), q.sum(0).cpu().numpy()
    else:
        if debiased:
            chunks, _, k = s.zs[0].shape
            padded = np.zeros((m, chunks * k))  # q_b per sample, zero past n like the chunks
            padded[:, : s.n] = s.q.T
            w = [np.empty((m, zt.shape[1])) for zt in s.zs]  # Z_aᵀ q_b: a float64 dot per feature
            reduce_rows(  # one pass over each Z_a for every q_b
                [
                    (zt.shape[1], chunks * k, partial(row_dots_into, zt, padded, w[a]), ())
                    for a, zt in enumerate(s.zs)
                ]
            )
        qq, qsum = s.q.T @ s.q, s.q.sum(0)
    w_lists = None if w is None else [list(wa) for wa in w]
    return FeatureMoments(
        n=s.n, gram=gram, sums=[x.copy() for x in s.sums], w=w_lists, qq=qq, qsum=qsum
    )
