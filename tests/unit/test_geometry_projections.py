"""PCA vs scikit-learn, Procrustes alignment, optional UMAP/t-SNE with install hints."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from explorer.analysis.geometry import PCA, align_snapshots, procrustes_align, project
from explorer.errors import MissingDependencyError


def low_rank(n: int = 300, d: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)) @ rng.normal(size=(6, d)) * np.linspace(3, 1, d) + 0.01 * (
        rng.normal(size=(n, d))
    )


@pytest.mark.parametrize("method", ["exact", "randomized"])
@pytest.mark.parametrize("shape", [(300, 40), (30, 80)])
def test_pca_matches_sklearn(method: str, shape: tuple[int, int]) -> None:
    x = low_rank(*shape)
    ours = PCA(4, method=method).fit(x)  # type: ignore[arg-type]
    ref = SkPCA(4, svd_solver="full").fit(x)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(
        ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-8
    )
    # same subspace and sign convention (largest |loading| positive in both)
    np.testing.assert_allclose(np.abs(ours.components_ @ ref.components_.T), np.eye(4), atol=1e-6)
    np.testing.assert_allclose(ours.transform(x), ref.transform(x), atol=1e-6)


def test_pca_on_torch_tensor_and_auto_choice() -> None:
    x = low_rank(520, 505)
    pca = PCA(3).fit(torch.as_tensor(x, dtype=torch.float32))
    assert pca.method_ == "randomized"
    ref = SkPCA(3, svd_solver="full").fit(x)
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-4)


def test_pca_bad_inputs() -> None:
    with pytest.raises(ValueError, match="n_components=5 must be"):
        PCA(5).fit(np.random.default_rng(0).normal(size=(4, 3)))
    with pytest.raises(RuntimeError, match="not fitted"):
        PCA(2).transform(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="fitted on 3"):
        PCA(2).fit(np.random.default_rng(0).normal(size=(10, 3))).transform(np.zeros((2, 4)))


def test_procrustes_undoes_rotation_reflection_and_shift() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(50, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ref @ rot) * [1, -1] + [5.0, -2.0]
    np.testing.assert_allclose(procrustes_align(moved, ref), ref, atol=1e-10)
    scaled = 3.0 * moved
    np.testing.assert_allclose(procrustes_align(scaled, ref, scale=True), ref, atol=1e-10)


def test_align_snapshots_keeps_each_layout_shape() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 2))
    frames = [base @ np.linalg.matrix_power(np.array([[0.0, -1], [1, 0]]), i) for i in range(4)]
    aligned = align_snapshots(frames)
    for frame, out in zip(frames, aligned):
        d_in = np.linalg.norm(frame[:, None] - frame[None], axis=-1)
        d_out = np.linalg.norm(out[:, None] - out[None], axis=-1)
        np.testing.assert_allclose(d_in, d_out, atol=1e-10)
        np.testing.assert_allclose(out, aligned[0], atol=1e-10)


def test_project_pca_and_tsne() -> None:
    x = low_rank(80, 10)
    np.testing.assert_allclose(project(x, "pca"), PCA(2).fit_transform(x))
    pytest.importorskip("openTSNE")
    y = project(x, "tsne", n_iter=50, perplexity=10)
    assert y.shape == (80, 2) and np.all(np.isfinite(y))
    with pytest.raises(ValueError, match="init must have shape"):
        project(x, "tsne", init=np.zeros((3, 2)))


def test_missing_projection_library_has_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"explorer\[projections\]"):
        project(low_rank(20, 5), "umap")
    with pytest.raises(ValueError, match="method must be"):
        project(low_rank(20, 5), "isomap")  # type: ignore[arg-type]
