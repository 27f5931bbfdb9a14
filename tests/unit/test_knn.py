"""Exact kNN: equals float64 brute force (ties by index), duplicate-safe, clear errors."""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from explorer.analysis.geometry import knn, knn_graph, neighbors
from explorer.analysis.geometry.neighbors import _knn_torch
from explorer.kernels import knn as kernels
from explorer.kernels._numba import threads


def brute_force(x: np.ndarray, k: int, query: np.ndarray | None = None):
    q = x if query is None else query
    d = cdist(q, x, "sqeuclidean")
    if query is None:
        np.fill_diagonal(d, np.inf)
    idx = np.array([np.lexsort((np.arange(len(x)), row))[:k] for row in d])
    return np.sqrt(np.take_along_axis(d, idx, 1)), idx


DATASETS = {
    "gaussian": lambda rng: rng.normal(size=(400, 16)),
    "integer grid (many ties)": lambda rng: rng.integers(0, 3, size=(200, 4)).astype(float),
    "duplicates far from origin": lambda rng: np.vstack([rng.normal(size=(40, 3))] * 3) + 1e3,
    "float32": lambda rng: rng.normal(size=(300, 40)).astype(np.float32),
}


@pytest.mark.kernels
@pytest.mark.parametrize("name", DATASETS)
def test_knn_equals_brute_force(name: str) -> None:
    x = DATASETS[name](np.random.default_rng(0))
    ref_d, ref_i = brute_force(x.astype(np.float64), 7)
    for got in (knn(x, 7), _knn_torch(x, None, 7, torch.device("cpu"))):
        np.testing.assert_array_equal(got.indices, ref_i)
        np.testing.assert_allclose(got.distances, ref_d, rtol=1e-12, atol=1e-12)


@pytest.mark.kernels
@pytest.mark.parametrize("gram_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("n", [256, 300, 97])
def test_blocked_path_equals_brute_force(
    n: int, gram_dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small blocks force many rounds: diagonal and off-diagonal blocks, padding, odd counts;
    with either GEMM precision (bfloat16 on CPUs with bfloat16 units, else float32), folded
    by one thread and by a pool of workers."""
    monkeypatch.setattr(neighbors, "_BLOCK", 64)
    monkeypatch.setattr(neighbors, "_GRAM_DTYPE", gram_dtype)
    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, size=(n, 3)).astype(float)  # many ties and duplicates across blocks
    q = rng.integers(0, 4, size=(70, 3)).astype(float)
    most = min(2, int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    for workers, query in itertools.product(sorted({1, most}), (None, q)):
        ref_d, ref_i = brute_force(x, 9, query)
        with threads(workers):
            got = knn(x, 9, query=query)
        np.testing.assert_array_equal(got.indices, ref_i)
        np.testing.assert_allclose(got.distances, ref_d, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gram_dtype", [torch.bfloat16, torch.float32])
def test_screen_bounds_hold_on_every_pair(
    gram_dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the result exact: for every pair, the GEMM's value o bounds the distance d
    from above (d ≤ upper(o)) and a pair at d is never screened out (o < limit(d)); pairs with
    padding come out +inf. Spread-out, offset, badly scaled and duplicated data."""
    monkeypatch.setattr(neighbors, "_GRAM_DTYPE", gram_dtype)
    rng = np.random.default_rng(5)
    base = rng.normal(size=(150, 64))
    for x in (
        base,
        base * 1e-3 + 1e4,
        base * np.logspace(-6, 3, 64),
        np.vstack([base[:75], base[:75]]),
    ):
        s = (x - x.mean(axis=0)) * 2.0**-8
        points = neighbors._lowered(s, len(s) + 10)
        o = (points.left @ points.right.T).double().numpy()
        assert np.all(o[:, len(s) :] == np.inf) and np.all(o[len(s) :] == np.inf)
        q = neighbors._queries(points, points, x, len(s), 3, 2.0**-16)
        d = np.sqrt(cdist(s, s, "sqeuclidean"))
        for p in range(len(s)):
            rad, extra = q.rad[p], q.extra[p]
            for c in range(len(s)):
                assert d[p, c] <= kernels._upper(o[p, c], rad, extra, q.rel)
                assert o[p, c] < np.float32(kernels._limit(d[p, c], rad, extra, q.rel))


@pytest.mark.kernels
def test_kth_bound_is_a_tight_upper_bound_on_the_kth_smallest() -> None:
    """The screen's starting limit: at or above the k-th smallest finite value, within 2⁻⁸ of it
    when that is positive; +inf (no bound) when fewer than k values are finite."""
    rng = np.random.default_rng(3)
    for trial in range(60):
        o = (rng.normal(size=rng.integers(5, 300)) + (0.0 if trial % 3 else 5.0)).astype(np.float32)
        o[rng.random(len(o)) < 0.2] = np.inf  # self and padding
        if trial % 4 == 0:
            o[: len(o) // 2] = np.float32(0.25)  # ties
        finite = np.sort(o[np.isfinite(o)])
        k = int(rng.integers(1, 12))
        got = kernels._kth_bound(o, k)
        if len(finite) < k:
            assert got == np.inf
            continue
        kth = finite[k - 1]
        assert got >= kth
        if kth > 0:
            assert got <= kth / (1 - 2.0**-8) * (1 + 1e-7)


def test_block_rounds_cover_every_pair_once_without_sharing_a_block() -> None:
    for nb in (1, 2, 4, 5, 20):
        rounds = neighbors._rounds(nb)
        pairs = [p for r in rounds for p in r]
        assert sorted(pairs) == [(i, j) for i in range(nb) for j in range(i, nb)]
        assert all(i <= j for i, j in pairs)
        for r in rounds:
            used = [b for p in r for b in set(p)]
            assert len(used) == len(set(used))


@pytest.mark.kernels
def test_knn_with_separate_queries() -> None:
    rng = np.random.default_rng(1)
    x, q = rng.normal(size=(150, 5)), rng.normal(size=(30, 5))
    q[0] = x[3]  # a query equal to a data point: distance 0, not excluded
    ref_d, ref_i = brute_force(x, 4, q)
    got = knn(x, 4, query=q)
    np.testing.assert_array_equal(got.indices, ref_i)
    np.testing.assert_allclose(got.distances, ref_d, rtol=1e-12)
    assert got.distances[0, 0] == 0.0 and got.indices[0, 0] == 3
    np.testing.assert_array_equal(_knn_torch(x, q, 4, torch.device("cpu")).indices, ref_i)


@pytest.mark.kernels
def test_duplicates_are_neighbours_at_zero_but_never_self() -> None:
    x = np.repeat(np.arange(10, dtype=float)[:, None], 3, axis=0)  # each value 3 times
    nb = knn(x, 2)
    assert np.all(nb.distances == 0.0)
    assert np.all(nb.indices != np.arange(len(x))[:, None])


@pytest.mark.kernels
def test_k_equal_to_all_other_points() -> None:
    x = np.random.default_rng(2).normal(size=(12, 3))
    _, ref_i = brute_force(x, 11)
    np.testing.assert_array_equal(knn(x, 11).indices, ref_i)


@pytest.mark.kernels
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 25),
    d=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
)
def test_property_matches_brute_force(n: int, d: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)) * scale  # coarse values: ties and duplicates
    k = min(3, n - 1)
    ref_d, ref_i = brute_force(x, k)
    got = knn(x, k)
    np.testing.assert_array_equal(got.indices, ref_i)
    np.testing.assert_allclose(got.distances, ref_d, rtol=1e-12)


def test_knn_graph_is_symmetric_union() -> None:
    x = np.random.default_rng(3).normal(size=(60, 4))
    nb = knn(x, 5)
    edges, w = knn_graph(nb)
    assert np.all(edges[:, 0] < edges[:, 1])
    pairs = {tuple(e) for e in edges}
    expected = {(min(i, j), max(i, j)) for i in range(60) for j in nb.indices[i]}
    assert pairs == expected
    np.testing.assert_allclose(w, np.linalg.norm(x[edges[:, 0]] - x[edges[:, 1]], axis=1))


def test_bad_inputs() -> None:
    x = np.random.default_rng(4).normal(size=(5, 3))
    with pytest.raises(ValueError, match="need at least 6 points"):
        knn(x, 5)
    with pytest.raises(ValueError, match="non-finite"):
        knn(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="must be 2-D"):
        knn(np.arange(5.0), 1)
    with pytest.raises(ValueError, match="features but x has"):
        knn(x, 1, query=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="k must be an integer"):
        knn(x, 0)
    for scale in (1e160, 1e-160):  # squared distances would overflow or underflow
        with pytest.raises(ValueError, match="rescale x"):
            knn(x * scale, 2)
    far = x + 1e12  # a large offset is fine: only the centred spread counts
    np.testing.assert_array_equal(knn(far, 2).indices, brute_force(far, 2)[1])
