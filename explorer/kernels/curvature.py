"""Ollivier–Ricci curvature kernels: truncated Dijkstra and exact small optimal transport.

Graph in CSR form: ``indptr`` (n+1,), ``nbrs`` (2e,), ``wts`` (2e,) positive edge lengths.
Edge (x, y) gets κ = 1 − W₁(m_x, m_y)/d(x, y), where m_x puts α on x and (1 − α) on its
neighbours ∝ base^(−w^p) (uniform when that sum is ≤ 1e-7), the transport cost is the
shortest-path distance in the graph, and d(x, y) is the graph distance between the endpoints
(κ = 0 when d < 1e-7). This is GraphRicciCurvature's "OTD" definition. W₁ is solved exactly
by successive shortest paths on the small bipartite transport problem (at most deg+1 × deg+1).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from explorer.kernels._numba import leaf, parallel

__all__ = [
    "all_pairs_within",
    "cancel_common_mass",
    "edge_curvatures_dense",
    "edge_curvatures_local",
    "neighbour_measure",
    "transport_cost",
]

_TOL = 1e-14
_EPSILON = 1e-7


@leaf
def transport_cost(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> float:
    """Exact optimal transport cost Σ f_ij C_ij between masses a (m,) and b (n,), Σa = Σb.

    Successive shortest paths with potentials on the complete bipartite graph: every
    augmentation exhausts a supply, fills a demand or empties a reverse arc, so the loop ends
    after about m + n steps; each step is a dense Dijkstra, O((m + n)·max(m, n)).
    """
    m, n = cost.shape
    flow = np.zeros((m, n))
    supply = a.copy()
    demand = b.copy()
    pot_s = np.zeros(m)
    pot_t = np.empty(n)
    # start from the column minima as potentials and send each sink's demand along its cheapest
    # (reduced cost 0) arc: the residual graph keeps non-negative reduced costs, and fewer
    # augmentations follow (20.7 → 17.2 per edge on kNN graphs, with the row pass below)
    for j in range(n):
        pick = 0
        for i in range(1, m):
            if cost[i, j] < cost[pick, j]:
                pick = i
        pot_t[j] = cost[pick, j]
        sent = min(supply[pick], demand[j])
        flow[pick, j] += sent
        supply[pick] -= sent
        demand[j] -= sent
    # then the row minima of the reduced costs, and each source's leftover supply along its
    # cheapest reduced arc (super-source arcs keep reduced cost −pot_s ≥ 0)
    for i in range(m):
        pick = 0
        for j in range(1, n):
            if cost[i, j] - pot_t[j] < cost[i, pick] - pot_t[pick]:
                pick = j
        pot_s[i] = pot_t[pick] - cost[i, pick]
        sent = min(supply[i], demand[pick])
        flow[i, pick] += sent
        supply[i] -= sent
        demand[pick] -= sent
    pot_sink = pot_t.min()
    dist_s = np.empty(m)
    dist_t = np.empty(n)
    done_s = np.empty(m, dtype=np.bool_)
    done_t = np.empty(n, dtype=np.bool_)
    pred_t = np.empty(n, dtype=np.int64)  # source feeding sink j on the path
    pred_s = np.empty(m, dtype=np.int64)  # sink feeding source i (-1: from the super-source)
    for _ in range(16 * (m + n) + 64):
        if supply.max() <= _TOL:
            break
        for i in range(m):
            dist_s[i] = -pot_s[i] if supply[i] > _TOL else np.inf
            done_s[i] = False
            pred_s[i] = -1
        for j in range(n):
            dist_t[j] = np.inf
            done_t[j] = False
        dist_sink = np.inf
        last = -1
        while True:
            best = np.inf
            kind = -1
            node = -1
            for i in range(m):
                if not done_s[i] and dist_s[i] < best:
                    best, kind, node = dist_s[i], 0, i
            for j in range(n):
                if not done_t[j] and dist_t[j] < best:
                    best, kind, node = dist_t[j], 1, j
            if dist_sink <= best:
                break
            if kind < 0:
                break
            if kind == 0:
                done_s[node] = True
                for j in range(n):
                    nd = best + cost[node, j] + pot_s[node] - pot_t[j]
                    if not done_t[j] and nd < dist_t[j]:
                        dist_t[j] = nd
                        pred_t[j] = node
            else:
                done_t[node] = True
                if demand[node] > _TOL:
                    nd = best + pot_t[node] - pot_sink
                    if nd < dist_sink:
                        dist_sink = nd
                        last = node
                for i in range(m):
                    if not done_s[i] and flow[i, node] > _TOL:
                        nd = best - cost[i, node] + pot_t[node] - pot_s[i]
                        if nd < dist_s[i]:
                            dist_s[i] = nd
                            pred_s[i] = node
        if last < 0:
            break
        for i in range(m):
            pot_s[i] += min(dist_s[i], dist_sink)
        for j in range(n):
            pot_t[j] += min(dist_t[j], dist_sink)
        pot_sink += dist_sink
        # bottleneck along sink ← last ← i ← j ← … ← start source
        push = demand[last]
        j = last
        while True:
            i = pred_t[j]
            if pred_s[i] < 0:
                push = min(push, supply[i])
                break
            j = pred_s[i]
            push = min(push, flow[i, j])
        demand[last] -= push
        j = last
        while True:
            i = pred_t[j]
            flow[i, j] += push
            if pred_s[i] < 0:
                supply[i] -= push
                break
            j = pred_s[i]
            flow[i, j] -= push
    if supply.max() > 1e-9:
        return np.nan  # did not converge: the caller reports it
    total = 0.0
    for i in range(m):
        for j in range(n):
            total += flow[i, j] * cost[i, j]
    return total


@leaf
def neighbour_measure(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    x: int,
    alpha: float,
    base: float,
    power: float,
    support: np.ndarray,
    mass: np.ndarray,
) -> int:
    """Fill support/mass with m_x (neighbours first, then x itself); returns its size."""
    start, stop = indptr[x], indptr[x + 1]
    deg = stop - start
    total = 0.0
    for e in range(start, stop):
        support[e - start] = nbrs[e]
        mass[e - start] = base ** (-(wts[e] ** power))
        total += mass[e - start]
    for e in range(deg):
        mass[e] = (1.0 - alpha) * (mass[e] / total if total > _EPSILON else 1.0 / deg)
    support[deg] = x
    mass[deg] = alpha if deg > 0 else 1.0
    return deg + 1


@leaf
def _dijkstra(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    source: int,
    cutoff: float,
    dist: np.ndarray,
    touched: np.ndarray,
    heap_d: np.ndarray,
    heap_v: np.ndarray,
) -> int:
    """Shortest distances from ``source`` up to ``cutoff`` into ``dist`` (others stay inf).

    Writes the nodes it set into ``touched`` and returns their count (for a cheap reset).
    """
    n_touched = 0
    size = 0
    dist[source] = 0.0
    touched[n_touched] = source
    n_touched += 1
    heap_d[0], heap_v[0] = 0.0, source
    size = 1
    while size > 0:
        d, v = heap_d[0], heap_v[0]
        size -= 1
        # pop: move last to root and sift down
        if size > 0:
            ld, lv = heap_d[size], heap_v[size]
            pos = 0
            while True:
                c = 2 * pos + 1
                if c >= size:
                    break
                if c + 1 < size and heap_d[c + 1] < heap_d[c]:
                    c += 1
                if heap_d[c] < ld:
                    heap_d[pos], heap_v[pos] = heap_d[c], heap_v[c]
                    pos = c
                else:
                    break
            heap_d[pos], heap_v[pos] = ld, lv
        if d > dist[v]:
            continue
        for e in range(indptr[v], indptr[v + 1]):
            u = nbrs[e]
            nd = d + wts[e]
            if nd <= cutoff and nd < dist[u]:
                if dist[u] == np.inf:
                    touched[n_touched] = u
                    n_touched += 1
                dist[u] = nd
                pos = size
                size += 1
                while pos > 0:
                    parent = (pos - 1) // 2
                    if heap_d[parent] > nd:
                        heap_d[pos], heap_v[pos] = heap_d[parent], heap_v[parent]
                        pos = parent
                    else:
                        break
                heap_d[pos], heap_v[pos] = nd, u
    return n_touched


@leaf
def _reach(indptr: np.ndarray, nbrs: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Per node x: max over neighbours y of w(x, y) + (longest edge at y)."""
    n = indptr.shape[0] - 1
    max_w = np.zeros(n)
    for v in range(n):
        for e in range(indptr[v], indptr[v + 1]):
            max_w[v] = max(max_w[v], wts[e])
    reach = np.zeros(n)
    for v in range(n):
        for e in range(indptr[v], indptr[v + 1]):
            reach[v] = max(reach[v], wts[e] + max_w[nbrs[e]])
    return reach


@leaf
def cancel_common_mass(
    sup_x: np.ndarray,
    mass_x: np.ndarray,
    size_x: int,
    sup_y: np.ndarray,
    mass_y: np.ndarray,
    size_y: int,
    keep_x: np.ndarray,
    keep_y: np.ndarray,
) -> tuple[int, int]:
    """Leave min(m_x(v), m_y(v)) in place at shared nodes v (optimal for a metric cost).

    Reduces mass_x/mass_y in place and lists the positions still carrying mass in
    keep_x/keep_y; returns their counts. The remaining problem has the same W₁.
    """
    for r in range(size_x):
        for c in range(size_y):
            if sup_x[r] == sup_y[c]:
                t = min(mass_x[r], mass_y[c])
                mass_x[r] -= t
                mass_y[c] -= t
    nx = 0
    for r in range(size_x):
        if mass_x[r] > 0.0:
            keep_x[nx] = r
            nx += 1
    ny = 0
    for c in range(size_y):
        if mass_y[c] > 0.0:
            keep_y[ny] = c
            ny += 1
    return nx, ny


@leaf
def _edge_kappa(mass_x: np.ndarray, mass_y: np.ndarray, cost: np.ndarray, d_xy: float) -> float:
    if d_xy < _EPSILON:
        return 0.0
    if mass_x.shape[0] == 0 or mass_y.shape[0] == 0:
        return 1.0
    return 1.0 - transport_cost(mass_x, mass_y, cost) / d_xy


@leaf
def _bounded_row(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    reach: np.ndarray,
    u: int,
    out_row: np.ndarray,
) -> None:
    cutoff = reach[u]
    for e in range(indptr[u], indptr[u + 1]):
        cutoff = max(cutoff, wts[e] + reach[nbrs[e]])
    n = indptr.shape[0] - 1
    touched = np.empty(n, dtype=np.int64)
    heap_d = np.empty(nbrs.shape[0] + 1)
    heap_v = np.empty(nbrs.shape[0] + 1, dtype=np.int64)
    _dijkstra(indptr, nbrs, wts, u, cutoff * (1.0 + 1e-12), out_row, touched, heap_d, heap_v)


@parallel
def all_pairs_within(
    indptr: np.ndarray, nbrs: np.ndarray, wts: np.ndarray, out: np.ndarray
) -> None:
    """Graph distances into ``out`` (n, n, pre-filled with inf), each source u searched only as
    far as any W₁ cost involving u can need: max over x ∈ N[u] of w(u, x) + reach(x)."""
    reach = _reach(indptr, nbrs, wts)
    for u in prange(indptr.shape[0] - 1):
        _bounded_row(indptr, nbrs, wts, reach, u, out[u])


@leaf
def _max_degree(indptr: np.ndarray) -> int:
    best = 0
    for v in range(indptr.shape[0] - 1):
        best = max(best, indptr[v + 1] - indptr[v])
    return best


@leaf
def _dense_edge(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    dist: np.ndarray,
    x: int,
    y: int,
    alpha: float,
    base: float,
    power: float,
    max_deg: int,
) -> float:
    sup_x = np.empty(max_deg + 1, dtype=np.int64)
    mass_x = np.empty(max_deg + 1)
    sup_y = np.empty(max_deg + 1, dtype=np.int64)
    mass_y = np.empty(max_deg + 1)
    keep_x = np.empty(max_deg + 1, dtype=np.int64)
    keep_y = np.empty(max_deg + 1, dtype=np.int64)
    size_x = neighbour_measure(indptr, nbrs, wts, x, alpha, base, power, sup_x, mass_x)
    size_y = neighbour_measure(indptr, nbrs, wts, y, alpha, base, power, sup_y, mass_y)
    nx, ny = cancel_common_mass(sup_x, mass_x, size_x, sup_y, mass_y, size_y, keep_x, keep_y)
    cost = np.empty((nx, ny))
    for r in range(nx):
        for c in range(ny):
            cost[r, c] = dist[sup_x[keep_x[r]], sup_y[keep_y[c]]]
    return _edge_kappa(mass_x[keep_x[:nx]], mass_y[keep_y[:ny]], cost, dist[x, y])


@parallel
def edge_curvatures_dense(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    edges: np.ndarray,
    dist: np.ndarray,
    alpha: float,
    base: float,
    power: float,
    out: np.ndarray,
) -> None:
    """κ for every edge (e, 2) from the distance matrix of :func:`all_pairs_within`."""
    max_deg = _max_degree(indptr)
    for e in prange(edges.shape[0]):
        out[e] = _dense_edge(
            indptr, nbrs, wts, dist, edges[e, 0], edges[e, 1], alpha, base, power, max_deg
        )


@leaf
def _local_block(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    edges: np.ndarray,
    edge_start: np.ndarray,
    reach: np.ndarray,
    first: int,
    stop: int,
    alpha: float,
    base: float,
    power: float,
    out: np.ndarray,
) -> None:
    """Edges owned by nodes first…stop−1, with block-local scratch reused across nodes."""
    n = indptr.shape[0] - 1
    max_deg = _max_degree(indptr)
    rows = np.full((max_deg + 1, n), np.inf)
    touched = np.empty((max_deg + 1, n), dtype=np.int64)
    n_touched = np.zeros(max_deg + 1, dtype=np.int64)
    heap_d = np.empty(nbrs.shape[0] + 1)
    heap_v = np.empty(nbrs.shape[0] + 1, dtype=np.int64)
    sup_x = np.empty(max_deg + 1, dtype=np.int64)
    mass_x = np.empty(max_deg + 1)
    sup_y = np.empty(max_deg + 1, dtype=np.int64)
    mass_y = np.empty(max_deg + 1)
    keep_x = np.empty(max_deg + 1, dtype=np.int64)
    keep_y = np.empty(max_deg + 1, dtype=np.int64)
    for x in range(first, stop):
        if edge_start[x] == edge_start[x + 1]:
            continue
        size_x = neighbour_measure(indptr, nbrs, wts, x, alpha, base, power, sup_x, mass_x)
        for r in range(size_x):
            lift = wts[indptr[x] + r] if r < size_x - 1 else 0.0
            cutoff = (lift + reach[x]) * (1.0 + 1e-12)  # slack for summation order
            n_touched[r] = _dijkstra(
                indptr, nbrs, wts, sup_x[r], cutoff, rows[r], touched[r], heap_d, heap_v
            )
        for e in range(edge_start[x], edge_start[x + 1]):
            y = edges[e, 1]
            size_y = neighbour_measure(indptr, nbrs, wts, y, alpha, base, power, sup_y, mass_y)
            mx = mass_x[:size_x].copy()
            nx, ny = cancel_common_mass(sup_x, mx, size_x, sup_y, mass_y, size_y, keep_x, keep_y)
            cost = np.empty((nx, ny))
            for r in range(nx):
                for c in range(ny):
                    cost[r, c] = rows[keep_x[r], sup_y[keep_y[c]]]
            out[e] = _edge_kappa(mx[keep_x[:nx]], mass_y[keep_y[:ny]], cost, rows[size_x - 1, y])
        for r in range(size_x):
            for t in range(n_touched[r]):
                rows[r, touched[r, t]] = np.inf


@parallel
def edge_curvatures_local(
    indptr: np.ndarray,
    nbrs: np.ndarray,
    wts: np.ndarray,
    edges: np.ndarray,
    edge_start: np.ndarray,
    alpha: float,
    base: float,
    power: float,
    n_chunks: int,
    out: np.ndarray,
) -> None:
    """κ for every edge without an n×n matrix (for large graphs; slower: deg+1 searches per node).

    edges (e, 2) sorted by first node, edge_start (n+1,) its CSR offsets. Nodes are split into
    ``n_chunks`` blocks processed in parallel, each with its own scratch (distance rows for the
    deg+1 sources of m_x, Dijkstra heap, touched lists).
    """
    n = indptr.shape[0] - 1
    reach = _reach(indptr, nbrs, wts)
    block = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        _local_block(
            indptr,
            nbrs,
            wts,
            edges,
            edge_start,
            reach,
            c * block,
            min(n, (c + 1) * block),
            alpha,
            base,
            power,
            out,
        )
