"""The CUDA code paths (torch), run on the CPU and checked against the numba/numpy ones.

``torch_backend_on_cpu()`` sends CPU work down the torch branches written for CUDA — the same
calls tests/gpu makes on a GPU — so they stay covered on machines without one (CI). What only a
GPU can show (device placement, TF32, kernels that exist only in CUDA) stays in tests/gpu.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer.analysis.alignment as al
from explorer.analysis import attention as A
from explorer.analysis import spectra as S
from explorer.analysis.geometry import knn, mle_id, twonn
from explorer.device import backend_for, torch_backend_on_cpu


def both(fn):  # type: ignore[no-untyped-def]
    """(numba/numpy result, torch-path result) of the same call."""
    cpu = fn()
    with torch_backend_on_cpu():
        assert backend_for("cpu") == "torch"
        via_torch = fn()
    assert backend_for("cpu") == "numba"
    return cpu, via_torch


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40)) + 2.0
    y = np.tanh(x @ rng.standard_normal((40, 70))) + 0.1 * rng.standard_normal((300, 70))
    return x, y


def test_cka_torch_path(data) -> None:
    x, y = data
    for debiased in (False, True):
        for route in ("feature", "gram"):
            cpu, gpu = both(lambda d=debiased, r=route: al.linear_cka(x, y, debiased=d, route=r))
            assert gpu == pytest.approx(cpu, abs=1e-12)
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        cpu, gpu = both(lambda a=x32, b=y32, d=debiased: al.linear_cka(a, b, debiased=d))
        assert gpu == pytest.approx(cpu, abs=1e-5)
    reps = [x, y, x[:, :10] * y[:, :10]]
    cpu, gpu = both(lambda: al.cka_matrix(reps))
    np.testing.assert_allclose(gpu, cpu, atol=1e-12)
    cpu, gpu = both(lambda: al.cka_matrix(reps, route="gram", debiased=True))
    np.testing.assert_allclose(gpu, cpu, atol=1e-12)
    cpu, gpu = both(lambda: al.rbf_cka(x, y))
    assert gpu == pytest.approx(cpu, abs=1e-12)

    def streamed() -> float:
        s = al.StreamingCKA()
        for i in range(0, 300, 64):
            s.update(x[i : i + 64], y[i : i + 64])
        return s.cka(debiased=True)

    cpu, gpu = both(streamed)
    assert gpu == pytest.approx(cpu, abs=1e-10)
    assert cpu == pytest.approx(al.linear_cka(x, y, debiased=True), abs=1e-10)


def test_neighbourhood_torch_paths(data) -> None:
    x, y = data
    for fn in (al.mutual_knn, al.cknna):
        cpu, gpu = both(lambda fn=fn: fn(x, y, k=10))
        assert gpu == pytest.approx(cpu, abs=1e-10)
    pts = (x @ np.random.default_rng(1).standard_normal((40, 64))).astype(np.float32)
    cpu, gpu = both(lambda: knn(pts, 10))
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_allclose(gpu.distances, cpu.distances, rtol=1e-12)
    cpu, gpu = both(lambda: (twonn(pts), mle_id(pts, 20)))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-12)


def test_attention_torch_paths() -> None:
    rng = np.random.default_rng(2)
    a = rng.random((3, 4, 24, 24)) ** 4 + 1e-6
    a /= a.sum(-1, keepdims=True)
    toks = list("abcdefgh") * 3
    cpu, gpu = both(lambda: A.head_statistics(a, toks, metrics=A.METRICS))
    np.testing.assert_allclose(gpu["value"].to_numpy(), cpu["value"].to_numpy(), rtol=1e-9)
    cpu, gpu = both(lambda: (A.attention_rollout(a), A.attention_flow(a, queries=[0, 5])))
    for got, want in zip(gpu, cpu):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_spectra_torch_paths() -> None:
    rng = np.random.default_rng(3)
    x, img = rng.standard_normal((3, 100)), rng.standard_normal((2, 4, 32, 40))
    cpu, gpu = both(
        lambda: (
            S.power_spectrum(x).power,
            S.radial_power_spectrum(img).power,
            S.feature_map_spectra(img).power,
            S.residual_spectrum(img, img[0, 0] + 1, ndim=2).power,
        )
    )
    for got, want in zip(gpu, cpu):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-14)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Linear(128, 64))
    cpu, gpu = both(lambda: S.weight_spectra(model)["value"].to_numpy())
    np.testing.assert_allclose(gpu, cpu, rtol=1e-7)
