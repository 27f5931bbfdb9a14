"""Exact k-nearest-neighbour kernels: top-m candidates from Gram blocks, exact refinement.

The CPU path of :func:`explorer.analysis.geometry.knn` multiplies cache-sized blocks of the
points with a float32 BLAS GEMM and folds each block's approximate squared distances
``‖q‖² + ‖x‖² − 2 q·x`` into per-query max-heaps of the ``m > k`` smallest
(:func:`fold_round`, :func:`fold_rows`). Heap offers are screened a chunk at a time by a
vectorised count, so the heaps are touched only when a chunk holds a smaller value. The
candidates are then recomputed exactly in float64 and a rounding-error bound proves that no
other point can be closer (:func:`refine_candidates`); rows whose proof fails are redone by
brute force in float64 (:func:`brute_force_rows`). Ties are broken by the smaller index, so
results are deterministic and duplicate points come out at distance 0.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from explorer.kernels._numba import leaf, parallel

__all__ = ["CHUNK", "brute_force_rows", "fold_round", "fold_rows", "refine_candidates"]


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


CHUNK = 32  # distances screened per vectorised pass; block widths are multiples of it


@leaf
def _push(keys: np.ndarray, ids: np.ndarray, key: float, ident: int) -> None:
    """Replace the root of a full max-heap (by (key, id)) and restore the heap."""
    keys[0], ids[0] = key, ident
    _sift_down(keys, ids, keys.shape[0])


@leaf
def _scan_row(
    gram_row: np.ndarray,
    qi: float,
    x_sq: np.ndarray,
    col0: int,
    self_j: int,
    keys: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Offer ``qi + x_sq[col0 + j] − 2·gram_row[j]`` (point ``col0 + j ≠ self_j``) to a heap.

    Each chunk of ``CHUNK`` is first screened by a branch-free count against the heap's maximum;
    only chunks holding a smaller value are walked. ``gram_row.shape[0]`` must be a multiple of
    ``CHUNK``. Keep the screen's shape: LLVM vectorises it only with a literal trip count, a
    ``while`` outer loop and an int32 sum (a stepped ``range``, a ``min`` bound or a bool sum
    made it 3–5× slower).
    """
    c0 = 0
    while c0 < gram_row.shape[0]:
        thr = keys[0]
        below = np.int32(0)
        for j in range(CHUNK):
            d = qi + x_sq[col0 + c0 + j] - 2.0 * np.float64(gram_row[c0 + j])
            below += np.int32(d < thr)
        if below:
            for j in range(c0, c0 + CHUNK):
                d = qi + x_sq[col0 + j] - 2.0 * np.float64(gram_row[j])
                if d < keys[0] and col0 + j != self_j:
                    _push(keys, ids, d, col0 + j)
        c0 += CHUNK


@leaf
def _fold_pair(
    gram: np.ndarray,
    x_sq: np.ndarray,
    row0: int,
    col0: int,
    heap_keys: np.ndarray,
    heap_ids: np.ndarray,
) -> None:
    """Offer an off-diagonal block of the self Gram matrix to its row and its column heaps.

    Block entry (i, j) is the pair (row0 + i, col0 + j); each distance is computed once and
    screened against both heaps' maxima (as in :func:`_scan_row`).
    """
    rows, cols = gram.shape
    thr = np.empty(cols, dtype=np.float64)
    for j in range(cols):
        thr[j] = heap_keys[col0 + j, 0]
    base = x_sq[col0 : col0 + cols]
    for i in range(rows):
        p = row0 + i
        keys, ids, xi, g = heap_keys[p], heap_ids[p], x_sq[p], gram[i]
        c0 = 0
        while c0 < cols:
            t = keys[0]
            below = np.int32(0)
            for j in range(CHUNK):
                d = xi + base[c0 + j] - 2.0 * np.float64(g[c0 + j])
                below += np.int32(d < t) | np.int32(d < thr[c0 + j])
            if below:
                for j in range(c0, c0 + CHUNK):
                    d = xi + base[j] - 2.0 * np.float64(g[j])
                    if d < keys[0]:
                        _push(keys, ids, d, col0 + j)
                    if d < thr[j]:
                        q = col0 + j
                        _push(heap_keys[q], heap_ids[q], d, p)
                        thr[j] = heap_keys[q, 0]
            c0 += CHUNK


@parallel
def fold_rows(
    gram: np.ndarray,
    q_sq: np.ndarray,
    x_sq: np.ndarray,
    row0: int,
    col0: int,
    heap_keys: np.ndarray,
    heap_ids: np.ndarray,
) -> None:
    """Fold a (b_r, b_c) float32 block ``q·x`` (queries ``row0 …``, points ``col0 …``; b_c a
    multiple of ``CHUNK``) into the queries' max-heaps of the m smallest approximate squared
    distances ``‖q‖² + ‖x‖² − 2 q·x``.

    q_sq (n_q,), x_sq (n,) float64; heap_keys (n_q, m) float64 starting at +inf, heap_ids int64.
    """
    for i in prange(gram.shape[0]):
        p = row0 + i
        _scan_row(gram[i], q_sq[p], x_sq, col0, -1, heap_keys[p], heap_ids[p])


@parallel
def fold_round(
    grams: np.ndarray,
    row0s: np.ndarray,
    col0s: np.ndarray,
    x_sq: np.ndarray,
    heap_keys: np.ndarray,
    heap_ids: np.ndarray,
) -> None:
    """Fold blocks of the self Gram matrix whose point ranges are pairwise disjoint, in parallel.

    grams: (P, b, b) float32 (b a multiple of ``CHUNK``), block p = points ``row0s[p] …`` ×
    ``col0s[p] …`` with ``row0s[p] ≤ col0s[p]``. A diagonal block feeds its rows (a point never
    enters its own heap); an off-diagonal block feeds rows and columns, so each pair is
    multiplied once.
    """
    for b in prange(grams.shape[0]):
        r0, c0 = row0s[b], col0s[b]
        if r0 == c0:
            for i in range(grams.shape[1]):
                p = r0 + i
                _scan_row(grams[b, i], x_sq[p], x_sq, c0, p, heap_keys[p], heap_ids[p])
        else:
            _fold_pair(grams[b], x_sq, r0, c0, heap_keys, heap_ids)


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
