# ruff: noqa: B023, E731  (bench closures are called inside their loop iteration)
"""Alignment benchmarks: ours vs torch-cka and the naive n×n formula, all-pairs GEMM-rate ratio,
streaming memory, mutual kNN vs a full argsort. Run from bench/: ``python bench_alignment.py``
(``--quick`` for small sizes, ``--device cuda`` for the GPU path)."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _harness import Bench, peak_python_memory

from explorer.analysis.alignment import StreamingCKA, cka_matrix, linear_cka, mutual_knn


def naive_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook n × n formula: tr(KHLH) / √(tr(KHKH) tr(LHLH)) with explicit H (O(n³))."""
    n = len(x)
    h = np.eye(n, dtype=x.dtype) - 1.0 / n
    kh, lh = (x @ x.T) @ h, (y @ y.T) @ h
    return float(np.trace(kh @ lh) / np.sqrt(np.trace(kh @ kh) * np.trace(lh @ lh)))


def torch_cka_peer(x: np.ndarray, y: np.ndarray) -> float:
    """torch-cka's CKA.compare on one full batch (its own hooks, unbiased HSIC, trace(K @ L))."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch_cka import CKA

    class Feed(torch.nn.Module):
        def __init__(self, feats: torch.Tensor) -> None:
            super().__init__()
            self.feats, self.out = feats, torch.nn.Identity()

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.out(self.feats[idx])

    idx = torch.arange(len(x))
    loader = DataLoader(TensorDataset(idx), batch_size=len(x))
    cka = CKA(
        Feed(torch.from_numpy(x)),
        Feed(torch.from_numpy(y)),
        model1_layers=["out"],
        model2_layers=["out"],
        device="cpu",
    )
    cka.compare(loader, loader)
    return float(cka.hsic_matrix[0, 0])


def full_argsort_mutual_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The usual implementation: n × n cosine similarities, full argsort per row."""

    def knn(z: np.ndarray) -> np.ndarray:
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        sim = u @ u.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1)[:, :k]

    a, b = knn(x), knn(y)
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(x))]))


def gemm_rate(n: int, d: int, dtype: type = np.float32) -> float:
    """This machine's measured float32 GEMM rate (flop/s) at the all-pairs Gram shape."""
    a = np.random.default_rng(0).standard_normal((n, d)).astype(dtype)
    b = a.copy()
    a @ b.T
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b.T
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n * n * d / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = args.device
    b = Bench("alignment" if dev == "cpu" else f"alignment_{dev}")
    rng = np.random.default_rng(0)
    sizes = [(1000, 128), (2000, 256)] if args.quick else [(5000, 384), (10000, 768)]
    for n, d in sizes:
        x = rng.standard_normal((n, d)).astype(np.float32)
        y = x @ rng.standard_normal((d, d)).astype(np.float32) * 0.1 + rng.standard_normal(
            (n, d)
        ).astype(np.float32)
        ours = lambda: linear_cka(x, y, device=dev)
        ours_deb = lambda: linear_cka(x, y, debiased=True, device=dev)
        ours_deb()  # warm-up (peers are too slow to repeat)
        if dev == "cpu":
            got: dict[str, float] = {}
            peer = lambda: got.__setitem__("torch-cka", torch_cka_peer(x, y))
            b.time(
                f"linear CKA debiased n={n} d={d}",
                ours_deb,
                peer,
                peer_name="torch-cka",
                repeat=3,
                warmup=0,
                peer_repeat=1,
            )
            b.note(
                f"linear CKA debiased n={n} d={d}",
                "abs diff vs torch-cka",
                abs(ours_deb() - got["torch-cka"]),
            )
            naive = lambda: got.__setitem__("naive", naive_cka(x, y))
            b.time(
                f"linear CKA biased n={n} d={d}",
                ours,
                naive,
                peer_name="naive n×n",
                repeat=3,
                warmup=0,
                peer_repeat=1,
            )
            b.note(
                f"linear CKA biased n={n} d={d}",
                "abs diff vs naive float32",
                abs(ours() - got["naive"]),
            )
        else:
            b.time(f"linear CKA debiased n={n} d={d} ({dev})", ours_deb, repeat=5)

    n, d, m = (1024, 256, 13) if args.quick else (4096, 768, 13)
    base = rng.standard_normal((n, d)).astype(np.float32)
    layers = [base]
    for _ in range(m - 1):
        layers.append(
            np.tanh(
                layers[-1] @ (rng.standard_normal((d, d)).astype(np.float32) / np.sqrt(d))
                + layers[-1]
            )
        )
    row = b.time(
        f"all-pairs {m}x{m} CKA n={n} d={d}", lambda: cka_matrix(layers, device=dev), repeat=3
    )
    if dev == "cpu":
        naive_pairs = lambda: [
            linear_cka(layers[i], layers[j], route="gram")
            for i in range(m)
            for j in range(i + 1, m)
        ]
        b.time(
            f"all-pairs {m}x{m}: one pass vs pairwise Gram",
            lambda: cka_matrix(layers, route="gram"),
            naive_pairs,
            peer_name="pairwise",
            repeat=1,
            peer_repeat=1,
        )
        flops = 2.0 * n * n * d * m + n * n * m * (m + 1)  # Gram route: m GEMMs + pair sums
        rate = gemm_rate(n, d)
        b.note(
            f"all-pairs {m}x{m} CKA n={n} d={d}",
            "GEMM-rate ratio",
            round(flops / row["ours_s"] / rate, 3),
        )
        b.note(f"all-pairs {m}x{m} CKA n={n} d={d}", "machine sgemm GFLOP/s", round(rate / 1e9, 1))

    rows, width, batch = (100_000, 256, 8192) if args.quick else (1_000_000, 768, 8192)

    def stream() -> float:
        s = StreamingCKA(device=dev)
        g = np.random.default_rng(1)
        w = g.standard_normal((width, width)).astype(np.float32) / np.sqrt(width)
        for start in range(0, rows, batch):
            xb = g.standard_normal((min(batch, rows - start), width), dtype=np.float32)
            s.update(xb, xb @ w + g.standard_normal(xb.shape, dtype=np.float32))
        return s.cka(debiased=True)

    t0 = time.perf_counter()
    peak = peak_python_memory(stream)
    elapsed = time.perf_counter() - t0
    b.note(
        f"streaming CKA {rows}x{width} (x and y)", "peak python memory MB", round(peak / 2**20, 1)
    )
    b.note(
        f"streaming CKA {rows}x{width} (x and y)",
        "seconds (one run, data generation included)",
        round(elapsed, 1),
    )

    n, k = (2000, 10) if args.quick else (5000, 10)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    y = np.concatenate([x, rng.standard_normal((n, 384)).astype(np.float32)], axis=1)
    if dev == "cpu":
        got = {}
        peer = lambda: got.__setitem__("argsort", full_argsort_mutual_knn(x, y, k))
        b.time(
            f"mutual kNN n={n} d=384 vs 768 k={k}",
            lambda: mutual_knn(x, y, k=k),
            peer,
            peer_name="full argsort",
            repeat=3,
            peer_repeat=1,
        )
        b.note(
            f"mutual kNN n={n} d=384 vs 768 k={k}",
            "abs diff",
            abs(mutual_knn(x, y, k=k) - got["argsort"]),
        )
    b.report()


if __name__ == "__main__":
    main()
