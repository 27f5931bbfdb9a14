"""Geometry benchmarks, ours and each peer interleaved in one process:

- exact kNN vs faiss ``IndexFlatL2`` (exact search in float32) and scikit-learn's brute-force
  ``NearestNeighbors``, all three checked against float64 brute force on 300 rows; efficiency
  against this machine's GEMM rate in the dtype knn multiplies in, counting only the work done
  (blocks on and above the diagonal: n²·D flops, not 2·n²·D);
- TwoNN and MLE intrinsic dimension vs scikit-dimension given faiss's neighbours (its fastest
  use: both estimators take precomputed neighbours), the faiss search counted in its time;
- Ollivier–Ricci curvature vs GraphRicciCurvature (exact OT).

Run from bench/: ``python bench_geometry.py`` (``--quick`` for small sizes)."""

from __future__ import annotations

import argparse
import warnings

import networkx as nx
import numpy as np
import torch
from _harness import Bench, blocked_gemm_seconds, interleaved, peak_python_memory

from explorer.analysis.geometry import graph_curvature, knn, knn_graph, mle_id, neighbors, twonn


def manifold(n: int, d: int, big_d: int, seed: int = 0) -> np.ndarray:
    """A d-dimensional curved manifold (random features of a d-D Gaussian) in big_d dims."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    return np.tanh(z @ rng.normal(size=(d, big_d)) / np.sqrt(d)).astype(np.float32)


def mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def faiss_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self excluded) with faiss IndexFlatL2, the usual exact index:
    float32 arithmetic, squared distances (square-rooted here), all cores."""
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    d2, ids = index.search(x, k + 1)
    self_first = ids[:, 0] == np.arange(len(x))  # the point itself (no duplicates here)
    d2 = np.where(self_first[:, None], d2[:, 1:], d2[:, :-1])
    ids = np.where(self_first[:, None], ids[:, 1:], ids[:, :-1])
    return np.sqrt(np.maximum(d2, 0.0)), ids


def float64_knn(x: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force float64 k nearest neighbours of x[rows] among x (self excluded)."""
    x64 = x.astype(np.float64)
    d2 = ((x64[rows, None, :] - x64[None, :, :]) ** 2).sum(-1)
    d2[np.arange(len(rows)), rows] = np.inf
    ids = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(d2, ids, 1)), ids


def bench_knn(b: Bench, x: np.ndarray, k: int) -> None:
    from sklearn.neighbors import NearestNeighbors

    n, dim = x.shape
    knn(x[:500], k)  # compile outside the timing
    sk = NearestNeighbors(n_neighbors=k, algorithm="brute")
    gram = neighbors._GRAM_DTYPE  # the dtype knn's GEMMs multiply in on this CPU
    xg = torch.from_numpy(x).to(gram) if gram == torch.bfloat16 else x
    t_ours, t_faiss, t_sk, t_gemm = interleaved(
        [
            lambda: knn(x, k),
            lambda: faiss_knn(x, k),
            lambda: sk.fit(x).kneighbors(),
            lambda: blocked_gemm_seconds(xg, xg, block=1024),
        ],
        [5, 3, 3, 5],
    )
    ours, (f_d, f_i), (s_d, s_i) = knn(x, k), faiss_knn(x, k), sk.fit(x).kneighbors()
    probe = np.random.default_rng(1).choice(n, 300, replace=False)
    e_d, e_i = float64_knn(x, probe, k)
    errs = {
        who: float(np.abs(dist[probe] - e_d).max())
        for who, dist in (("ours", ours.distances), ("faiss", f_d), ("sklearn", s_d))
    }
    exact_ids = {
        who: float((ids[probe] == e_i).mean())
        for who, ids in (("ours", ours.indices), ("faiss", f_i), ("sklearn", s_i))
    }
    rate = 2.0 * n * n * dim / min(t_gemm)  # x xᵀ in 1024² blocks, one GEMM per core: best run
    work = float(n) * n * dim  # blocks on and above the diagonal only: half of 2·n²·D flops
    size = f"n={n}, D={dim}, k={k}, float32"
    for peer, runs, who in (
        ("faiss IndexFlatL2 (exact, float32)", t_faiss, "faiss"),
        ("sklearn NearestNeighbors (brute)", t_sk, "sklearn"),
    ):
        row = b.record("exact kNN", t_ours, runs, peer)
        b.summary(
            row,
            size=size,
            agreement=f"vs float64 (300 rows): same ids ours {exact_ids['ours']:.4f}, "
            f"{who} {exact_ids[who]:.4f}; max |Δd| ours {errs['ours']:.0e}, {who} {errs[who]:.0e}",
            limit=work / row["ours_s"] / rate,
            limit_of=f"{str(gram).removeprefix('torch.')} GEMM ({rate / 1e9:.0f} GFLOP/s)",
        )
    b.note("exact kNN", "peak memory ours", mib(peak_python_memory(lambda: knn(x, k))))


def bench_dimension(b: Bench, x: np.ndarray) -> None:
    """TwoNN and MLE vs scikit-dimension at its best: neighbours precomputed by faiss (its
    estimators accept them), the faiss search included in the peer's time."""
    import skdim

    def skdim_twonn() -> float:
        d, _ = faiss_knn(x, 2)
        return float(skdim.id.TwoNN(dist=True).fit(d).dimension_)

    def skdim_mle() -> float:
        d, i = faiss_knn(x, 20)
        return float(skdim.id.MLE().fit(x, precomputed_knn_arrays=(d, i)).dimension_)

    size = f"n={len(x)}, D={x.shape[1]}, float32"
    twonn(x[:500]), mle_id(x[:500], 20)
    for case, ours, peer in (
        ("TwoNN intrinsic dimension", lambda: twonn(x), skdim_twonn),
        ("MLE intrinsic dimension, k=20", lambda: mle_id(x, 20), skdim_mle),
    ):
        row = b.time(
            case, ours, peer, peer_name="scikit-dimension on faiss neighbours", repeat=5,
            peer_repeat=3,
        )  # fmt: skip
        a, p = ours(), peer()
        b.summary(
            row,
            size=size,
            agreement=f"estimates {a:.4f} vs {p:.4f} (rel. {abs(a - p) / abs(p):.0e})",
        )


def bench_curvature(b: Bench, quick: bool) -> None:
    from GraphRicciCurvature.OllivierRicci import OllivierRicci

    m = 500 if quick else 2000
    pts = manifold(m, 3, 8, seed=1).astype(np.float64)
    edges, w = knn_graph(knn(pts, 10))
    graph_curvature(edges[:50], w[:50])  # compile
    g = nx.Graph()
    g.add_weighted_edges_from((int(i), int(j), float(c)) for (i, j), c in zip(edges, w))

    def peer() -> OllivierRicci:
        orc = OllivierRicci(g.copy(), alpha=0.5, method="OTD", verbose="ERROR")
        orc.compute_ricci_curvature()
        return orc

    row = b.time(
        "Ollivier-Ricci curvature (α=0.5, exact OT)",
        ours=lambda: graph_curvature(edges, w, m),
        peer=peer,
        peer_name="GraphRicciCurvature (OTD)",
        repeat=5,
        peer_repeat=3,
    )
    ours_c = graph_curvature(edges, w, m).curvature
    ref = peer().G
    ref_c = np.array([ref[int(i)][int(j)]["ricciCurvature"] for i, j in edges])
    b.summary(
        row,
        size=f"kNN graph, {m} nodes, {len(edges)} edges",
        agreement=f"max |Δκ| {np.abs(ours_c - ref_c).max():.0e}",
    )


def main(quick: bool) -> None:
    warnings.filterwarnings("ignore")
    b = Bench("geometry")
    n, big_d = (4000, 128) if quick else (20_000, 128)
    x = manifold(n, 10, big_d)
    bench_knn(b, x, 10)
    bench_dimension(b, x)
    bench_curvature(b, quick)
    b.report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
