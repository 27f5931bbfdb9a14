"""Attention kernels (numba, CPU): per-head statistics and attention flow by max-flow.

Conventions: ``attn`` is (L, H, T, T) with rows = queries, columns = keys, rows summing to 1.
Flow capacities ``cap`` are (L, T, T): the edge from token j at layer k (input side) to token i
at layer k + 1 has capacity ``cap[k, i, j]`` (the row-stochastic mixing matrix of layer k); the
kernels take it transposed (``cap_t[k, j, i]``) so that the arcs leaving a node are contiguous.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from explorer.kernels._numba import leaf, parallel

__all__ = ["N_HEAD_STATS", "attention_flow_kernel", "head_stats_kernel", "max_flow_layered"]

# Order of the statistics returned by head_stats_kernel.
N_HEAD_STATS = 7  # entropy, distance, max_weight, diagonal, previous_token, first_token, induction


@parallel
def head_stats_kernel(
    attn: np.ndarray, dist: np.ndarray, induction: np.ndarray, out: np.ndarray
) -> None:
    """Fill ``out`` (L, H, 7) with per-head statistics of ``attn`` (L, H, T, T), in float64.

    ``dist`` (T, T) holds query→key distances; ``induction`` (T, T) uint8 marks induction targets.
    Entropy (nats), distance, max weight and diagonal average over all queries; previous-token
    and first-token mass over queries 1..T-1; induction over queries that have a target (NaN if
    none has).
    """
    n_layers, n_heads, t, _ = attn.shape
    for p in prange(n_layers * n_heads):
        lay = p // n_heads
        h = p % n_heads
        ent = 0.0
        dst = 0.0
        mx = 0.0
        diag = 0.0
        prev = 0.0
        first = 0.0
        ind = 0.0
        n_ind = 0
        for i in range(t):
            row_max = 0.0
            row_ind = 0.0
            has_ind = False
            for j in range(t):
                w = np.float64(attn[lay, h, i, j])
                if w > 0.0:
                    ent -= w * np.log(w)
                dst += w * dist[i, j]
                if w > row_max:
                    row_max = w
                if induction[i, j]:
                    row_ind += w
                    has_ind = True
            mx += row_max
            diag += np.float64(attn[lay, h, i, i])
            if i > 0:
                prev += np.float64(attn[lay, h, i, i - 1])
                first += np.float64(attn[lay, h, i, 0])
            if has_ind:
                ind += row_ind
                n_ind += 1
        out[lay, h, 0] = ent / t
        out[lay, h, 1] = dst / t
        out[lay, h, 2] = mx / t
        out[lay, h, 3] = diag / t
        out[lay, h, 4] = prev / (t - 1) if t > 1 else np.nan
        out[lay, h, 5] = first / (t - 1) if t > 1 else np.nan
        out[lay, h, 6] = ind / n_ind if n_ind > 0 else np.nan


@leaf
def max_flow_layered(
    cap_t: np.ndarray,
    source: int,
    sink: int,
    flow: np.ndarray,
    flow_t: np.ndarray,
    level: np.ndarray,
    arc: np.ndarray,
    path: np.ndarray,
    queue: np.ndarray,
    eps: float,
) -> float:
    """Maximum flow (Dinic) from token ``source`` at layer 0 to token ``sink`` at the top layer.

    ``cap_t`` (L, T, T) is the capacity transposed: ``cap_t[k, j, i] = cap[k, i, j]``, so the arcs
    leaving a node are contiguous. Scratch: ``flow`` and ``flow_t`` (L, T, T) float64 (the flow on
    edge (k, j)→(k + 1, i) is ``flow[k, j, i] = flow_t[k, i, j]``), ``level``, ``arc``, ``path``,
    ``queue`` int64 of length (L + 1)·T + 1. Residuals ≤ ``eps`` count as zero.
    Node (k, j) has 2T arcs: a < T goes forward to (k + 1, a) with residual
    ``cap_t[k, j, a] - flow[k, j, a]``; a ≥ T goes back to (k - 1, a - T) with residual
    ``flow_t[k - 1, j, a - T]``.
    """
    n_layers, t, _ = cap_t.shape
    flow[:] = 0.0
    flow_t[:] = 0.0
    src = source
    dst = n_layers * t + sink
    # Upper bound: all flow leaves the source through layer 0 and enters the sink through the top.
    bound_out = 0.0
    bound_in = 0.0
    for a in range(t):
        bound_out += cap_t[0, source, a]
        bound_in += cap_t[n_layers - 1, a, sink]
    if bound_out <= eps or bound_in <= eps:
        return 0.0
    total = 0.0
    while True:
        # BFS level graph from the source, stopping at the sink's level; top-layer nodes other
        # than the sink are dead ends.
        level[:] = -1
        level[src] = 0
        head = 0
        tail = 1
        queue[0] = src
        while head < tail:
            u = queue[head]
            head += 1
            if level[dst] >= 0 and level[u] >= level[dst]:
                break
            k = u // t
            j = u % t
            if k < n_layers:
                for a in range(t):
                    v = (k + 1) * t + a
                    if level[v] < 0 and cap_t[k, j, a] - flow[k, j, a] > eps:
                        if k + 1 == n_layers and a != sink:
                            continue
                        level[v] = level[u] + 1
                        queue[tail] = v
                        tail += 1
            if k > 0:
                for b in range(t):
                    v = (k - 1) * t + b
                    if level[v] < 0 and flow_t[k - 1, j, b] > eps:
                        level[v] = level[u] + 1
                        queue[tail] = v
                        tail += 1
        if level[dst] < 0:
            break
        arc[:] = 0
        # Blocking flow by repeated advance/retreat along admissible arcs.
        depth = 0
        path[0] = src
        u = src
        while True:
            if u == dst:
                bottleneck = np.inf
                for d in range(depth):
                    w = path[d]
                    k = w // t
                    j = w % t
                    a = arc[w]
                    r = cap_t[k, j, a] - flow[k, j, a] if a < t else flow_t[k - 1, j, a - t]
                    if r < bottleneck:
                        bottleneck = r
                for d in range(depth):
                    w = path[d]
                    k = w // t
                    j = w % t
                    a = arc[w]
                    if a < t:
                        flow[k, j, a] += bottleneck
                        flow_t[k, a, j] += bottleneck
                    else:
                        flow_t[k - 1, j, a - t] -= bottleneck
                        flow[k - 1, a - t, j] -= bottleneck
                total += bottleneck
                depth = 0
                u = src
                continue
            k = u // t
            j = u % t
            found = -1
            while arc[u] < 2 * t:
                a = arc[u]
                if a < t:
                    if k < n_layers:
                        v = (k + 1) * t + a
                        if level[v] == level[u] + 1 and cap_t[k, j, a] - flow[k, j, a] > eps:
                            found = v
                            break
                elif k > 0:
                    v = (k - 1) * t + (a - t)
                    if level[v] == level[u] + 1 and flow_t[k - 1, j, a - t] > eps:
                        found = v
                        break
                arc[u] += 1
            if found >= 0:
                depth += 1
                path[depth] = found
                u = found
            else:
                level[u] = -1  # dead end for this phase
                if depth == 0:
                    break
                depth -= 1
                u = path[depth]
                arc[u] += 1
    return total


@parallel
def attention_flow_kernel(
    cap_t: np.ndarray, queries: np.ndarray, out: np.ndarray, n_chunks: int, eps: float
) -> None:
    """``out[q, s]`` = max flow from input token s to output token ``queries[q]`` (parallel).

    ``cap_t`` (L, T, T) is the transposed capacity, see :func:`max_flow_layered`.
    """
    n_layers, t, _ = cap_t.shape
    n_pairs = queries.shape[0] * t
    per_chunk = (n_pairs + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        flow = np.empty((n_layers, t, t), dtype=np.float64)
        flow_t = np.empty((n_layers, t, t), dtype=np.float64)
        n_nodes = (n_layers + 1) * t
        level = np.empty(n_nodes, dtype=np.int64)
        arc = np.empty(n_nodes, dtype=np.int64)
        path = np.empty(n_nodes + 1, dtype=np.int64)
        queue = np.empty(n_nodes + 1, dtype=np.int64)
        for p in range(c * per_chunk, min(n_pairs, (c + 1) * per_chunk)):
            q = p // t
            s = p % t
            out[q, s] = max_flow_layered(
                cap_t, s, queries[q], flow, flow_t, level, arc, path, queue, eps
            )
