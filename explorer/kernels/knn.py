"""Exact k-nearest-neighbour kernels: rigorous screening of low-precision squared distances.

In the CPU path of :func:`explorer.analysis.geometry.knn` a bfloat16 or float32 BLAS GEMM
computes, for cache-sized blocks of pairs, a value ``o`` approximating ‖h_q − h_x‖², where h is
a scaled point rounded to the GEMM's dtype. Proven error terms turn any ``o`` into an upper
bound on the pair's true distance (:func:`_upper`) and, back, into the largest ``o`` a pair
within a given distance can have (:func:`_limit`).

Per query the kernels keep a screening limit and a buffer of the candidates screened in. The
limit starts from the k-th smallest ``o`` of the query's first block and tightens, whenever the
buffer fills, to what the k-th smallest value in the buffer allows; candidates it rules out
are dropped. Only the survivors (about 1.2 k per query at the end) are recomputed exactly in
float64 from the original points, summed in order, into a max-heap of the k nearest by
(distance, index). So the result equals float64 brute force with ties broken by the smaller
index, and duplicates come out at 0. Screening runs a chunk at a time as a vectorised
comparison; buffers are touched only where a chunk holds a candidate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import prange
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import overload

from explorer.kernels._numba import leaf, parallel

__all__ = ["CHUNK", "Queries", "finish", "fold_block", "fold_rows", "rounding_norms"]

CHUNK = 32  # pairs screened per vectorised pass; block widths are multiples of it


class Queries(NamedTuple):
    """Per-query screening state (t queries, k neighbours, a buffer of C candidates).

    limit (t,) float32: screened values below it may still be among the k nearest (+inf
    before the query's first block, −inf for padding); cand (t, C) int32 and
    cand_o (t, C) float32: candidates and their values; filled (t,) int64: buffer fill;
    keys (t, k) float64 and ids (t, k) int64: max-heaps of exact squared distances (original
    units) by (distance, index); rad, extra (t,) float64: error terms of the query's pairs
    (see :func:`_upper`); rel: relative output rounding of the GEMM; unit: scale² (original
    squared distances to scaled ones); points (t, D) float64: the original queries.
    """

    limit: np.ndarray
    cand: np.ndarray
    cand_o: np.ndarray
    filled: np.ndarray
    keys: np.ndarray
    ids: np.ndarray
    rad: np.ndarray
    extra: np.ndarray
    rel: float
    unit: float
    points: np.ndarray


def _lowest_bit(mask: int | np.uint64) -> int:
    """Index of the lowest set bit of a nonzero mask (this runs without JIT; compiled code
    uses the CPU's count-trailing-zeros instruction, below)."""
    return (int(mask) & -int(mask)).bit_length() - 1


@overload(_lowest_bit)
def _lowest_bit_compiled(mask):
    return lambda mask: trailing_zeros(mask)  # type: ignore[call-arg]


@leaf
def _upper(o: float, rad: float, extra: float, rel: float) -> float:
    """Upper bound on the (scaled) distance of a pair with screened value ``o``:
    ‖h_q − h_x‖² ≤ o + rel·|o| + extra, and ‖h − s‖ of both points is within ``rad``."""
    if o == np.inf:  # rel·|o| would be 0·inf for float32 GEMMs
        return np.inf
    return math.sqrt(max(0.0, o + rel * abs(o) + extra)) + rad


@leaf
def _limit(u: float, rad: float, extra: float, rel: float) -> float:
    """A value above every ``o`` a pair at (scaled) distance ≤ u can have (the inverse of the
    lower bound √(o − rel·|o| − extra) − rad, with a margin that survives rounding to float32)."""
    reach = u + rad
    return (reach * reach + extra) / (1.0 - rel) * (1.0 + 2.0**-20)


@leaf
def _tighten(p: int, q: Queries, u: float) -> None:
    """Lower query p's limit to what a k-th nearest distance ≤ u allows."""
    q.limit[p] = min(q.limit[p], np.float32(_limit(u, q.rad[p], q.extra[p], q.rel)))


@leaf
def _kth_bound(o: np.ndarray, k: int) -> float:
    """A value at or above the k-th smallest of ``o`` and (unless that is ≤ 0) within 2⁻⁸ of it
    (relative), by bisection on vectorised counts; +inf when fewer than k values are finite."""
    hi, found, j = -np.inf, 0, 0
    while found < k and j < o.shape[0]:  # any k values bound the k-th smallest (no min/max
        if o[j] < np.inf:  # pass over the row: those reductions do not vectorise)
            hi, found = max(hi, o[j]), found + 1
        j += 1
    if found < k:
        return np.inf
    lo = 0.0
    for _ in range(40):  # invariant: at least k values ≤ hi
        if hi - lo <= 2.0**-8 * hi:
            break
        mid = np.float32(0.5 * (lo + hi))  # float32, so that the count vectorises
        below = np.int32(0)
        for j in range(o.shape[0]):
            below += np.int32(o[j] <= mid)
        if below >= k:
            hi = float(mid)
        else:
            lo = float(mid)
    return hi


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
def _offer_exact(
    query: np.ndarray, data: np.ndarray, cand: np.ndarray, keys: np.ndarray, ids: np.ndarray
) -> None:
    """Offer the points ``cand`` at their exact squared distances to ``query``'s heap.

    Four sums run interleaved (each still in order, so every value equals :func:`_sq_dist`):
    one sum alone waits on its additions' latency.
    """
    j = 0
    while j + 4 <= cand.shape[0]:
        a, b, c, d = data[cand[j]], data[cand[j + 1]], data[cand[j + 2]], data[cand[j + 3]]
        sa = sb = sc = sd = 0.0
        for t in range(query.shape[0]):
            v = query[t]
            da, db, dc, dd = v - a[t], v - b[t], v - c[t], v - d[t]
            sa += da * da
            sb += db * db
            sc += dc * dc
            sd += dd * dd
        _offer(keys, ids, sa, cand[j])
        _offer(keys, ids, sb, cand[j + 1])
        _offer(keys, ids, sc, cand[j + 2])
        _offer(keys, ids, sd, cand[j + 3])
        j += 4
    for r in range(j, cand.shape[0]):
        _offer(keys, ids, _sq_dist(query, data[cand[r]]), cand[r])


@leaf
def _prune(p: int, q: Queries, data: np.ndarray, keep: int) -> int:
    """Tighten query p's limit by the k-th smallest value in its buffer and drop the candidates
    it rules out; if more than ``keep`` remain, offer them exactly to its heap and empty the
    buffer. Returns the new fill."""
    cand, cand_o, m = q.cand[p], q.cand_o[p], q.filled[p]
    _tighten(p, q, _upper(_kth_bound(cand_o[:m], q.keys.shape[1]), q.rad[p], q.extra[p], q.rel))
    limit, m = q.limit[p], 0
    for j in range(q.filled[p]):
        if cand_o[j] < limit:
            cand[m], cand_o[m] = cand[j], cand_o[j]
            m += 1
    if m > keep:
        _offer_exact(q.points[p], data, cand[:m], q.keys[p], q.ids[p])
        m = 0
        _tighten(p, q, math.sqrt(q.keys[p, 0] * q.unit) * (1.0 + 2.0**-40))
    q.filled[p] = m
    return m


@leaf
def _widen(gram_row: np.ndarray, shift: int, bits: np.ndarray) -> None:
    """float32 bit patterns of a Gram row: bfloat16 as uint16 (shift 16) or float32 as uint32
    (shift 0), into ``bits`` (uint32, read through a float32 view)."""
    for j in range(gram_row.shape[0]):
        bits[j] = np.uint32(gram_row[j]) << shift


@leaf
def _scan_row(o: np.ndarray, p: int, col0: int, q: Queries, data: np.ndarray) -> None:
    """Screen the points ``col0 + j`` of one widened Gram row ``o`` (a multiple of ``CHUNK``
    long; +inf where a point must not be taken) into query p. A query's first row starts its
    limit from the row's k-th smallest value.

    Keep the screen's shape (chunks of a literal trip count under a ``while`` loop): for its
    earlier int32-count form, a stepped ``range``, a ``min`` bound or a bool sum measured 3–5×
    slower.
    """
    if q.limit[p] == np.inf:
        _tighten(p, q, _upper(_kth_bound(o, q.keys.shape[1]), q.rad[p], q.extra[p], q.rel))
    # unpacked once: reading a field of q (or passing q to a call) per candidate counts
    # references on all of it, which made screening 10× slower; q only goes to the rare prune
    limits, cand, cand_o, filled = q.limit, q.cand, q.cand_o, q.filled
    capacity = cand.shape[1]
    limit = limits[p]
    c0 = 0
    while c0 < o.shape[0]:
        mask = np.uint64(0)
        for j in range(CHUNK):
            mask |= np.uint64(o[c0 + j] < limit) << np.uint64(j)
        while mask:
            j = c0 + _lowest_bit(mask)
            mask &= mask - np.uint64(1)
            m = filled[p] if filled[p] < capacity else _prune(p, q, data, capacity // 2)
            cand[p, m], cand_o[p, m], filled[p] = col0 + j, o[j], m + 1
        limit = limits[p]
        c0 += CHUNK


@leaf
def _fold_pair(
    gram: np.ndarray, shift: int, row0: int, col0: int, q: Queries, data: np.ndarray
) -> None:
    """Screen an off-diagonal block of the self Gram matrix into its rows and its columns.

    Block entry (i, j) is the pair (row0 + i, col0 + j); each pair is screened for both
    points at once.
    """
    rows, cols = gram.shape
    bits = np.empty(cols, dtype=np.uint32)
    o = bits.view(np.float32)
    limits, cand, cand_o, filled = q.limit, q.cand, q.cand_o, q.filled  # see _scan_row
    capacity = cand.shape[1]
    col_limit = limits[col0 : col0 + cols]
    for i in range(rows):
        p = row0 + i
        _widen(gram[i], shift, bits)
        limit = limits[p]
        c0 = 0
        while c0 < cols:
            mask = np.uint64(0)
            for j in range(CHUNK):
                below = np.uint64(o[c0 + j] < limit) | np.uint64(o[c0 + j] < col_limit[c0 + j])
                mask |= below << np.uint64(j)
            while mask:
                j = c0 + _lowest_bit(mask)
                mask &= mask - np.uint64(1)
                if o[j] < limit:
                    m = filled[p] if filled[p] < capacity else _prune(p, q, data, capacity // 2)
                    cand[p, m], cand_o[p, m], filled[p] = col0 + j, o[j], m + 1
                if o[j] < col_limit[j]:
                    r = col0 + j
                    m = filled[r] if filled[r] < capacity else _prune(r, q, data, capacity // 2)
                    cand[r, m], cand_o[r, m], filled[r] = p, o[j], m + 1
            limit = limits[p]
            c0 += CHUNK


@leaf
def fold_block(
    gram: np.ndarray, shift: int, row0: int, col0: int, q: Queries, data: np.ndarray
) -> None:
    """Screen one block of the self Gram matrix (bit patterns as in :func:`_widen`; b × b, b a
    multiple of ``CHUNK``): points ``row0 …`` × ``col0 …``, ``row0 ≤ col0``.

    q: the state of every (padded) point; data: (n, D) float64 original points. A diagonal
    block feeds its rows (a point never screens itself in); an off-diagonal block feeds rows
    and columns, so each pair is multiplied once. Blocks with disjoint point ranges may be
    folded concurrently (the GIL is released).
    """
    if row0 != col0:
        _fold_pair(gram, shift, row0, col0, q, data)
        return
    bits = np.empty(gram.shape[1], dtype=np.uint32)
    o = bits.view(np.float32)
    for i in range(min(gram.shape[0], data.shape[0] - row0)):  # not the padding
        _widen(gram[i], shift, bits)
        o[i] = np.inf  # a point is not its own neighbour
        _scan_row(o, row0 + i, col0, q, data)


@parallel
def fold_rows(
    gram: np.ndarray, shift: int, row0: int, col0: int, q: Queries, data: np.ndarray
) -> None:
    """Screen a (b_r, b_c) Gram block (queries ``row0 …``, points ``col0 …``; bit patterns as
    in :func:`fold_block`, b_c a multiple of ``CHUNK``) into the queries' states.

    data: (n, D) float64 original points.
    """
    for i in prange(gram.shape[0]):
        bits = np.empty(gram.shape[1], dtype=np.uint32)
        _widen(gram[i], shift, bits)
        _scan_row(bits.view(np.float32), row0 + i, col0, q, data)


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


@parallel
def finish(q: Queries, data: np.ndarray, t: int) -> None:
    """Offer the first t queries' surviving candidates exactly and sort their heaps by
    (distance, index): ``q.keys[:t]`` are then the squared distances of the k nearest."""
    for p in prange(t):
        _prune(p, q, data, 0)
        _sort_pairs(q.keys[p], q.ids[p])


@parallel
def rounding_norms(s: np.ndarray, h: np.ndarray, out: np.ndarray) -> None:
    """Per row of points s (n, D) and their rounding h (n, D), float64: ‖h‖², ‖s − h‖² and ‖s‖²
    into out (n, 3), in one pass without temporaries."""
    for p in prange(s.shape[0]):
        hh = rr = ss = 0.0
        for d in range(s.shape[1]):
            e = s[p, d] - h[p, d]
            hh += h[p, d] * h[p, d]
            rr += e * e
            ss += s[p, d] * s[p, d]
        out[p, 0], out[p, 1], out[p, 2] = hh, rr, ss
