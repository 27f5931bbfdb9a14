"""Exact k-nearest neighbours (Euclidean), tiled, duplicate-safe; and the symmetric kNN graph.

Every kNN-based measure in :mod:`explorer.analysis.geometry` goes through :func:`knn`.

CPU: the points are centred and scaled by a power of two, and Gram blocks ``q·x`` come from a
bfloat16 GEMM where the CPU has bfloat16 units (AMX, AVX512-BF16), else float32; blocks are
cache-sized, and for ``x`` against itself only those on or above the diagonal are multiplied,
each serving both of its point ranges. A rounding-error bound turns each entry into a lower
bound on the squared distance; only pairs that can still enter a query's k nearest are
recomputed exactly in float64 (see :mod:`explorer.kernels.knn`).
CUDA: float32 GEMM tiles, the ``m = k + margin`` smallest per query recomputed in float64, and
a rounding-error bound proving no other point is closer (rows without a proof are redone by
brute force).
Either way the result equals float64 brute force, ties broken by the smaller index; a point is
never its own neighbour, but its duplicates are (at distance 0).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from explorer.device import DeviceLike, as_numpy, as_torch, backend_for, resolve_device
from explorer.kernels import knn as kernels
from explorer.validation import check_matrix, check_positive_int

__all__ = ["Neighbors", "knn", "knn_graph"]

_TILE_ELEMENTS = 1 << 23  # float32 Gram tile ≤ 32 MiB (torch path)
_BLOCK = 1024  # CPU Gram blocks of ≤ 1024 × 1024 float32 (4 MiB) stay in cache
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
_UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24}


def _gemm_error(dtype: torch.dtype, dim: int) -> float:
    """c with |computed − exact| squared distance ≤ c·‖q‖‖x‖ for a ``dtype`` GEMM whose
    products accumulate in float32: input rounding (2u), accumulation ((D + 2)·u₃₂) and, for
    bfloat16, output rounding (u); 2·… for the −2 q·x term, times a safety factor."""
    u = _UNIT_ROUNDOFF[dtype]
    terms = (3 * u if dtype == torch.bfloat16 else 2 * u) + (dim + 2) * 2.0**-24
    return 2.0 * _SAFETY * terms


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


class _Scaled(NamedTuple):
    """Points centred and scaled by a power of two, in the GEMM's dtype, with what the screen
    needs per point: squared norms, norms and slack (all in scaled units, float64)."""

    low: torch.Tensor
    sq: np.ndarray
    norm: np.ndarray
    slack: np.ndarray


def _screened(s: np.ndarray, sq: np.ndarray, sq_max: float) -> _Scaled:
    """Scaled points s (t, D) with squared norms sq; the slack covers float64 rounding
    (centring, norms, the exact distances)."""
    slack = (s.shape[1] + 8) * 2.0**-50 * (sq + sq_max) + 1e-300
    return _Scaled(torch.from_numpy(s).to(_GRAM_DTYPE), sq, np.sqrt(sq), slack)


def _knn_numba(x: np.ndarray, query: np.ndarray | None, k: int) -> Neighbors:
    self_query = query is None
    data64 = np.ascontiguousarray(x, dtype=np.float64)
    queries64 = data64 if self_query else np.ascontiguousarray(query, dtype=np.float64)
    center = data64.mean(axis=0)
    data_s = data64 - center
    queries_s = data_s if self_query else queries64 - center
    reach = max(np.abs(data_s).max(), np.abs(queries_s).max())
    if not (reach == 0 or _REACH[0] <= reach <= _REACH[1]):
        raise ValueError(
            f"the points' centred coordinates reach {reach:.3g}; knn squares them in float64, "
            f"which needs magnitudes within [{_REACH[0]:g}, {_REACH[1]:g}]: rescale x (and query)"
        )
    scale = math.ldexp(1.0, -math.frexp(reach)[1]) if reach > 0 else 1.0  # max |·| in [½, 1)
    data_s *= scale  # exact: a power of two
    if not self_query:
        queries_s *= scale
    data_sq = np.einsum("ij,ij->i", data_s, data_s)
    queries_sq = data_sq if self_query else np.einsum("ij,ij->i", queries_s, queries_s)
    sq_max = max(float(data_sq.max()), float(queries_sq.max()))
    points = _screened(data_s, data_sq, sq_max)
    coeff = _gemm_error(_GRAM_DTYPE, data64.shape[1])
    if self_query:
        keys, ids = _self_heaps(points, data64, k, coeff, scale * scale)
    else:
        queries = _screened(queries_s, queries_sq, sq_max)
        keys, ids = _query_heaps(queries, points, queries64, data64, k, coeff, scale * scale)
    kernels.sort_heaps(keys, ids)
    return Neighbors(np.sqrt(keys), ids)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _padded(points: _Scaled, rows: int) -> _Scaled:
    """Zero rows appended up to ``rows``, with ‖x‖² = +inf so the screen never passes them."""
    n = len(points.sq)
    low = torch.zeros((rows, points.low.shape[1]), dtype=points.low.dtype)
    low[:n] = points.low
    sq, norm, slack = np.full(rows, np.inf), np.zeros(rows), np.zeros(rows)
    sq[:n], norm[:n], slack[:n] = points.sq, points.norm, points.slack
    return _Scaled(low, sq, norm, slack)


def _bits(gram: torch.Tensor) -> tuple[np.ndarray, int]:
    """A float32 or bfloat16 tensor as unsigned bit patterns, and the shift that widens them."""
    if gram.dtype == torch.bfloat16:
        return gram.view(torch.int16).numpy().view(np.uint16), 16
    return gram.view(torch.int32).numpy().view(np.uint32), 0


def _self_heaps(
    points: _Scaled, data64: np.ndarray, k: int, coeff: float, unit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each point's k nearest others, as (n, k) heaps of exact squared distances and indices.

    Points are padded to nb blocks of b, a multiple of the kernels' chunk. Each round multiplies
    blocks with disjoint point ranges and folds them in parallel: first the diagonal blocks,
    then every off-diagonal pair once (circle method).
    """
    n, dim = data64.shape
    nb = -(-n // _BLOCK)
    b = _round_up(-(-n // nb), kernels.CHUNK)
    padded = _padded(points, nb * b)
    keys = np.full((nb * b, k), np.inf)
    keys[n:] = -np.inf  # padding rows accept nothing
    ids = np.full((nb * b, k), -1, dtype=np.int64)
    blocks = padded.low.view(nb, b, dim)
    per_round = max(1, nb // 2)
    grams = torch.empty((per_round, b, b), dtype=padded.low.dtype)
    bits, shift = _bits(grams)
    for pairs in _rounds(nb, per_round):
        for p, (i, j) in enumerate(pairs):
            torch.mm(blocks[i], blocks[j].T, out=grams[p])  # BLAS GEMM
        row0s, col0s = (np.array(ends, dtype=np.int64) * b for ends in zip(*pairs, strict=True))
        kernels.fold_round(
            bits[: len(pairs)],
            shift,
            row0s,
            col0s,
            padded.sq,
            padded.norm,
            coeff,
            padded.slack,
            unit,
            data64,
            keys,
            ids,
        )
    return keys[:n], ids[:n]


def _rounds(nb: int, per_round: int) -> list[list[tuple[int, int]]]:
    """Block pairs (i ≤ j) grouped so that no two pairs in a round share a block."""
    diagonal = [(i, i) for i in range(nb)]
    rounds = [diagonal[s : s + per_round] for s in range(0, nb, per_round)]
    players: list[int | None] = [*range(nb), *([None] if nb % 2 else [])]
    half = len(players) // 2
    for _ in range(len(players) - 1):
        pairs = [(players[i], players[-1 - i]) for i in range(half)]
        rounds.append([(min(i, j), max(i, j)) for i, j in pairs if i is not None and j is not None])
        players = [players[0], players[-1], *players[1:-1]]
    return [r for r in rounds if r]


def _query_heaps(
    queries: _Scaled,
    points: _Scaled,
    queries64: np.ndarray,
    data64: np.ndarray,
    k: int,
    coeff: float,
    unit: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k nearest points, as (n_q, k) heaps of exact squared distances and indices."""
    nq = len(queries64)
    keys, ids = np.full((nq, k), np.inf), np.full((nq, k), -1, dtype=np.int64)
    padded = _padded(points, _round_up(len(data64), kernels.CHUNK))
    buffer = torch.empty(_BLOCK * _BLOCK, dtype=padded.low.dtype)
    for r0 in range(0, nq, _BLOCK):
        for c0 in range(0, len(padded.sq), _BLOCK):
            q, x = queries.low[r0 : r0 + _BLOCK], padded.low[c0 : c0 + _BLOCK]
            gram = buffer[: len(q) * len(x)].view(len(q), len(x))
            torch.mm(q, x.T, out=gram)  # BLAS GEMM
            bits, shift = _bits(gram)
            kernels.fold_rows(
                bits,
                shift,
                r0,
                c0,
                queries.sq,
                queries.norm,
                queries.slack,
                padded.sq,
                padded.norm,
                coeff,
                unit,
                queries64,
                data64,
                keys,
                ids,
            )
    return keys, ids


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
