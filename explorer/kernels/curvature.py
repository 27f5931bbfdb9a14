"""Ollivier–Ricci curvature kernels: truncated Dijkstra and exact small optimal transport.

Graph in CSR form: ``indptr`` (n+1,), ``nbrs`` (2e,), ``wts`` (2e,) positive edge lengths.
Edge (x, y) gets κ = 1 − W₁(m_x, m_y)/d(x, y), where m_x puts α on x and (1 − α) on its
neighbours ∝ base^(−w^p) (uniform when that sum is ≤ 1e-7), the transport cost is the
shortest-path distance in the graph, and d(x, y) is the graph distance between the endpoints
(κ = 0 when d < 1e-7). This is GraphRicciCurvature's "OTD" definition. W₁ is solved exactly
by the transportation simplex on the small transport problem (at most deg+1 × deg+1).
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
    """Exact optimal transport cost Σ f_ij C_ij between masses a (m,) and b (n,), Σa = Σb, for
    finite costs (m, n).

    Transportation simplex: a least-cost greedy start, then pivots that price the basis tree,
    enter the cell of most negative reduced cost (Dantzig) and move flow around its cycle.
    After m + n degenerate pivots in a row it enters the first negative cell instead (Bland's
    rule), so it cannot cycle. O(m·n) per pivot, about 8 pivots on 10 × 10 problems.
    Returns NaN if it does not converge.
    """
    m, n = cost.shape
    flow = np.zeros((m, n))
    basic = np.zeros((m, n), dtype=np.bool_)
    _least_cost_basis(a, b, cost, flow, basic)
    tol = 1e-12 * max(1.0, np.abs(cost).max())
    u, v = np.empty(m), np.empty(n)
    parent = np.empty(m + n, dtype=np.int64)
    depth = np.empty(m + n, dtype=np.int64)
    scratch = np.empty(m + n, dtype=np.int64)
    path_r = np.empty(m + n, dtype=np.int64)
    path_c = np.empty(m + n, dtype=np.int64)
    stalled = 0
    for _ in range(64 * (m + n) + 64):
        _price_tree(cost, basic, u, v, parent, depth, scratch)
        ei, ej = _entering(cost, basic, u, v, tol, stalled > m + n)
        if ei < 0:
            return float(np.sum(flow * cost))
        length = _tree_path(parent, depth, ei, m + ej, m, path_r, path_c)
        # the cycle is (ei, ej) (+) and the path, whose cells alternate − + − … from ej; θ is
        # the least flow on a − cell (ties: lowest index, as Bland's rule needs), which leaves
        theta, leave = np.inf, -1
        for k in range(0, length, 2):
            f = flow[path_r[k], path_c[k]]
            if f < theta or (
                f == theta and (path_r[k], path_c[k]) < (path_r[leave], path_c[leave])
            ):
                theta, leave = f, k
        for k in range(length):
            flow[path_r[k], path_c[k]] += theta if k % 2 else -theta
        flow[ei, ej] = theta
        flow[path_r[leave], path_c[leave]] = 0.0
        basic[path_r[leave], path_c[leave]] = False
        basic[ei, ej] = True
        stalled = stalled + 1 if theta <= _TOL else 0
    return np.nan


@leaf
def _least_cost_basis(
    a: np.ndarray, b: np.ndarray, cost: np.ndarray, flow: np.ndarray, basic: np.ndarray
) -> None:
    """Greedy start: repeatedly allocate to the cheapest cell whose row and column are open
    (ties: the first in row-major order). Every allocation closes one line (the last closes
    two), so the m + n − 1 basic cells form a spanning tree of the rows and columns.

    Closed lines are set to +inf in a copy of the (finite) costs and the cheapest cell is an
    argmin: faster than sorting the m·n costs at these sizes.
    """
    m, n = cost.shape
    supply = a.copy()
    demand = b.copy()
    open_cost = cost.copy()
    rows_left, cols_left = m, n
    while True:
        cell = np.argmin(open_cost)
        i, j = cell // n, cell % n
        t = min(supply[i], demand[j])
        flow[i, j] = t
        basic[i, j] = True
        supply[i] -= t
        demand[j] -= t
        if rows_left == 1 and cols_left == 1:
            return
        if cols_left == 1 or (rows_left > 1 and supply[i] <= demand[j]):
            open_cost[i, :] = np.inf
            rows_left -= 1
        else:
            open_cost[:, j] = np.inf
            cols_left -= 1


@leaf
def _price_tree(
    cost: np.ndarray,
    basic: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    parent: np.ndarray,
    depth: np.ndarray,
    queue: np.ndarray,
) -> None:
    """Potentials with u_i + v_j = C_ij on basic cells, and the basis tree rooted at row 0
    (nodes: rows 0…m−1, columns m…m+n−1) as parent/depth, by breadth-first search."""
    m, n = cost.shape
    depth[:] = -1
    u[0] = 0.0
    depth[0] = 0
    queue[0] = 0
    head, tail = 0, 1
    while head < tail:
        node = queue[head]
        head += 1
        if node < m:
            for j in range(n):
                if basic[node, j] and depth[m + j] < 0:
                    v[j] = cost[node, j] - u[node]
                    depth[m + j], parent[m + j] = depth[node] + 1, node
                    queue[tail] = m + j
                    tail += 1
        else:
            j = node - m
            for i in range(m):
                if basic[i, j] and depth[i] < 0:
                    u[i] = cost[i, j] - v[j]
                    depth[i], parent[i] = depth[node] + 1, node
                    queue[tail] = i
                    tail += 1


@leaf
def _entering(
    cost: np.ndarray, basic: np.ndarray, u: np.ndarray, v: np.ndarray, tol: float, first: bool
) -> tuple[int, int]:
    """Non-basic cell with reduced cost C_ij − u_i − v_j < −tol: the most negative, or with
    ``first`` the first in row-major order (Bland). (−1, −1) when the basis is optimal."""
    m, n = cost.shape
    best, bi, bj = -tol, -1, -1
    for i in range(m):
        for j in range(n):
            r = cost[i, j] - u[i] - v[j]
            if r < best and not basic[i, j]:
                if first:
                    return i, j
                best, bi, bj = r, i, j
    return bi, bj


@leaf
def _tree_path(
    parent: np.ndarray,
    depth: np.ndarray,
    p: int,
    q: int,
    m: int,
    path_r: np.ndarray,
    path_c: np.ndarray,
) -> int:
    """Cells of the tree path from node q to node p into path_r/path_c, in order; returns the
    path length. Both ends climb to their common ancestor, the deeper one first."""
    up, down = 0, path_r.shape[0]
    while p != q:
        if depth[q] >= depth[p]:
            node, q = q, parent[q]
            k = up
            up += 1
        else:
            node, p = p, parent[p]
            down -= 1
            k = down
        above = parent[node]
        path_r[k], path_c[k] = (node, above - m) if node < m else (above, node - m)
    length = up
    for k in range(down, path_r.shape[0]):  # close the gap (forward copy: length ≤ k)
        path_r[length], path_c[length] = path_r[k], path_c[k]
        length += 1
    return length


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
