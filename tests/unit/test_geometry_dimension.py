"""Intrinsic dimension: d on d-balls and tori in D dimensions, duplicates, scikit-dimension."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.geometry import knn, local_id, local_pca_id, mle_id, twonn
from explorer.errors import ExplorerWarning


def ball(n: int, d: int, big_d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    z *= rng.random((n, 1)) ** (1 / d) / np.linalg.norm(z, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(rng.normal(size=(big_d, d)))
    return z @ basis.T


def torus(n: int, big_d: int, seed: int = 0) -> np.ndarray:
    """Flat 2-torus (S¹ × S¹ ⊂ ℝ⁴) rotated into ℝ^D."""
    rng = np.random.default_rng(seed)
    a, b = rng.random((2, n)) * 2 * np.pi
    t = np.stack([np.cos(a), np.sin(a), np.cos(b), np.sin(b)], axis=1)
    basis, _ = np.linalg.qr(rng.normal(size=(big_d, 4)))
    return t @ basis.T


@pytest.mark.kernels
@pytest.mark.parametrize("d", [2, 5])
def test_estimators_recover_ball_dimension(d: int) -> None:
    x = ball(1500, d, 24)
    assert twonn(x) == pytest.approx(d, rel=0.12)
    assert twonn(x, estimator="mle") == pytest.approx(d, rel=0.12)
    assert mle_id(x, 15) == pytest.approx(d, rel=0.15)
    assert local_pca_id(x, 15) == pytest.approx(d, abs=0.3)


@pytest.mark.kernels
def test_torus_is_two_dimensional() -> None:
    x = torus(1500, 30)
    assert twonn(x) == pytest.approx(2, rel=0.1)
    assert mle_id(x, 10) == pytest.approx(2, rel=0.15)
    assert np.median(local_id(x, 10, method="pca")) == 2


def test_twonn_formula_matches_definition() -> None:
    x = ball(300, 3, 8, seed=5)
    dist = knn(x, 2).distances
    mu = np.sort(dist[:, 1] / dist[:, 0])
    keep = int(len(mu) * 0.9)
    lx, ly = np.log(mu[:keep]), -np.log(1 - np.arange(1, keep + 1) / len(mu))
    assert twonn(x) == pytest.approx(lx @ ly / (lx @ lx), rel=1e-12)


def test_local_mle_definition() -> None:
    x = ball(200, 3, 6, seed=2)
    t = knn(x, 6).distances
    expected = 5 / np.log(t[:, -1:] / t).sum(axis=1)
    np.testing.assert_allclose(local_id(x, 6), expected, rtol=1e-12)


@pytest.mark.kernels
def test_local_pca_rules_on_a_plane() -> None:
    x = ball(400, 2, 10, seed=3)
    for rule in ("fraction", "ratio", "broken_stick"):
        est = local_id(x, 12, method="pca", rule=rule)
        assert np.median(est) == 2, rule


def test_duplicates_are_dropped_with_a_warning_and_stay_finite() -> None:
    x = ball(500, 3, 6, seed=4)
    doubled = np.vstack([x, x[:100]])
    with pytest.warns(ExplorerWarning, match="100 duplicate row"):
        est = twonn(doubled)
    assert np.isfinite(est) and est == pytest.approx(twonn(x), rel=1e-12)
    with pytest.warns(ExplorerWarning):
        assert np.isfinite(mle_id(doubled, 10))


def test_signed_zero_rows_are_duplicates_and_near_duplicates_are_not() -> None:
    x = ball(50, 2, 3, seed=5)
    extra = [[0.0, 0.0, 0.0], [-0.0, 0.0, 0.0], x[0] + [0.0, 0.0, 1e-12]]
    with pytest.warns(ExplorerWarning, match="1 duplicate row"):
        twonn(np.vstack([x, extra]))  # the −0.0 row equals the 0.0 row; the 1e-12 shift is kept


def test_agrees_with_scikit_dimension() -> None:
    skdim = pytest.importorskip("skdim")
    x = ball(800, 4, 12, seed=6)
    assert twonn(x) == pytest.approx(skdim.id.TwoNN().fit(x).dimension_, rel=1e-9)
    ref = skdim.id.MLE().fit(x, n_neighbors=20).dimension_
    assert mle_id(x, 20) == pytest.approx(ref, rel=1e-9)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        twonn(np.zeros((2, 3)) + np.arange(2)[:, None])
    with pytest.raises(ValueError, match="k=30 neighbours need at least 31 unique points"):
        mle_id(ball(20, 2, 3), 30)
    with pytest.raises(ValueError, match="non-finite"):
        twonn(np.array([[0.0, 1.0], [np.inf, 0.0], [1.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="discard_fraction"):
        twonn(ball(50, 2, 3), discard_fraction=1.0)
    with pytest.raises(ValueError, match="rule must be"):
        local_id(ball(50, 2, 3), 5, method="pca", rule="elbow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique point"), pytest.warns(ExplorerWarning):
        twonn(np.ones((10, 3)))


def test_twonn_on_equidistant_neighbours_is_a_clear_error_not_nan() -> None:
    angle = 2 * np.pi * np.arange(20) / 20
    lattice = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # both neighbours equally far
    for estimator in ("fit", "mle"):
        with pytest.raises(ValueError, match="same distance"):
            twonn(lattice, estimator=estimator)
