"""CUDA parity for the geometry lens (skipped without a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.geometry import PCA, effective_rank, knn, mle_id, twonn


@pytest.fixture
def points() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(3000, 8)) @ rng.normal(size=(8, 64))).astype(np.float32)


def test_knn_cuda_equals_cpu(points: np.ndarray) -> None:
    cpu = knn(points, 10, device="cpu")
    gpu = knn(torch.as_tensor(points, device="cuda"), 10)
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_allclose(gpu.distances, cpu.distances, rtol=1e-12)


def test_estimators_cuda_equal_cpu(points: np.ndarray) -> None:
    t = torch.as_tensor(points, device="cuda")
    assert twonn(t) == pytest.approx(twonn(points, device="cpu"), rel=1e-12)
    assert mle_id(t, 20) == pytest.approx(mle_id(points, 20, device="cpu"), rel=1e-12)
    assert effective_rank(t) == pytest.approx(effective_rank(points, device="cpu"), rel=1e-9)


def test_pca_cuda_equals_cpu(points: np.ndarray) -> None:
    gpu = PCA(4, method="randomized").fit(torch.as_tensor(points, device="cuda"))
    cpu = PCA(4, method="exact", device="cpu").fit(points)
    np.testing.assert_allclose(gpu.explained_variance_, cpu.explained_variance_, rtol=1e-6)
