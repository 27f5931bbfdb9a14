"""Spectrum measures: reference values from metrics.md, invariances, oracles."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis import geometry
from explorer.analysis.geometry import (
    coding_rate,
    effective_rank,
    eigen_decay,
    participation_ratio,
    rank_me,
    rate_reduction,
    stable_rank,
    von_neumann_entropy,
)
from explorer.analysis.spectra import singular_values

S321 = np.diag([3.0, 2.0, 1.0])


def test_reference_values_from_metrics_md() -> None:
    assert effective_rank(S321, centre=False) == pytest.approx(2.749, abs=5e-4)
    assert effective_rank(S321, centre=False, variant="sigma2") == pytest.approx(2.294, abs=5e-4)
    assert participation_ratio(S321, centre=False) == pytest.approx(2.0, rel=1e-12)
    assert stable_rank(S321) == pytest.approx(1.5556, abs=1e-4)


def test_singular_values_match_numpy_both_shapes() -> None:
    rng = np.random.default_rng(0)
    for shape in ((50, 8), (8, 50)):
        x = rng.normal(size=shape)
        want = np.linalg.svd(x - x.mean(0), compute_uv=False)
        np.testing.assert_allclose(singular_values(x, centre=True), want, rtol=1e-8)
        np.testing.assert_allclose(
            singular_values(x), np.linalg.svd(x, compute_uv=False), rtol=1e-8
        )


def test_renamed_spellings_still_work_with_a_warning() -> None:
    x = np.random.default_rng(2).normal(size=(30, 5))
    with pytest.warns(DeprecationWarning, match=r"centre="):
        assert effective_rank(x, center=False) == effective_rank(x, centre=False)
    with pytest.warns(DeprecationWarning, match=r"spectra.singular_values\(x, centre=True\)"):
        old = geometry.singular_values(x)
    np.testing.assert_array_equal(old, singular_values(x, centre=True))
    with pytest.raises(TypeError, match="both centre= and"):
        effective_rank(x, center=False, centre=True)


def test_invariances() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 10)) * np.linspace(1, 5, 10)
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    for fn in (effective_rank, participation_ratio):
        assert fn(x @ q + 7.0) == pytest.approx(fn(x), rel=1e-9)
        assert fn(3.0 * x) == pytest.approx(fn(x), rel=1e-9)
    assert effective_rank(np.eye(6), centre=False) == pytest.approx(6, rel=1e-12)
    assert rank_me(np.eye(6)) == pytest.approx(6, rel=1e-5)


def test_vne_definition() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(100, 5))
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(zn.T @ zn / 100)
    assert von_neumann_entropy(z) == pytest.approx(-(lam * np.log(lam)).sum(), rel=1e-10)
    assert von_neumann_entropy(np.ones((10, 4))) == pytest.approx(0.0, abs=1e-12)  # rank 1
    with pytest.raises(ValueError, match="all-zero row"):
        von_neumann_entropy(np.vstack([z, np.zeros(5)]))


def test_eigen_decay_recovers_power_law() -> None:
    rng = np.random.default_rng(3)
    alpha = 1.5
    k = np.arange(1, 41)
    x = rng.normal(size=(4000, 40)) * np.sqrt(k ** (-alpha))
    assert eigen_decay(x, k_max=20) == pytest.approx(alpha, rel=0.1)
    with pytest.raises(ValueError, match="needs ≥ 3"):
        eigen_decay(np.diag([3.0, 2.0]))


def test_coding_rate_and_rate_reduction_oracle() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(60, 5))
    y = np.repeat([0, 1, 2], 20)

    def rate(a: np.ndarray, eps: float = 0.5) -> float:
        n, d = a.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + d / (n * eps**2) * a.T @ a)[1]

    assert coding_rate(z) == pytest.approx(rate(z), rel=1e-10)
    expected = rate(z) - sum(20 / 60 * rate(z[y == c]) for c in range(3))
    assert rate_reduction(z, y) == pytest.approx(expected, rel=1e-10)
    # orthogonal class subspaces reduce more than mixed ones
    blocks = np.zeros((60, 6))
    for c in range(3):
        blocks[y == c, 2 * c : 2 * c + 2] = rng.normal(size=(20, 2))
    assert rate_reduction(blocks, y) > rate_reduction(rng.normal(size=(60, 6)), y)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="all zero"):
        effective_rank(np.ones((5, 3)))  # constant → centred to zero
    with pytest.raises(ValueError, match="variant"):
        effective_rank(S321, variant="lambda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels has 3 entries"):
        rate_reduction(np.eye(4), [0, 1, 0])
    with pytest.raises(ValueError, match="non-finite"):
        stable_rank(np.array([[1.0, np.nan]]))
