# ruff: noqa: B023  (bench closures are called inside their loop iteration)
"""Alignment benchmarks, ours and the strongest peer interleaved in one process:

1. linear CKA of one pair (biased, debiased) vs the numpy feature-space reference of Kornblith
   et al. (the formula their CKA demo notebook ships and most users copy), float32 input as a
   user passes it; both are compared with the same formula in float64;
2. all-pairs CKA (13 layers) vs the one-pass numpy Gram-space computation (all centred Grams in
   memory, one GEMM for every ⟨K_a, K_b⟩), and as a fraction of this machine's float32 GEMM
   rate measured in the same run (work counted: the upper-triangle Gram products actually
   needed, n²·Σd flops);
3. streaming exact CKA vs in-memory CKA of the same rows (time, peak memory, agreement);
4. mutual kNN alignment vs faiss exact inner-product search on L2-normalised rows.

Run from bench/: ``python bench_alignment.py`` (``--quick`` for small sizes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from _harness import Bench, blocked_gemm_seconds, interleaved, peak_python_memory

from explorer.analysis.alignment import StreamingCKA, cka_matrix, linear_cka, mutual_knn


def reference_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Kornblith et al.'s numpy feature-space linear CKA (the CKA demo notebook), verbatim in
    substance: centre, three products XᵀY, XᵀX, YᵀY, Frobenius norms; debiased via row norms."""

    def helper(xty: float, ssx: np.ndarray, ssy: np.ndarray, nx: float, ny: float, n: int):
        return xty - n / (n - 2.0) * ssx.dot(ssy) + nx * ny / ((n - 1) * (n - 2))

    x = x - np.mean(x, 0, keepdims=True)
    y = y - np.mean(y, 0, keepdims=True)
    sim = np.linalg.norm(x.T.dot(y)) ** 2
    norm_x = np.linalg.norm(x.T.dot(x))
    norm_y = np.linalg.norm(y.T.dot(y))
    if debiased:
        n = x.shape[0]
        ssx, ssy = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        nx, ny = np.sum(ssx), np.sum(ssy)
        sim = helper(sim, ssx, ssy, nx, ny, n)
        norm_x = np.sqrt(helper(norm_x**2, ssx, ssx, nx, nx, n))
        norm_y = np.sqrt(helper(norm_y**2, ssy, ssy, ny, ny, n))
    return float(sim / (norm_x * norm_y))


def reference_cka_matrix(layers: list[np.ndarray]) -> np.ndarray:
    """All-pairs biased linear CKA the way a careful numpy user writes it in one pass: every
    centred Gram K_a = Z̄_a Z̄_aᵀ in memory, then one GEMM for all ⟨K_a, K_b⟩_F."""
    n = layers[0].shape[0]
    flat = np.empty((len(layers), n * n), dtype=layers[0].dtype)
    for a, x in enumerate(layers):
        z = x - x.mean(0)
        np.matmul(z, z.T, out=flat[a].reshape(n, n))
    hsic = flat @ flat.T
    d = np.sqrt(np.diag(hsic))
    return hsic / np.outer(d, d)


def gemm_seconds(a: np.ndarray, b: np.ndarray) -> float:
    """Seconds of one float32 GEMM a @ bᵀ with numpy's BLAS on all its threads."""
    t0 = time.perf_counter()
    a @ b.T
    return time.perf_counter() - t0


def skylake_kernel_rate(n: int, d: int) -> float | None:
    """float32 GEMM GFLOP/s of numpy's OpenBLAS forced to its AVX-512 (SkylakeX) kernels, in a
    subprocess: OpenBLAS picks its kernels once per process, and on some CPUs (e.g. AMD Zen 5)
    it falls back to the AVX2 (Haswell) ones. None if it cannot be measured."""
    code = (
        "import time, numpy as np\n"
        f"a = np.random.default_rng(0).standard_normal(({n}, {d})).astype(np.float32)\n"
        "a @ a.T\nts = []\n"
        "for _ in range(5):\n"
        "    t0 = time.perf_counter(); a @ a.T; ts.append(time.perf_counter() - t0)\n"
        f"print(2.0 * {n} * {n} * {d} / sorted(ts)[2] / 1e9)\n"
    )
    env = {**os.environ, "OPENBLAS_CORETYPE": "SkylakeX"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return float(out.stdout) if out.returncode == 0 else None


def layer_stack(rng: np.random.Generator, n: int, d: int, m: int) -> list[np.ndarray]:
    """m representations of a residual tanh network (n samples, d features), float32."""
    layers = [rng.standard_normal((n, d)).astype(np.float32)]
    for _ in range(m - 1):
        w = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
        layers.append(np.tanh(layers[-1] @ w + layers[-1]))
    assert all(x.dtype == np.float32 for x in layers)
    return layers


def bench_pair(b: Bench, rng: np.random.Generator, quick: bool) -> None:
    n, d1, d2 = (2000, 128, 256) if quick else (8000, 512, 1024)
    x = rng.standard_normal((n, d1)).astype(np.float32) + 3.0
    y = np.tanh(x @ rng.standard_normal((d1, d2)).astype(np.float32) * 0.05) + 0.5 * (
        rng.standard_normal((n, d2)).astype(np.float32)
    )
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for debiased in (False, True):
        kind = "debiased" if debiased else "biased"
        row = b.time(
            f"linear CKA ({kind}), one pair",
            lambda: linear_cka(x, y, debiased=debiased),
            lambda: reference_cka(x, y, debiased),
            peer_name="numpy reference (Kornblith)",
            repeat=11,
        )
        exact = reference_cka(x64, y64, debiased)
        err_ours = abs(linear_cka(x, y, debiased=debiased) - exact)
        err_peer = abs(reference_cka(x, y, debiased) - exact)
        b.summary(
            row,
            size=f"n={n}, {d1} vs {d2}, float32",
            agreement=f"|err| vs float64: ours {err_ours:.0e}, peer {err_peer:.0e}",
            goal_ratio=1.3,
        )


def bench_all_pairs(b: Bench, rng: np.random.Generator, quick: bool) -> None:
    n, d, m = (1024, 256, 13) if quick else (4096, 768, 13)
    layers = layer_stack(rng, n, d, m)
    a, c = layers[0], layers[1].copy()  # two buffers: a @ aᵀ would be a SYRK
    t_ours, t_peer, t_gemm, t_tiled = interleaved(
        [
            lambda: cka_matrix(layers),
            lambda: reference_cka_matrix(layers),
            lambda: gemm_seconds(a, c),
            lambda: blocked_gemm_seconds(a, c),
        ],
        [5, 3, 5, 5],
    )
    # this machine's float32 GEMM rate at the Gram shape: the best run of numpy's own threaded
    # GEMM or of one single-threaded oneDNN GEMM per core (our tiles' GEMM)
    rate = 2.0 * n * n * d / min(min(t_gemm), min(t_tiled))
    work = float(n) * n * d * m  # the upper-triangle halves of the m Gram products
    t = float(np.median(t_ours))
    got = cka_matrix(layers)
    exact = cka_matrix([x.astype(np.float64) for x in layers])  # float64 GEMMs throughout
    peer_err = np.abs(reference_cka_matrix(layers) - exact).max()
    row = b.record(f"all-pairs CKA {m}x{m}", t_ours, t_peer, "numpy one-pass Gram")
    for name, ts in (("numpy GEMM", t_gemm), ("oneDNN tiles, one GEMM per core", t_tiled)):
        b.note(
            row["case"], f"{name} GFLOP/s (a @ bᵀ, best run)", round(2e-9 * n * n * d / min(ts), 1)
        )
    b.summary(
        row,
        size=f"n={n}, d={d}, float32",
        agreement=f"max |err| vs float64: ours {np.abs(got - exact).max():.0e}, peer {peer_err:.0e}",
        limit=work / t / rate,
        limit_of=f"float32 GEMM ({rate / 1e9:.0f} GFLOP/s)",
        goal_limit=0.70,
    )
    avx512 = skylake_kernel_rate(n, d)
    if avx512 is not None:
        b.note(row["case"], "GEMM GFLOP/s with OPENBLAS_CORETYPE=SkylakeX", round(avx512, 1))


def bench_streaming(b: Bench, rng: np.random.Generator, quick: bool) -> None:
    rows, width, batch = (50_000, 256, 8192) if quick else (100_000, 768, 8192)
    w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    x = rng.standard_normal((rows, width), dtype=np.float32)
    y = x @ w + rng.standard_normal((rows, width), dtype=np.float32)
    got: dict[str, float] = {}

    def stream() -> None:
        s = StreamingCKA()
        for start in range(0, rows, batch):
            s.update(x[start : start + batch], y[start : start + batch])
        got["stream"] = s.cka(debiased=True)

    def in_memory() -> None:
        got["memory"] = linear_cka(x, y, debiased=True)

    row = b.time(
        "streaming exact CKA (debiased)",
        stream,
        in_memory,
        peer_name="in-memory linear_cka (ours)",
        repeat=3,
    )
    peak = [peak_python_memory(f) / 2**20 for f in (stream, in_memory)]
    b.summary(
        row,
        size=f"{rows} rows x {width}, batches of {batch}",
        agreement=f"|Δ| {abs(got['stream'] - got['memory']):.0e}; peak Python MiB "
        f"{peak[0]:.0f} vs {peak[1]:.0f}",
    )


def faiss_mutual_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mutual kNN with faiss exact inner-product search on L2-normalised rows (self excluded)."""
    import faiss

    def neighbours(z: np.ndarray) -> np.ndarray:
        u = np.ascontiguousarray(z / np.linalg.norm(z, axis=1, keepdims=True), dtype=np.float32)
        index = faiss.IndexFlatIP(u.shape[1])
        index.add(u)
        _, ids = index.search(u, k + 1)
        out = np.empty((len(u), k), dtype=np.int64)
        for i, row in enumerate(ids):  # drop the point itself wherever it ranks
            out[i] = [j for j in row if j != i][:k]
        return out

    a, c = neighbours(x), neighbours(y)
    return float(np.mean([len(set(a[i]) & set(c[i])) / k for i in range(len(x))]))


def bench_mutual_knn(b: Bench, rng: np.random.Generator, quick: bool) -> None:
    n, d, k = (2000, 384, 10) if quick else (5000, 384, 10)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.concatenate([x, rng.standard_normal((n, d)).astype(np.float32)], axis=1)
    row = b.time(
        "mutual kNN alignment (cosine)",
        lambda: mutual_knn(x, y, k=k),
        lambda: faiss_mutual_knn(x, y, k),
        peer_name="faiss IndexFlatIP (exact)",
        repeat=5,
    )
    diff = abs(mutual_knn(x, y, k=k) - faiss_mutual_knn(x, y, k))
    b.summary(row, size=f"n={n}, {d} vs {2 * d}, k={k}", agreement=f"|Δ score| {diff:.0e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    b = Bench("alignment")
    rng = np.random.default_rng(0)
    bench_pair(b, rng, args.quick)
    bench_all_pairs(b, rng, args.quick)
    bench_streaming(b, rng, args.quick)
    bench_mutual_knn(b, rng, args.quick)
    b.report()


if __name__ == "__main__":
    main()
