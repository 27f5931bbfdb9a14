"""CUDA paths of the alignment metrics equal the CPU (numpy/numba) float64 results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer.analysis.alignment as al

pytestmark = pytest.mark.cuda


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40)) + 2.0
    y = np.tanh(x @ rng.standard_normal((40, 70))) + 0.1 * rng.standard_normal((300, 70))
    return x, y


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("route", ["feature", "gram"])
def test_linear_cka_cuda_matches_cpu(data, route, debiased):
    x, y = data
    cpu = al.linear_cka(x, y, debiased=debiased, route=route, device="cpu")
    gpu = al.linear_cka(
        torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), debiased=debiased, route=route
    )
    assert gpu == pytest.approx(cpu, abs=1e-10)
    gpu32 = al.linear_cka(
        x.astype(np.float32), y.astype(np.float32), debiased=debiased, route=route, device="cuda"
    )
    assert gpu32 == pytest.approx(cpu, abs=1e-4)


def test_cka_matrix_rbf_and_streaming_cuda(data):
    x, y = data
    reps = [x, y, x[:, :10] * y[:, :10]]
    cpu = al.cka_matrix(reps, device="cpu")
    np.testing.assert_allclose(al.cka_matrix(reps, device="cuda"), cpu, atol=1e-10)
    assert al.rbf_cka(x, y, device="cuda") == pytest.approx(
        al.rbf_cka(x, y, device="cpu"), abs=1e-10
    )
    s = al.StreamingCKA(device="cuda")
    for i in range(0, 300, 64):
        s.update(torch.from_numpy(x[i : i + 64]).cuda(), torch.from_numpy(y[i : i + 64]).cuda())
    assert s.cka(debiased=True) == pytest.approx(
        al.linear_cka(x, y, debiased=True, device="cpu"), abs=1e-10
    )


def test_neighbourhood_metrics_cuda(data):
    x, y = data
    for fn in (al.mutual_knn, al.cknna):
        assert fn(x, y, k=10, device="cuda") == pytest.approx(
            fn(x, y, k=10, device="cpu"), abs=1e-10
        )
