"""GPU table (issue 20): the public calls on CUDA tensors, against a torch peer on the same GPU
and as fractions of the GPU's GEMM rates measured in the same run.

- all-pairs CKA (13 layers of 4096 × 768) as a fraction of torch's float32 GEMM rate (TF32 off,
  PyTorch's default for matmul; the TF32 rate is noted), agreement with the CPU result;
- one linear CKA pair (n = 8000, 512 vs 1024) vs the Kornblith formula in torch on the GPU;
- exact kNN (n = 20000, D = 128, k = 10) vs torch brute force (cdist + topk) on the GPU;
- head statistics of 6 × 12 heads × 512 tokens and weight spectra vs the CPU path.

Without a CUDA device the script notes it and exits 0. ``--device cpu --quick`` runs the same
torch code on the CPU (:func:`explorer.device.torch_backend_on_cpu`) to check the script itself.
Run from bench/: ``python bench_gpu.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch
from _harness import Bench, interleaved

from explorer.analysis import attention as A
from explorer.analysis import spectra as S
from explorer.analysis.alignment import cka_matrix, linear_cka
from explorer.analysis.geometry import knn
from explorer.device import torch_backend_on_cpu


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(n: int, d: int, device: torch.device, tf32: bool) -> float:
    """flop/s of torch's float32 a @ bᵀ at the Gram shape (n × d by d × n) on ``device``."""
    a = torch.randn(n, d, device=device)
    b = torch.randn(n, d, device=device)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a @ b.T
        sync(device)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            a @ b.T
            sync(device)
            times.append(time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2.0 * n * n * d / float(np.median(times))


def torch_reference_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s feature-space formula written in torch (what a GPU user writes)."""
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    num = torch.linalg.norm(x.T @ y) ** 2
    return float(num / (torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)))


def torch_brute_knn(x: torch.Tensor, k: int, block: int = 4096) -> torch.Tensor:
    """k nearest neighbours (self excluded) by cdist + topk in row blocks, float32."""
    out = []
    for start in range(0, len(x), block):
        d = torch.cdist(x[start : start + block], x)
        d[torch.arange(len(d)), torch.arange(start, start + len(d))] = torch.inf
        out.append(torch.topk(d, k, largest=False).indices)
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    b = Bench("gpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        b.note("GPU table", "skipped", "no CUDA device on this machine")
        b.report()
        return
    dev = torch.device(args.device)
    scope = torch_backend_on_cpu() if dev.type == "cpu" else contextlib.nullcontext()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (torch path)"
    b.note("GPU table", "device", name)
    rng = np.random.default_rng(0)
    with scope:
        # all-pairs CKA
        n, d, m = (512, 64, 13) if args.quick else (4096, 768, 13)
        layers = [torch.randn(n, d, device=dev)]
        for _ in range(m - 1):
            w = torch.randn(d, d, device=dev) / d**0.5
            layers.append(torch.tanh(layers[-1] @ w + layers[-1]))
        (t_all,) = interleaved([lambda: cka_matrix(layers)], [5])
        rate32, rate_tf32 = (gemm_rate(n, d, dev, tf32) for tf32 in (False, True))
        cpu = cka_matrix([x.cpu().numpy() for x in layers], device="cpu")
        row = b.record("all-pairs CKA on the GPU", t_all)
        b.note(row["case"], "TF32 GEMM GFLOP/s", round(rate_tf32 / 1e9, 1))
        b.summary(
            row,
            size=f"{m} layers, n={n}, d={d}, float32",
            agreement=f"max |Δ| vs CPU {np.abs(cka_matrix(layers) - cpu).max():.0e}",
            limit=float(n) * n * d * m / float(np.median(t_all)) / rate32,
            limit_of=f"float32 GEMM, TF32 off ({rate32 / 1e9:.0f} GFLOP/s)",
        )
        # one pair
        n, d1, d2 = (1000, 64, 128) if args.quick else (8000, 512, 1024)
        x = torch.from_numpy(rng.standard_normal((n, d1)).astype(np.float32)).to(dev) + 3.0
        y = torch.tanh(x @ torch.randn(d1, d2, device=dev) * 0.05) + 0.5 * torch.randn(
            n, d2, device=dev
        )
        row = b.time(
            "linear CKA, one pair, on the GPU",
            lambda: linear_cka(x, y),
            lambda: torch_reference_cka(x, y),
            peer_name="Kornblith formula in torch (same device)",
            repeat=11,
        )
        exact = torch_reference_cka(x.double(), y.double())
        errs = abs(linear_cka(x, y) - exact), abs(torch_reference_cka(x, y) - exact)
        b.summary(
            row,
            size=f"n={n}, {d1} vs {d2}, float32",
            agreement=f"|err| vs float64: ours {errs[0]:.0e}, peer {errs[1]:.0e}",
        )
        # exact kNN
        n, dim, k = (2000, 32, 10) if args.quick else (20_000, 128, 10)
        pts = torch.from_numpy(rng.standard_normal((n, dim)).astype(np.float32)).to(dev)
        row = b.time(
            "exact kNN on the GPU",
            lambda: knn(pts, k),
            lambda: torch_brute_knn(pts, k).cpu(),
            peer_name="torch cdist + topk (float32)",
            repeat=5,
        )
        ours = knn(pts, k)
        same_cpu = float((ours.indices == knn(pts.cpu().numpy(), k, device="cpu").indices).mean())
        same_peer = float((ours.indices == torch_brute_knn(pts, k).cpu().numpy()).mean())
        b.summary(
            row,
            size=f"n={n}, D={dim}, k={k}",
            agreement=f"same ids as the CPU path {same_cpu:.4f}, as the peer {same_peer:.4f}",
        )
        # attention statistics and weight spectra
        t_att = 64 if args.quick else 512
        p = torch.softmax(torch.randn(6, 12, t_att, t_att, device=dev), -1)
        row = b.time("head statistics on the GPU", lambda: A.head_statistics(p), repeat=5)
        cpu_stats = A.head_statistics(p.cpu().numpy(), device="cpu")["value"].to_numpy()
        diff = np.abs(A.head_statistics(p)["value"].to_numpy() - cpu_stats).max()
        b.summary(row, size=f"6 x 12 heads, {t_att} tokens", agreement=f"max |Δ| vs CPU {diff:.0e}")
        model = torch.nn.Sequential(*(torch.nn.Linear(384, 384) for _ in range(6))).to(dev)
        row = b.time("weight spectra on the GPU", lambda: S.weight_spectra(model), repeat=5)
        cpu_spec = S.weight_spectra(model.cpu(), device="cpu")["value"].to_numpy()
        gpu_spec = S.weight_spectra(model.to(dev))["value"].to_numpy()
        b.summary(
            row,
            size="6 matrices 384 × 384",
            agreement=f"max rel. Δ vs CPU {np.nanmax(np.abs(gpu_spec / cpu_spec - 1)):.0e}",
        )
    b.report()


if __name__ == "__main__":
    main()
