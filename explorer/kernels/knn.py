"""Exact k-nearest-neighbour kernels: rigorous screening of low-precision Gram blocks.

The CPU path of :func:`explorer.analysis.geometry.knn` multiplies cache-sized blocks of the
centred points (scaled by a power of two) with a bfloat16 or float32 BLAS GEMM. Per pair the
kernels form ``‖q‖² + ‖x‖² − 2 q·x − c·‖q‖‖x‖``, where ``c·‖q‖‖x‖`` bounds the GEMM's rounding
error: a lower bound on the squared distance. Only pairs whose bound is below the query's
current k-th distance are recomputed exactly in float64, from the original points, and offered
to the query's max-heap of its k nearest by (distance, index). So the result equals float64
brute force with ties broken by the smaller index, and duplicates come out at distance 0.
Screening runs a chunk at a time as a vectorised count; exact distances and heaps are touched
only when a chunk holds a candidate.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from explorer.kernels._numba import leaf, parallel

__all__ = ["CHUNK", "fold_round", "fold_rows", "sort_heaps"]

CHUNK = 32  # pairs screened per vectorised pass; block widths are multiples of it


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
def _offer(keys: np.ndarray, ids: np.ndarray, key: float, ident: int) -> None:
    """Replace the root of a full max-heap if (key, ident) is smaller, and restore the heap."""
    if key < keys[0] or (key == keys[0] and ident < ids[0]):
        keys[0], ids[0] = key, ident
        _sift_down(keys, ids, keys.shape[0])


@leaf
def _sq_dist(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖² in float64, summed in order (as brute force does, so ties come out alike)."""
    s = 0.0
    for c in range(a.shape[0]):
        diff = a[c] - b[c]
        s += diff * diff
    return s


@leaf
def _widen(gram_row: np.ndarray, shift: int, bits: np.ndarray) -> None:
    """float32 bit patterns of a Gram row: bfloat16 as uint16 (shift 16) or float32 as uint32
    (shift 0), into ``bits`` (uint32, read through a float32 view)."""
    for j in range(gram_row.shape[0]):
        bits[j] = np.uint32(gram_row[j]) << shift


@leaf
def _scan_row(
    gram: np.ndarray,
    qi: float,
    ci: float,
    slack: float,
    unit: float,
    x_sq: np.ndarray,
    x_norm: np.ndarray,
    col0: int,
    self_j: int,
    query: np.ndarray,
    data: np.ndarray,
    keys: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Offer the points ``col0 + j ≠ self_j`` of one Gram row (float32, a multiple of ``CHUNK``
    long) to a query's heap (keys in original units; ``unit`` converts them to the scaled ones).

    Keep the screen's shape: LLVM vectorises it only with a literal trip count, a ``while``
    outer loop and an int32 sum (a stepped ``range``, a ``min`` bound or a bool sum made it
    3–5× slower).
    """
    cap = np.inf
    if keys[0] == np.inf:  # a heap with free slots would take every point: cap it first
        cap = _kth_upper_bound(gram, qi, ci, x_sq, x_norm, col0, self_j, keys.shape[0]) + slack
    limit = min(cap, keys[0] * unit + slack)
    c0 = 0
    while c0 < gram.shape[0]:
        below = np.int32(0)
        for j in range(CHUNK):
            c = col0 + c0 + j
            t = qi + x_sq[c] - 2.0 * np.float64(gram[c0 + j]) - ci * x_norm[c]
            below += np.int32(t < limit)
        if below:
            for j in range(c0, c0 + CHUNK):
                c = col0 + j
                t = qi + x_sq[c] - 2.0 * np.float64(gram[j]) - ci * x_norm[c]
                if t < limit and c != self_j:
                    _offer(keys, ids, _sq_dist(query, data[c]), c)
                    limit = min(cap, keys[0] * unit + slack)
        c0 += CHUNK


@leaf
def _kth_upper_bound(
    gram: np.ndarray,
    qi: float,
    ci: float,
    x_sq: np.ndarray,
    x_norm: np.ndarray,
    col0: int,
    self_j: int,
    k: int,
) -> float:
    """The k-th smallest upper bound ``qi + ‖x‖² − 2 q·x + c·‖q‖‖x‖`` over a Gram row's points
    (scaled units): the query's k-th nearest distance is at most this. +inf under k points."""
    upper = np.empty(gram.shape[0])
    count = 0
    for j in range(gram.shape[0]):
        c = col0 + j
        if c != self_j and x_sq[c] < np.inf:
            upper[count] = qi + x_sq[c] - 2.0 * np.float64(gram[j]) + ci * x_norm[c]
            count += 1
    if count < k:
        return np.inf
    return np.partition(upper[:count], k - 1)[k - 1]


@leaf
def _fold_pair(
    gram: np.ndarray,
    shift: int,
    row0: int,
    col0: int,
    x_sq: np.ndarray,
    x_norm: np.ndarray,
    coeff: float,
    slack: np.ndarray,
    unit: float,
    data: np.ndarray,
    heap_keys: np.ndarray,
    heap_ids: np.ndarray,
) -> None:
    """Offer an off-diagonal block of the self Gram matrix to its rows' and its columns' heaps.

    Block entry (i, j) is the pair (row0 + i, col0 + j); each pair is screened against both
    heaps at once and its exact distance computed at most once.
    """
    rows, cols = gram.shape
    bits = np.empty(cols, dtype=np.uint32)
    g = bits.view(np.float32)
    col_limit = np.empty(cols)
    for j in range(cols):
        col_limit[j] = heap_keys[col0 + j, 0] * unit + slack[col0 + j]
    base, norm = x_sq[col0 : col0 + cols], x_norm[col0 : col0 + cols]
    for i in range(rows):
        p = row0 + i
        _widen(gram[i], shift, bits)
        keys, ids = heap_keys[p], heap_ids[p]
        xi, ci = x_sq[p], coeff * x_norm[p]
        limit = keys[0] * unit + slack[p]
        c0 = 0
        while c0 < cols:
            below = np.int32(0)
            for j in range(CHUNK):
                t = xi + base[c0 + j] - 2.0 * np.float64(g[c0 + j]) - ci * norm[c0 + j]
                below += np.int32(t < limit) | np.int32(t < col_limit[c0 + j])
            if below:
                for j in range(c0, c0 + CHUNK):
                    t = xi + base[j] - 2.0 * np.float64(g[j]) - ci * norm[j]
                    if t < limit or t < col_limit[j]:
                        q = col0 + j
                        d = _sq_dist(data[p], data[q])
                        _offer(keys, ids, d, q)
                        _offer(heap_keys[q], heap_ids[q], d, p)
                        limit = keys[0] * unit + slack[p]
                        col_limit[j] = heap_keys[q, 0] * unit + slack[q]
            c0 += CHUNK


@parallel
def fold_round(
    grams: np.ndarray,
    shift: int,
    row0s: np.ndarray,
    col0s: np.ndarray,
    x_sq: np.ndarray,
    x_norm: np.ndarray,
    coeff: float,
    slack: np.ndarray,
    unit: float,
    data: np.ndarray,
    heap_keys: np.ndarray,
    heap_ids: np.ndarray,
) -> None:
    """Fold blocks of the self Gram matrix whose point ranges are pairwise disjoint, in parallel.

    grams: (P, b, b) bfloat16/float32 bit patterns (see :func:`_widen`; b a multiple of
    ``CHUNK``), block p = points ``row0s[p] …`` × ``col0s[p] …`` with ``row0s[p] ≤ col0s[p]``.
    x_sq, x_norm, slack: (n_padded,) squared norms (+inf on padding), norms and screening slack
    of the scaled points; coeff: GEMM error per unit ‖q‖‖x‖; unit: scale²; data: (n, D) float64
    original points; heap_keys/heap_ids: (n_padded, k) max-heaps (keys −inf on padding rows).
    A diagonal block feeds its rows (a point never enters its own heap); an off-diagonal block
    feeds rows and columns, so each pair is multiplied once.
    """
    for b in prange(grams.shape[0]):
        r0, c0 = row0s[b], col0s[b]
        if r0 != c0:
            _fold_pair(
                grams[b], shift, r0, c0, x_sq, x_norm, coeff, slack, unit, data, heap_keys, heap_ids
            )
            continue
        bits = np.empty(grams.shape[2], dtype=np.uint32)
        for i in range(min(grams.shape[1], data.shape[0] - r0)):  # not the padding
            p = r0 + i
            _widen(grams[b, i], shift, bits)
            _scan_row(
                bits.view(np.float32),
                x_sq[p],
                coeff * x_norm[p],
                slack[p],
                unit,
                x_sq,
                x_norm,
                c0,
                p,
                data[p],
                data,
                heap_keys[p],
                heap_ids[p],
            )


@parallel
def fold_rows(
    gram: np.ndarray,
    shift: int,
    row0: int,
    col0: int,
    q_sq: np.ndarray,
    q_norm: np.ndarray,
    q_slack: np.ndarray,
    x_sq: np.ndarray,
    x_norm: np.ndarray,
    coeff: float,
    unit: float,
    queries: np.ndarray,
    data: np.ndarray,
    heap_keys: np.ndarray,
    heap_ids: np.ndarray,
) -> None:
    """Fold a (b_r, b_c) Gram block ``q·x`` (queries ``row0 …``, points ``col0 …``; bit patterns
    as in :func:`fold_round`, b_c a multiple of ``CHUNK``) into the queries' heaps.

    q_sq, q_norm, q_slack: (n_q,) of the scaled queries; x_sq, x_norm: (n_padded,) of the scaled
    points; queries (n_q, D), data (n, D): float64 originals; heaps (n_q, k).
    """
    for i in prange(gram.shape[0]):
        p = row0 + i
        bits = np.empty(gram.shape[1], dtype=np.uint32)
        _widen(gram[i], shift, bits)
        _scan_row(
            bits.view(np.float32),
            q_sq[p],
            coeff * q_norm[p],
            q_slack[p],
            unit,
            x_sq,
            x_norm,
            col0,
            -1,
            queries[p],
            data,
            heap_keys[p],
            heap_ids[p],
        )


@leaf
def _sort_pairs(dist: np.ndarray, ids: np.ndarray) -> None:
    """Insertion-sort (dist, ids) by (distance, index) in place (k is small)."""
    for a in range(1, dist.shape[0]):
        dv, iv = dist[a], ids[a]
        b = a - 1
        while b >= 0 and (dist[b] > dv or (dist[b] == dv and ids[b] > iv)):
            dist[b + 1], ids[b + 1] = dist[b], ids[b]
            b -= 1
        dist[b + 1], ids[b + 1] = dv, iv


@leaf
def sort_heaps(keys: np.ndarray, ids: np.ndarray) -> None:
    """Sort each row of (keys, ids) (t, k) by (distance, index), in place."""
    for i in range(keys.shape[0]):
        _sort_pairs(keys[i], ids[i])
