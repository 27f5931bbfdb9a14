"""Exact k-nearest neighbours (Euclidean), tiled, duplicate-safe; and the symmetric kNN graph.

Every kNN-based measure in :mod:`explorer.analysis.geometry` goes through :func:`knn`.

CPU: the points are centred and scaled by a power of two, rounded to bfloat16 where the CPU has
bfloat16 units (AMX, AVX512-BF16), else float32, and given their squared norms as extra columns,
so that one BLAS GEMM per cache-sized block yields approximate squared distances; for ``x``
against itself only blocks on or above the diagonal are multiplied, each serving both of its
point ranges. Proven bounds (the GEMM's rounding, and each point's distance to its rounding)
screen the blocks; the few pairs that can still be among a query's k nearest are recomputed
exactly in float64 (see :mod:`explorer.kernels.knn`).
CUDA: float32 GEMM tiles, the ``m = k + margin`` smallest per query recomputed in float64, and
a rounding-error bound proving no other point is closer (rows without a proof are redone by
brute force).
Either way the result equals float64 brute force, ties broken by the smaller index; a point is
never its own neighbour, but its duplicates are (at distance 0).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numba
import numpy as np
import torch

from explorer.device import (
    DeviceLike,
    as_numpy,
    as_torch,
    backend_for,
    resolve_device,
    torch_threads,
)
from explorer.kernels import knn as kernels
from explorer.validation import check_matrix, check_positive_int

__all__ = ["Neighbors", "knn", "knn_graph"]

_TILE_ELEMENTS = 1 << 23  # float32 Gram tile ≤ 32 MiB (torch path)
_BLOCK = 1024  # CPU Gram blocks of ≤ 1024 × 1024 (2 MiB bfloat16, 4 MiB float32)
_SAFETY = 2.0
_REACH = (1e-150, 1e150)  # squared distances stay normal float64 numbers


class Neighbors(NamedTuple):
    """kNN result: ``distances`` (n_queries, k) float64 ascending, ``indices`` (n_queries, k) int64."""

    distances: np.ndarray
    indices: np.ndarray


def _margin(k: int) -> int:
    return k + max(8, k // 4)


def _bfloat16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16)."""
    return any(
        getattr(torch.cpu, probe, lambda: False)()
        for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    )


_GRAM_DTYPE = torch.bfloat16 if _bfloat16_is_fast() else torch.float32
_OUTPUT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float32: 0.0}  # float32 sums are the output
_SMALLEST_NORMAL = 2.0**-126  # GEMMs may flush anything below (AMX does)


def knn(
    x: Any,
    k: int = 10,
    *,
    query: Any = None,
    device: DeviceLike = "auto",
) -> Neighbors:
    """Exact k nearest neighbours of each row of ``query`` (default: of ``x`` itself) among ``x``.

    x: (n, D) points; query: (q, D) or None. With ``query=None`` a point is never its own
    neighbour (by index), so k ≤ n − 1; duplicates of it are neighbours at distance 0.
    Returns :class:`Neighbors` with float64 Euclidean ``distances`` and int64 ``indices``
    (numpy, on the CPU), sorted ascending with ties broken by the smaller index.
    CPU: BLAS GEMM + numba kernels; CUDA: torch.
    """
    x = check_matrix(x, "x", min_rows=1)
    k = check_positive_int(k, "k")
    self_query = query is None
    if not self_query:
        query = check_matrix(query, "query")
        if query.shape[1] != x.shape[1]:
            raise ValueError(
                f"query has {query.shape[1]} features but x has {x.shape[1]}; they must match"
            )
    available = x.shape[0] - (1 if self_query else 0)
    if k > available:
        need = k + 1 if self_query else k
        raise ValueError(
            f"k={k} neighbours need at least {need} points in x, got {x.shape[0]}; "
            "lower k or pass more points"
        )
    if backend_for(device, x, query) == "torch":
        return _knn_torch(x, query, k, resolve_device(device, x, query))
    return _knn_numba(as_numpy(x), None if self_query else as_numpy(query), k)


class _Lowered(NamedTuple):
    """Scaled points s as GEMM operands: ``left[p] · right[q]`` approximates ‖h_p − h_q‖², where
    h is s rounded to the GEMM's dtype; with what bounds the error (float64 per point).

    left (t, w): [h, pieces of ‖h‖², 1, 1, 1, 0…]; right (t, w): [−2h, 1, 1, 1, pieces, 0…];
    norm: ‖h‖; resid ≥ ‖s − h‖; rho ≥ |‖h‖² − Σ pieces| (‖h‖² split in 3 pieces exactly as far
    as the dtype allows).
    """

    left: torch.Tensor
    right: torch.Tensor
    norm: np.ndarray
    resid: np.ndarray
    rho: np.ndarray


_PIECES = 3


def _rounded(a: np.ndarray) -> torch.Tensor:
    """``a`` rounded to the GEMM's dtype, subnormals flushed to zero (as AMX does)."""
    low = torch.from_numpy(a).to(_GRAM_DTYPE)
    low[low.abs() < _SMALLEST_NORMAL] = 0
    return low


def _lowered(s: np.ndarray, total: int | None = None) -> _Lowered:
    """GEMM operands of the scaled points s (t, D), padded to ``total`` rows whose squared norm
    is +inf, so that every pair with one comes out +inf."""
    t, dim = s.shape
    h_low = _rounded(s)
    h = h_low.double().numpy()
    norms = np.empty((t, 3))
    kernels.rounding_norms(s, h, norms)
    sq, resid_sq, s_sq = norms.T
    pieces, rest = torch.empty((t, _PIECES), dtype=_GRAM_DTYPE), sq.copy()
    for i in range(_PIECES):
        pieces[:, i] = _rounded(rest)
        rest -= pieces[:, i].double().numpy()
    rho = np.abs(rest) + (dim + 8) * 2.0**-52 * sq
    # ‖s − h‖ (its float64 rounding included), plus float64's rounding of s itself (the centring)
    resid = np.sqrt(resid_sq) * (1.0 + 2.0**-40) + 2.0**-50 * np.sqrt(s_sq)
    norm_cols, ones_cols = slice(dim, dim + _PIECES), slice(dim + _PIECES, dim + 2 * _PIECES)
    left, right = torch.zeros((2, total or t, _round_up(dim + 2 * _PIECES, 8)), dtype=_GRAM_DTYPE)
    left[:t, :dim], right[:t, :dim] = h_low, -2 * h_low  # exact: a power of two
    left[:t, norm_cols], right[:t, ones_cols] = pieces, pieces
    left[:, ones_cols], right[:, norm_cols] = 1, 1
    left[t:, dim], right[t:, dim + _PIECES] = torch.inf, torch.inf
    return _Lowered(left, right, np.sqrt(sq), resid, rho)


def _queries(
    rows: _Lowered, cols: _Lowered, originals: np.ndarray, total: int, k: int, unit: float
) -> kernels.Queries:
    """Fresh screening state for ``total`` queries (the first len(originals) real) against the
    points ``cols``: error terms of every pair (see :mod:`explorer.kernels.knn`)."""
    n = len(originals)
    width = rows.left.shape[1]
    gamma = _SAFETY * (width + 1) * 2.0**-24 / (1.0 - (width + 1) * 2.0**-24)  # float32 sums
    rel = _SAFETY * _OUTPUT_ROUNDOFF[_GRAM_DTYPE]
    rad, extra = np.zeros(total), np.zeros(total)
    rad[:n] = rows.resid + cols.resid.max()
    extra[:n] = (
        gamma * (rows.norm + cols.norm.max()) ** 2 * (1.0 + 2.0**-6)
        + rows.rho
        + cols.rho.max()
        + width * 4.0 * _SMALLEST_NORMAL
    )
    limit = np.full(total, np.inf, dtype=np.float32)
    limit[n:] = -np.inf  # padding takes nothing
    capacity = 4 * k + 32  # pruned when full: smaller prunes more often, larger screens more
    return kernels.Queries(
        limit=limit,
        cand=np.empty((total, capacity), dtype=np.int32),
        cand_o=np.empty((total, capacity), dtype=np.float32),
        filled=np.zeros(total, dtype=np.int64),
        keys=np.full((total, k), np.inf),
        ids=np.full((total, k), -1, dtype=np.int64),
        rad=rad,
        extra=extra,
        rel=rel / (1.0 - rel),
        unit=unit,
        points=originals,
    )


def _knn_numba(x: np.ndarray, query: np.ndarray | None, k: int) -> Neighbors:
    self_query = query is None
    data64 = np.ascontiguousarray(x, dtype=np.float64)
    queries64 = data64 if self_query else np.ascontiguousarray(query, dtype=np.float64)
    center = data64.mean(axis=0)
    data_s = data64 - center
    queries_s = data_s if self_query else queries64 - center
    reach = max(-data_s.min(), data_s.max(), -queries_s.min(), queries_s.max())  # no |·| copy
    if not (reach == 0 or _REACH[0] <= reach <= _REACH[1]):
        raise ValueError(
            f"the points' centred coordinates reach {reach:.3g}; knn squares them in float64, "
            f"which needs magnitudes within [{_REACH[0]:g}, {_REACH[1]:g}]: rescale x (and query)"
        )
    scale = math.ldexp(1.0, -math.frexp(reach)[1]) if reach > 0 else 1.0  # max |·| in [½, 1)
    data_s *= scale  # exact: a power of two
    if not self_query:
        queries_s *= scale
    if self_query:
        q = _self_neighbours(data_s, data64, k, scale * scale)
    else:
        q = _query_neighbours(queries_s, data_s, queries64, data64, k, scale * scale)
    t = len(queries64)
    return Neighbors(np.sqrt(q.keys[:t]), q.ids[:t])


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _bits(gram: torch.Tensor) -> tuple[np.ndarray, int]:
    """A float32 or bfloat16 tensor as unsigned bit patterns, and the shift that widens them."""
    if gram.dtype == torch.bfloat16:
        return gram.view(torch.int16).numpy().view(np.uint16), 16
    return gram.view(torch.int32).numpy().view(np.uint32), 0


def _self_neighbours(
    data_s: np.ndarray, data64: np.ndarray, k: int, unit: float
) -> kernels.Queries:
    """Each point's k nearest others (the state after :func:`kernels.finish`).

    Points are padded to nb blocks of b, a multiple of the kernels' chunk. Each round takes
    blocks with disjoint point ranges, first the diagonal ones, then every off-diagonal pair
    once (circle method); each worker thread multiplies its share of a round's blocks one by
    one (single-threaded GEMMs, so that the block it screens next is still in its cache) and
    folds them into the points' states.
    """
    n = len(data64)
    nb = -(-n // _BLOCK)
    b = _round_up(-(-n // nb), kernels.CHUNK)
    points = _lowered(data_s, nb * b)
    q = _queries(points, points, data64, nb * b, k, unit)
    left, right = (side.view(nb, b, -1) for side in (points.left, points.right))
    workers = max(1, min(numba.get_num_threads(), nb))
    grams = torch.empty((workers, b, b), dtype=left.dtype)
    bits, shift = _bits(grams)

    def fold(worker: int, pairs: list[tuple[int, int]]) -> None:
        for i, j in pairs:
            torch.mm(left[i], right[j].T, out=grams[worker])  # BLAS GEMM
            kernels.fold_block(bits[worker], shift, i * b, j * b, q, data64)

    if workers == 1:  # no pool, and the GEMMs keep torch's threads
        fold(0, [pair for pairs in _rounds(nb) for pair in pairs])
    else:
        with torch_threads(1), ThreadPoolExecutor(workers) as pool:
            for pairs in _rounds(nb):
                shares = (pairs[w::workers] for w in range(workers))
                list(pool.map(fold, range(workers), shares))
    kernels.finish(q, data64, n)
    return q


def _rounds(nb: int) -> list[list[tuple[int, int]]]:
    """Block pairs (i ≤ j) in rounds, no two in a round sharing a block: the diagonal, then the
    circle method's rounds."""
    rounds: list[list[tuple[int, int]]] = [[(i, i) for i in range(nb)]]
    players: list[int | None] = [*range(nb), *([None] if nb % 2 else [])]
    half = len(players) // 2
    for _ in range(len(players) - 1):
        pairs = [(players[i], players[-1 - i]) for i in range(half)]
        rounds.append([(min(i, j), max(i, j)) for i, j in pairs if i is not None and j is not None])
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


def _query_neighbours(
    queries_s: np.ndarray,
    data_s: np.ndarray,
    queries64: np.ndarray,
    data64: np.ndarray,
    k: int,
    unit: float,
) -> kernels.Queries:
    """Each query's k nearest points (the state after :func:`kernels.finish`)."""
    nq = len(queries64)
    queries = _lowered(queries_s)
    points = _lowered(data_s, _round_up(len(data64), kernels.CHUNK))
    q = _queries(queries, points, queries64, nq, k, unit)
    buffer = torch.empty(_BLOCK * _BLOCK, dtype=points.left.dtype)
    for r0 in range(0, nq, _BLOCK):
        for c0 in range(0, len(points.right), _BLOCK):
            a, x = queries.left[r0 : r0 + _BLOCK], points.right[c0 : c0 + _BLOCK]
            gram = buffer[: len(a) * len(x)].view(len(a), len(x))
            torch.mm(a, x.T, out=gram)  # BLAS GEMM
            bits, shift = _bits(gram)
            kernels.fold_rows(bits, shift, r0, c0, q, data64)
    kernels.finish(q, data64, nq)
    return q


def _sort_by_distance_then_index(sq: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
    order = torch.argsort(idx, dim=1)
    sq, idx = torch.gather(sq, 1, order), torch.gather(idx, 1, order)
    order = torch.argsort(sq, dim=1, stable=True)
    return torch.gather(sq, 1, order), torch.gather(idx, 1, order)


def _knn_torch(x: Any, query: Any, k: int, device: torch.device) -> Neighbors:
    """The same algorithm in torch (CUDA path; also runs on CPU tensors for testing)."""
    self_query = query is None
    data64 = as_torch(x, device=device, dtype=torch.float64)
    queries64 = data64 if self_query else as_torch(query, device=device, dtype=torch.float64)
    center = data64.mean(dim=0)
    data_c = data64 - center
    queries_c = data_c if self_query else queries64 - center
    data32 = data_c.float()
    x_sq = (data_c * data_c).sum(dim=1)
    q_sq = x_sq if self_query else (queries_c * queries_c).sum(dim=1)
    n, dim = data64.shape
    nq = queries64.shape[0]
    available = n - (1 if self_query else 0)
    m = min(_margin(k), available)
    x_sq_max = float(x_sq.max())
    u = float(np.finfo(np.float32).eps) / 2

    out_sq, out_idx = [], []
    tile = max(16, min(nq, _TILE_ELEMENTS // max(n, 1), _TILE_ELEMENTS // (m * dim)))
    for start in range(0, nq, tile):
        stop = min(nq, start + tile)
        rows = torch.arange(start, stop, device=device)
        approx = (
            q_sq[start:stop, None]
            + x_sq[None, :]
            - 2.0 * (queries_c[start:stop].float() @ data32.T).double()
        )
        if self_query:
            approx[torch.arange(stop - start, device=device), rows] = torch.inf
        top = torch.topk(approx, m, dim=1, largest=False, sorted=True)
        cand = top.indices
        exact = ((queries64[start:stop, None, :] - data64[cand]) ** 2).sum(dim=2)
        sq, ids = _sort_by_distance_then_index(exact, cand)
        sq, ids = sq[:, :k], ids[:, :k]
        if m < available:
            # every non-candidate is ≥ the m-th approximate value (ties with it included)
            threshold = top.values[:, -1]
            bound = _SAFETY * (dim + 2) * u * (q_sq[start:stop] + x_sq_max) + 1e-300
            redo = torch.nonzero(~(sq[:, -1] < threshold - bound)).flatten()
            for r in torch.split(redo, max(1, _TILE_ELEMENTS // (n * dim))):
                full = ((queries64[start:stop][r, None, :] - data64[None]) ** 2).sum(dim=2)
                if self_query:
                    full[torch.arange(r.numel(), device=device), rows[r]] = torch.inf
                all_ids = torch.arange(n, device=device).expand(r.numel(), n)
                fsq, fids = _sort_by_distance_then_index(full, all_ids)
                sq[r], ids[r] = fsq[:, :k], fids[:, :k]
        out_sq.append(sq)
        out_idx.append(ids)
    sq_all = torch.cat(out_sq).clamp_min(0.0).sqrt()
    return Neighbors(as_numpy(sq_all), as_numpy(torch.cat(out_idx)).astype(np.int64))


def knn_graph(neighbors: Neighbors) -> tuple[np.ndarray, np.ndarray]:
    """Undirected kNN graph: i ~ j when j is among i's neighbours or i among j's.

    Returns ``edges`` (e, 2) int64 with i < j, sorted, and ``weights`` (e,) = Euclidean distance.
    """
    dist, idx = neighbors
    n, k = idx.shape
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = idx.reshape(-1)
    w = dist.reshape(-1)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = lo * n + hi
    _, first = np.unique(key, return_index=True)
    edges = np.stack([lo[first], hi[first]], axis=1)
    return edges, w[first].astype(np.float64)
