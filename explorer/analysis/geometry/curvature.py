"""Ollivier–Ricci curvature of the kNN graph (or any weighted graph), per edge and per node.

Definition (GraphRicciCurvature's "OTD", the peer we agree with): for an edge (x, y),
κ = 1 − W₁(m_x, m_y)/d(x, y). m_x keeps mass α on x and spreads 1 − α over x's neighbours
∝ base^(−w^power) (uniform if those weights sum to ≤ 1e-7, e.g. for long edges); W₁ uses
shortest-path distances in the graph; d(x, y) is the graph distance (κ = 0 when it is < 1e-7,
e.g. between duplicate points). Positive κ: neighbourhoods overlap (cliques, dense clusters);
negative: bridges between regions. One exact optimal-transport problem per edge, in numba.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np

from explorer.analysis.geometry.neighbors import knn, knn_graph
from explorer.device import DeviceLike, as_numpy
from explorer.kernels import curvature as kernels
from explorer.validation import check_array, check_matrix, check_number, check_positive_int

__all__ = ["Curvature", "graph_curvature", "ollivier_ricci"]


class Curvature(NamedTuple):
    """Per-edge curvature: ``edges`` (e, 2) with i < j, ``lengths`` (e,), ``curvature`` (e,);
    ``node`` (n,) mean curvature of the edges at each node."""

    edges: np.ndarray
    lengths: np.ndarray
    curvature: np.ndarray
    node: np.ndarray


def _csr(edges: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    both = np.concatenate([edges, edges[:, ::-1]])
    w = np.concatenate([weights, weights])
    order = np.lexsort((both[:, 1], both[:, 0]))
    both, w = both[order], w[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(both[:, 0], minlength=n), out=indptr[1:])
    return indptr, np.ascontiguousarray(both[:, 1]), np.ascontiguousarray(w)


def _check_measure(alpha: Any, base: Any, power: Any) -> tuple[float, float, float]:
    return (
        check_number(alpha, "alpha", low=0.0, high=1.0),
        check_number(base, "base", low=1.0),
        check_number(power, "power", low=0.0, low_open=True),
    )


def graph_curvature(
    edges: Any,
    weights: Any = None,
    n_nodes: int | None = None,
    *,
    alpha: float = 0.5,
    base: float = math.e,
    power: float = 2.0,
    dense_limit: int = 8192,
) -> Curvature:
    """Ollivier–Ricci curvature of an undirected weighted graph given as an edge list.

    edges: (e, 2) node ids in [0, n_nodes); weights: (e,) positive lengths (default 1).
    Self-loops are rejected; repeated edges are merged (first weight kept). Graphs with at most
    ``dense_limit`` nodes use an n×n distance matrix (8·n² bytes, fastest); larger graphs
    search locally per node instead (bounded memory, several times slower). ``alpha`` ∈ [0, 1],
    ``base`` ≥ 1 (nearer neighbours get at least as much mass) and ``power`` > 0.
    """
    alpha, base, power = _check_measure(alpha, base, power)
    dense_limit = check_positive_int(dense_limit, "dense_limit", minimum=0)
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2 or not np.issubdtype(e.dtype, np.integer):
        raise ValueError(f"edges must be an integer array of shape (e, 2), got {e.dtype} {e.shape}")
    if len(e) == 0:
        raise ValueError("the graph has no edges")
    w = (
        np.ones(len(e))
        if weights is None
        else as_numpy(check_array(weights, "weights", finite=False), dtype=np.float64).ravel()
    )
    if w.shape != (len(e),):
        raise ValueError(f"weights must have shape ({len(e)},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("edge weights must be finite and non-negative (they are lengths)")
    if np.any(e[:, 0] == e[:, 1]):
        raise ValueError("self-loops are not allowed (an edge (i, i) has no curvature)")
    n = int(e.max()) + 1 if n_nodes is None else check_positive_int(n_nodes, "n_nodes")
    if e.min() < 0 or e.max() >= n:
        raise ValueError(f"edge ids must be in [0, {n}), got range [{e.min()}, {e.max()}]")
    lo, hi = np.minimum(e[:, 0], e[:, 1]).astype(np.int64), np.maximum(e[:, 0], e[:, 1])
    _, first = np.unique(lo * n + hi, return_index=True)
    edges_u = np.stack([lo[first], hi[first].astype(np.int64)], axis=1)
    w = w[first]
    indptr, nbrs, wts = _csr(edges_u, w, n)
    out = np.empty(len(edges_u))
    args = (float(alpha), float(base), float(power))
    if n <= dense_limit:
        dist = np.full((n, n), np.inf)
        kernels.all_pairs_within(indptr, nbrs, wts, dist)
        kernels.edge_curvatures_dense(indptr, nbrs, wts, edges_u, dist, *args, out)
    else:
        edge_start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(edges_u[:, 0], minlength=n), out=edge_start[1:])
        n_chunks = max(1, min(n, 4 * numba.get_num_threads()))
        kernels.edge_curvatures_local(indptr, nbrs, wts, edges_u, edge_start, *args, n_chunks, out)
    if np.isnan(out).any():
        raise RuntimeError("optimal transport did not converge on some edges; please report this")
    sums = np.bincount(edges_u.ravel(), weights=np.repeat(out, 2), minlength=n)
    degree = np.bincount(edges_u.ravel(), minlength=n)
    node = np.divide(sums, degree, out=np.full(n, np.nan), where=degree > 0)
    return Curvature(edges_u, w, out, node)


def ollivier_ricci(
    x: Any,
    k: int = 10,
    *,
    alpha: float = 0.5,
    base: float = math.e,
    power: float = 2.0,
    device: DeviceLike = "auto",
) -> Curvature:
    """Ollivier–Ricci curvature of the symmetric kNN graph of x (n, D), Euclidean edge lengths.

    Note the weights base^(−w^power) depend on the scale of x: with p = 2 and edges much
    longer than 1, m_x becomes uniform over neighbours (GraphRicciCurvature behaves the same).
    """
    _check_measure(alpha, base, power)
    x = check_matrix(x, "x", min_rows=2)
    edges, lengths = knn_graph(knn(x, k, device=device))
    return graph_curvature(edges, lengths, len(x), alpha=alpha, base=base, power=power)
