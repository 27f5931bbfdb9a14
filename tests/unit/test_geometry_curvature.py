"""Ollivier–Ricci curvature: exact OT vs an LP oracle, the definition vs a slow reference,
signs on cliques and bridges, the peer GraphRicciCurvature when installed."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import linprog

from explorer.analysis.geometry import graph_curvature, knn, knn_graph, ollivier_ricci
from explorer.kernels import curvature as curvature_kernels
from explorer.kernels.curvature import transport_cost


def lp_transport(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> float:
    m, n = cost.shape
    rows = [np.kron(np.eye(m)[i], np.ones(n)) for i in range(m)]
    cols = [np.kron(np.ones(m), np.eye(n)[j]) for j in range(n)]
    res = linprog(cost.ravel(), A_eq=np.array(rows + cols), b_eq=np.r_[a, b], method="highs")
    return float(res.fun)


def transport_problems(count: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """Random small problems, a third with uniform masses (square ones are assignment problems,
    the most degenerate case) and half with integer costs (many ties)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, ...]] = []
    for trial in range(count):
        m, n = rng.integers(1, 13, size=2)
        a, b = rng.random(m), rng.random(n)
        if trial % 3 == 0:
            n = m if trial % 2 else n
            a, b = np.ones(m), np.ones(n)
        a, b = a / a.sum(), b / b.sum()
        cost = rng.integers(0, 3, (m, n)).astype(float) if trial % 2 else rng.random((m, n))
        out.append((a, b, cost))
    return out


@pytest.mark.kernels
def test_transport_cost_matches_linear_programming() -> None:
    for a, b, cost in transport_problems(150):
        assert transport_cost(a, b, cost) == pytest.approx(lp_transport(a, b, cost), abs=1e-10)


@pytest.mark.kernels
def test_transport_cost_under_blands_rule_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The anti-cycling rule (entered only after long degenerate runs) reaches the optimum too."""
    entering = curvature_kernels._entering
    monkeypatch.setattr(
        curvature_kernels,
        "_entering",
        lambda c, basic, u, v, tol, first: entering(c, basic, u, v, tol, True),
    )
    solve = getattr(transport_cost, "py_func", transport_cost)
    for a, b, cost in transport_problems(60, seed=1):
        assert solve(a, b, cost) == pytest.approx(lp_transport(a, b, cost), abs=1e-10)


def reference_curvature(g: nx.Graph, alpha: float = 0.5) -> dict[tuple[int, int], float]:
    """The definition, written plainly: networkx shortest paths + LP per edge."""
    dist = dict(nx.all_pairs_dijkstra_path_length(g, weight="weight"))

    def measure(x: int) -> tuple[list[int], np.ndarray]:
        nbrs = list(g.neighbors(x))
        w = np.array([np.exp(-(g[x][v]["weight"] ** 2)) for v in nbrs])
        w = (1 - alpha) * (w / w.sum() if w.sum() > 1e-7 else np.full(len(nbrs), 1 / len(nbrs)))
        return [*nbrs, x], np.r_[w, alpha]

    out = {}
    for x, y in g.edges():
        sx, mx = measure(x)
        sy, my = measure(y)
        cost = np.array([[dist[u][v] for v in sy] for u in sx])
        out[(min(x, y), max(x, y))] = 1 - lp_transport(mx, my, cost) / dist[x][y]
    return out


def weighted_graph(seed: int = 0) -> nx.Graph:
    rng = np.random.default_rng(seed)
    g = nx.connected_watts_strogatz_graph(30, 4, 0.3, seed=seed)
    for u, v in g.edges():
        g[u][v]["weight"] = float(rng.uniform(0.2, 1.5))
    return g


@pytest.mark.kernels
@pytest.mark.parametrize("dense_limit", [10_000, 0], ids=["dense", "local"])
def test_graph_curvature_matches_the_definition(dense_limit: int) -> None:
    g = weighted_graph()
    edges = np.array(g.edges())
    w = np.array([g[u][v]["weight"] for u, v in edges])
    got = graph_curvature(edges, w, 30, dense_limit=dense_limit)
    ref = reference_curvature(g)
    expected = np.array([ref[tuple(e)] for e in got.edges])
    np.testing.assert_allclose(got.curvature, expected, atol=1e-10)
    node0 = got.curvature[(got.edges == 0).any(axis=1)].mean()
    assert got.node[0] == pytest.approx(node0)


@pytest.mark.kernels
def test_cliques_are_positive_and_bridges_negative() -> None:
    g = nx.barbell_graph(6, 0)  # two K6 joined by one bridge edge
    edges = np.array(g.edges())
    res = graph_curvature(edges)
    bridge = np.flatnonzero((res.edges == [5, 6]).all(axis=1))[0]
    inside = np.delete(res.curvature, bridge)
    assert res.curvature[bridge] < 0 < inside.min()


@pytest.mark.kernels
def test_knn_curvature_of_two_clusters_has_negative_bridges() -> None:
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(size=(60, 2)) * 0.3, rng.normal(size=(60, 2)) * 0.3 + [4, 0]])
    x = np.vstack([x, np.linspace([0.5, 0], [3.5, 0], 6)])  # a thin chain between the clusters
    res = ollivier_ricci(x, 5)
    on_chain = (res.edges >= 120).all(axis=1)
    assert res.curvature[on_chain].mean() < res.curvature[~on_chain].mean()


@pytest.mark.kernels
def test_duplicate_points_give_zero_curvature_not_nan() -> None:
    x = np.vstack([np.eye(4), np.eye(4)[:1]])
    res = ollivier_ricci(x, 2)
    zero_length = res.lengths == 0
    assert zero_length.any() and np.all(res.curvature[zero_length] == 0.0)
    assert np.all(np.isfinite(res.curvature))


def test_agrees_with_graph_ricci_curvature() -> None:
    peer = pytest.importorskip("GraphRicciCurvature.OllivierRicci")
    x = np.random.default_rng(2).normal(size=(80, 3)) * 0.5
    edges, w = knn_graph(knn(x, 5))
    g = nx.Graph()
    g.add_weighted_edges_from((int(a), int(b), float(c)) for (a, b), c in zip(edges, w))
    orc = peer.OllivierRicci(g, alpha=0.5, method="OTD", proc=1, verbose="ERROR")
    orc.compute_ricci_curvature()
    ours = ollivier_ricci(x, 5)
    ref = np.array([orc.G[int(a)][int(b)]["ricciCurvature"] for a, b in ours.edges])
    np.testing.assert_allclose(ours.curvature, ref, atol=1e-9)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="self-loops"):
        graph_curvature(np.array([[0, 1], [2, 2]]))
    with pytest.raises(ValueError, match="integer array of shape"):
        graph_curvature(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        graph_curvature(np.array([[0, 1]]), [-1.0])
    with pytest.raises(ValueError, match="alpha"):
        graph_curvature(np.array([[0, 1]]), alpha=2.0)
    with pytest.raises(ValueError, match=r"edge ids must be in \[0, 2\)"):
        graph_curvature(np.array([[0, 5]]), n_nodes=2)
