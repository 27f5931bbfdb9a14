"""Geometry benchmarks, ours and the peer in the same run: TwoNN and MLE vs scikit-dimension,
exact kNN vs scikit-learn's NearestNeighbors (and this machine's float32 and bfloat16 GEMM
rates), Ollivier–Ricci vs GraphRicciCurvature; estimates compared, peak memory reported.
Run from bench/: ``python bench_geometry.py`` (``--quick`` for small sizes)."""

from __future__ import annotations

import argparse
import time
import warnings

import networkx as nx
import numpy as np
import torch
from _harness import Bench, peak_python_memory

from explorer.analysis.geometry import graph_curvature, knn, knn_graph, mle_id, neighbors, twonn


def manifold(n: int, d: int, big_d: int, seed: int = 0) -> np.ndarray:
    """A d-dimensional curved manifold (random features of a d-D Gaussian) in big_d dims."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    return np.tanh(z @ rng.normal(size=(d, big_d)) / np.sqrt(d)).astype(np.float32)


def blocked_gemm_seconds(x: np.ndarray, dtype: torch.dtype, block: int = 1024) -> float:
    """Median time of the full x @ x.T in ``dtype`` computed in cache-sized blocks (this
    machine's GEMM rate for the shape; one unblocked 20k × 20k product is bound by memory
    writes)."""
    data = torch.from_numpy(x).to(dtype)
    out = torch.empty(block, block, dtype=dtype)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for r in range(0, len(x), block):
            for c in range(0, len(x), block):
                a, bb = data[r : r + block], data[c : c + block]
                torch.mm(a, bb.T, out=out[: len(a), : len(bb)])
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def main(quick: bool) -> None:
    import skdim
    from GraphRicciCurvature.OllivierRicci import OllivierRicci
    from sklearn.neighbors import NearestNeighbors

    warnings.filterwarnings("ignore")
    b = Bench("geometry")
    n, big_d = (4000, 128) if quick else (20_000, 128)
    x = manifold(n, 10, big_d)

    # ---- exact kNN vs sklearn brute force (its default for D = 128)
    k = 10
    knn(x[:500], k)  # compile outside the timing
    sk = NearestNeighbors(n_neighbors=k, algorithm="brute")
    row = b.time(
        f"exact kNN n={n} D={big_d} k={k}",
        ours=lambda: knn(x, k),
        peer=lambda: sk.fit(x).kneighbors(return_distance=True),
        peer_name="sklearn NearestNeighbors",
        repeat=5,
        warmup=1,
        peer_repeat=3,  # a median of the peer too: single runs of it varied by 1.5×
    )
    ours, (sk_d, sk_i) = knn(x, k), sk.fit(x).kneighbors(return_distance=True)
    b.note(row["case"], "index agreement with sklearn", float((ours.indices == sk_i).mean()))
    b.note(row["case"], "max |distance diff|", float(np.abs(ours.distances - sk_d).max()))
    flops = 2.0 * n * n * big_d
    b.note(row["case"], "our Gram blocks", str(neighbors._GRAM_DTYPE))
    for dtype in (torch.float32, torch.bfloat16):
        gemm = blocked_gemm_seconds(x, dtype)
        b.note(row["case"], f"{dtype} GEMM x@x.T in 1024² blocks (s)", round(gemm, 3))
        b.note(row["case"], f"machine {dtype} GEMM GFLOP/s", round(flops / gemm / 1e9, 1))
    for who, seconds in (("ours", row["ours_s"]), ("sklearn", row["peer_s"])):
        b.note(
            row["case"],
            f"{who}: full x@x.T flops / time (GFLOP/s)",
            round(flops / seconds / 1e9, 1),
        )
    b.note(row["case"], "peak memory ours", mib(peak_python_memory(lambda: knn(x, k))))
    b.note(
        row["case"],
        "peak memory sklearn",
        mib(peak_python_memory(lambda: sk.fit(x).kneighbors())),
    )

    # ---- TwoNN and MLE vs scikit-dimension
    twonn(x[:500])
    row = b.time(
        f"TwoNN n={n} D={big_d}",
        ours=lambda: twonn(x),
        peer=lambda: skdim.id.TwoNN().fit(x).dimension_,
        peer_name="scikit-dimension",
        repeat=5,
        warmup=1,
        peer_repeat=3,  # a median of the peer too: single runs of it varied by 1.5×
    )
    a, p = twonn(x), skdim.id.TwoNN().fit(x).dimension_
    b.note(row["case"], "estimates (ours, skdim)", (round(a, 4), round(float(p), 4)))
    b.note(row["case"], "relative difference", abs(a - p) / abs(p))
    b.note(row["case"], "peak memory ours", mib(peak_python_memory(lambda: twonn(x))))
    b.note(
        row["case"],
        "peak memory skdim",
        mib(peak_python_memory(lambda: skdim.id.TwoNN().fit(x))),
    )
    mle_id(x[:500], 20)
    row = b.time(
        f"MLE k=20 n={n} D={big_d}",
        ours=lambda: mle_id(x, 20),
        peer=lambda: skdim.id.MLE().fit(x, n_neighbors=20).dimension_,
        peer_name="scikit-dimension",
        repeat=5,
        warmup=1,
        peer_repeat=3,  # a median of the peer too: single runs of it varied by 1.5×
    )
    a, p = mle_id(x, 20), skdim.id.MLE().fit(x, n_neighbors=20).dimension_
    b.note(row["case"], "estimates (ours, skdim)", (round(a, 4), round(float(p), 4)))
    b.note(row["case"], "relative difference", abs(a - p) / abs(p))
    b.note(row["case"], "peak memory ours", mib(peak_python_memory(lambda: mle_id(x, 20))))

    # ---- Ollivier–Ricci on a 2k-node kNN graph vs GraphRicciCurvature (exact OT, "OTD")
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
        f"Ollivier-Ricci kNN graph {m} nodes, {len(edges)} edges",
        ours=lambda: graph_curvature(edges, w, m),
        peer=peer,
        peer_name="GraphRicciCurvature",
        repeat=5,
        warmup=1,
        peer_repeat=3,  # a median of the peer too: single runs of it varied by 1.5×
    )
    ours_c = graph_curvature(edges, w, m).curvature
    ref = peer().G
    ref_c = np.array([ref[int(i)][int(j)]["ricciCurvature"] for i, j in edges])
    b.note(row["case"], "max |κ diff|", float(np.abs(ours_c - ref_c).max()))
    b.note(
        row["case"],
        "peak memory ours",
        mib(peak_python_memory(lambda: graph_curvature(edges, w, m))),
    )
    b.report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
