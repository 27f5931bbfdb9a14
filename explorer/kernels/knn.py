"""Exact k-nearest-neighbour kernels: top-m selection from a Gram tile, exact refinement.

The CPU path of :func:`explorer.analysis.geometry.knn` computes a tile of squared distances as
``‖q‖² + ‖x‖² − 2 q·x`` with one BLAS GEMM (float32, near the machine's GEMM rate), keeps the
``m > k`` smallest per row (:func:`tile_candidates`), then recomputes those candidates exactly in
float64 and proves that no other point can be closer (:func:`refine_candidates`). Rows whose
proof fails are redone by brute force in float64 (:func:`brute_force_rows`). Ties are broken by
the smaller index, so results are deterministic and duplicate points come out at distance 0.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from explorer.kernels._numba import leaf, parallel

__all__ = ["brute_force_rows", "refine_candidates", "tile_candidates"]


@leaf
def _sift_down(keys: np.ndarray, ids: np.ndarray, size: int) -> None:
    """Restore the max-heap (by (key, id)) after the root was replaced."""
    pos = 0
    key, ident = keys[0], ids[0]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and (
            keys[right] > keys[child] or (keys[right] == keys[child] and ids[right] > ids[child])
        ):
            child = right
        if keys[child] > key or (keys[child] == key and ids[child] > ident):
            keys[pos], ids[pos] = keys[child], ids[child]
            pos = child
        else:
            break
    keys[pos], ids[pos] = key, ident


@leaf
def _sift_up(keys: np.ndarray, ids: np.ndarray, pos: int) -> None:
    key, ident = keys[pos], ids[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if keys[parent] < key or (keys[parent] == key and ids[parent] < ident):
            keys[pos], ids[pos] = keys[parent], ids[parent]
            pos = parent
        else:
            break
    keys[pos], ids[pos] = key, ident


@leaf
def _row_candidates(
    gram_row: np.ndarray, qi: float, x_sq: np.ndarray, self_j: int, out_idx: np.ndarray
) -> float:
    m = out_idx.shape[0]
    keys = np.empty(m, dtype=np.float64)
    ids = np.empty(m, dtype=np.int64)
    size = 0
    for j in range(gram_row.shape[0]):
        if j == self_j:
            continue
        d = qi + x_sq[j] - 2.0 * gram_row[j]
        if size < m:
            keys[size], ids[size] = d, j
            _sift_up(keys, ids, size)
            size += 1
        elif d < keys[0]:
            keys[0], ids[0] = d, j
            _sift_down(keys, ids, size)
    out_idx[:] = ids
    return keys[0]


@parallel
def tile_candidates(
    gram: np.ndarray,
    q_sq: np.ndarray,
    x_sq: np.ndarray,
    row_offset: int,
    exclude_self: bool,
    out_idx: np.ndarray,
    out_threshold: np.ndarray,
) -> None:
    """Keep the ``m = out_idx.shape[1]`` smallest approximate squared distances per tile row.

    gram: (t, n) ``q·x`` for query rows ``row_offset … row_offset+t`` against all n points;
    q_sq: (t,), x_sq: (n,) squared norms (float64). Writes out_idx (t, m) candidate indices and
    out_threshold (t,) = the largest kept approximate distance (every other point is ≥ it).
    With ``exclude_self`` the point ``row_offset + i`` is skipped for row i (queries = data).
    """
    for i in prange(gram.shape[0]):
        self_j = row_offset + i if exclude_self else -1
        out_threshold[i] = _row_candidates(gram[i], q_sq[i], x_sq, self_j, out_idx[i])


@leaf
def _sort_pairs(dist: np.ndarray, ids: np.ndarray) -> None:
    """Insertion-sort (dist, ids) by (distance, index) in place (m is small)."""
    for a in range(1, dist.shape[0]):
        dv, iv = dist[a], ids[a]
        b = a - 1
        while b >= 0 and (dist[b] > dv or (dist[b] == dv and ids[b] > iv)):
            dist[b + 1], ids[b + 1] = dist[b], ids[b]
            b -= 1
        dist[b + 1], ids[b + 1] = dv, iv


@leaf
def _sq_dist(a: np.ndarray, b: np.ndarray) -> float:
    s = 0.0
    for c in range(a.shape[0]):
        diff = np.float64(a[c]) - np.float64(b[c])
        s += diff * diff
    return s


@leaf
def _refine_row(
    query: np.ndarray,
    data: np.ndarray,
    cand: np.ndarray,
    out_sq: np.ndarray,
    out_idx: np.ndarray,
) -> None:
    m = cand.shape[0]
    k = out_sq.shape[0]
    dist = np.empty(m, dtype=np.float64)
    ids = cand.copy()
    for c in range(m):
        dist[c] = _sq_dist(query, data[ids[c]])
    _sort_pairs(dist, ids)
    out_sq[:] = dist[:k]
    out_idx[:] = ids[:k]


@parallel
def refine_candidates(
    queries: np.ndarray,
    data: np.ndarray,
    cand_idx: np.ndarray,
    threshold: np.ndarray,
    error_bound: np.ndarray,
    out_sq: np.ndarray,
    out_idx: np.ndarray,
    certified: np.ndarray,
) -> None:
    """Exact float64 squared distances to the candidates, sorted; certify each row.

    A row is certified when its k-th exact distance is below ``threshold − error_bound``: every
    point that is not a candidate has approximate distance ≥ threshold, so exact ≥ that bound.
    queries: (t, D), data: (n, D), cand_idx: (t, m) → out_sq, out_idx: (t, k), certified: (t,).
    """
    k = out_sq.shape[1]
    for i in prange(cand_idx.shape[0]):
        _refine_row(queries[i], data, cand_idx[i], out_sq[i], out_idx[i])
        certified[i] = out_sq[i, k - 1] < threshold[i] - error_bound[i]


@leaf
def _brute_row(
    query: np.ndarray, data: np.ndarray, self_j: int, out_sq: np.ndarray, out_idx: np.ndarray
) -> None:
    k = out_sq.shape[0]
    keys = np.empty(k, dtype=np.float64)
    ids = np.empty(k, dtype=np.int64)
    size = 0
    for j in range(data.shape[0]):
        if j == self_j:
            continue
        d = _sq_dist(query, data[j])
        if size < k:
            keys[size], ids[size] = d, j
            _sift_up(keys, ids, size)
            size += 1
        elif d < keys[0]:
            keys[0], ids[0] = d, j
            _sift_down(keys, ids, size)
    _sort_pairs(keys, ids)
    out_sq[:] = keys
    out_idx[:] = ids


@parallel
def brute_force_rows(
    queries: np.ndarray,
    data: np.ndarray,
    self_index: np.ndarray,
    out_sq: np.ndarray,
    out_idx: np.ndarray,
) -> None:
    """Exact float64 kNN by brute force for each query row (``self_index[i] ≥ 0`` is skipped)."""
    for i in prange(queries.shape[0]):
        _brute_row(queries[i], data, self_index[i], out_sq[i], out_idx[i])
