"""Exact k-nearest neighbours (Euclidean), tiled, duplicate-safe; and the symmetric kNN graph.

Every kNN-based measure in :mod:`explorer.analysis.geometry` goes through :func:`knn`.

Algorithm (CPU and CUDA alike): approximate squared distances come from float32 GEMMs
(``‖q‖² + ‖x‖² − 2 q·x`` on centred data; on the CPU in cache-sized blocks, and for ``x``
against itself only the blocks on or above the diagonal, each serving both of its point
ranges); the ``m = k + margin`` smallest per query are kept, recomputed exactly in float64 and
sorted by (distance, index); a rounding-error bound then proves that no other point can be
closer. Rows without a proof (near-ties at the boundary) are redone by float64 brute force. The
result equals float64 brute force, ties broken by the smaller index; a point is never its own
neighbour, but its duplicates are (at distance 0).
"""

from __future__ import annotations

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


class Neighbors(NamedTuple):
    """kNN result: ``distances`` (n_queries, k) float64 ascending, ``indices`` (n_queries, k) int64."""

    distances: np.ndarray
    indices: np.ndarray


def _margin(k: int) -> int:
    return k + max(8, k // 4)


def _error_bound(q_sq: np.ndarray, x_sq_max: float, dim: int) -> np.ndarray:
    """Bound on |approximate − exact| squared distance from float32 rounding (GEMM and cast)."""
    u = float(np.finfo(np.float32).eps) / 2
    return _SAFETY * (dim + 2) * u * (q_sq + x_sq_max) + 1e-300


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


def _knn_numba(x: np.ndarray, query: np.ndarray | None, k: int) -> Neighbors:
    self_query = query is None
    data64 = np.ascontiguousarray(x, dtype=np.float64)
    queries64 = data64 if query is None else np.ascontiguousarray(query, dtype=np.float64)
    center = data64.mean(axis=0)
    data_c = data64 - center
    queries_c = data_c if self_query else queries64 - center
    data32 = np.ascontiguousarray(data_c, dtype=np.float32)
    queries32 = data32 if self_query else np.ascontiguousarray(queries_c, dtype=np.float32)
    x_sq = np.einsum("ij,ij->i", data_c, data_c)
    q_sq = x_sq if self_query else np.einsum("ij,ij->i", queries_c, queries_c)
    n, dim = data64.shape
    nq = queries64.shape[0]
    m = min(_margin(k), n - (1 if self_query else 0))
    all_candidates = m == n - (1 if self_query else 0)
    x_sq_max = float(x_sq.max())

    if self_query:
        heap_keys, heap_ids = _self_candidates(data32, x_sq, m)
    else:
        heap_keys, heap_ids = _query_candidates(queries32, data32, q_sq, x_sq, m)
    threshold = np.full(nq, np.inf) if all_candidates else heap_keys[:, 0].copy()
    sq = np.empty((nq, k), dtype=np.float64)
    idx = np.empty((nq, k), dtype=np.int64)
    certified = np.empty(nq, dtype=np.bool_)
    kernels.refine_candidates(
        queries64,
        data64,
        heap_ids,
        threshold,
        _error_bound(q_sq, x_sq_max, dim),
        sq,
        idx,
        certified,
    )
    redo = np.flatnonzero(~certified)
    if redo.size:
        self_index = redo if self_query else np.full(redo.size, -1, dtype=np.int64)
        out_sq = np.empty((redo.size, k), dtype=np.float64)
        out_idx = np.empty((redo.size, k), dtype=np.int64)
        kernels.brute_force_rows(
            np.ascontiguousarray(queries64[redo]),
            data64,
            self_index.astype(np.int64),
            out_sq,
            out_idx,
        )
        sq[redo], idx[redo] = out_sq, out_idx
    return Neighbors(np.sqrt(sq), idx)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _pad(data32: np.ndarray, x_sq: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero rows appended up to ``rows``, with ‖x‖² = +inf so no heap ever keeps them."""
    padded = np.zeros((rows, data32.shape[1]), dtype=np.float32)
    padded[: len(data32)] = data32
    x_sq_padded = np.full(rows, np.inf)
    x_sq_padded[: len(x_sq)] = x_sq
    return padded, x_sq_padded


def _empty_heaps(rows: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((rows, m), np.inf), np.full((rows, m), -1, dtype=np.int64)


def _self_candidates(data32: np.ndarray, x_sq: np.ndarray, m: int) -> tuple[np.ndarray, ...]:
    """Per point, the m smallest approximate squared distances to the other points (max-heaps).

    Points are padded to nb blocks of b, a multiple of the kernels' chunk. Each round multiplies
    blocks with disjoint point ranges and folds them in parallel: first the diagonal blocks,
    then every off-diagonal pair once (circle method).
    """
    n, dim = data32.shape
    nb = -(-n // _BLOCK)
    b = _round_up(-(-n // nb), kernels.CHUNK)
    padded, x_sq_padded = _pad(data32, x_sq, nb * b)
    heap_keys, heap_ids = _empty_heaps(nb * b, m)
    blocks = torch.from_numpy(padded).view(nb, b, dim)
    per_round = max(1, nb // 2)
    grams = torch.empty((per_round, b, b), dtype=torch.float32)
    for pairs in _rounds(nb, per_round):
        for p, (i, j) in enumerate(pairs):
            torch.mm(blocks[i], blocks[j].T, out=grams[p])  # float32 BLAS GEMM
        row0s, col0s = (np.array(ends, dtype=np.int64) * b for ends in zip(*pairs, strict=True))
        kernels.fold_round(
            grams[: len(pairs)].numpy(), row0s, col0s, x_sq_padded, heap_keys, heap_ids
        )
    return heap_keys[:n], heap_ids[:n]


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


def _query_candidates(
    queries32: np.ndarray, data32: np.ndarray, q_sq: np.ndarray, x_sq: np.ndarray, m: int
) -> tuple[np.ndarray, ...]:
    """Per query, the m smallest approximate squared distances to the points (max-heaps)."""
    heap_keys, heap_ids = _empty_heaps(queries32.shape[0], m)
    padded, x_sq = _pad(data32, x_sq, _round_up(len(data32), kernels.CHUNK))
    queries, data = torch.from_numpy(queries32), torch.from_numpy(padded)
    buffer = torch.empty(_BLOCK * _BLOCK, dtype=torch.float32)
    for r0 in range(0, queries.shape[0], _BLOCK):
        for c0 in range(0, data.shape[0], _BLOCK):
            q, x = queries[r0 : r0 + _BLOCK], data[c0 : c0 + _BLOCK]
            gram = buffer[: q.shape[0] * x.shape[0]].view(q.shape[0], x.shape[0])
            torch.mm(q, x.T, out=gram)  # float32 BLAS GEMM
            kernels.fold_rows(gram.numpy(), q_sq, x_sq, r0, c0, heap_keys, heap_ids)
    return heap_keys, heap_ids


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
