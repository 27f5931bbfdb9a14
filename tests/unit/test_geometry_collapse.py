"""Neural collapse NC1–NC4 on constructed simplex configurations."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.geometry import neural_collapse


def simplex_etf(n_classes: int, d: int, seed: int = 0) -> np.ndarray:
    """C unit vectors in ℝ^d with pairwise cosine −1/(C−1), centred at 0."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, n_classes)))
    m = np.eye(n_classes) - 1.0 / n_classes
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m @ basis.T  # (C, d)


def collapsed(n_classes: int = 4, per: int = 25, d: int = 8, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = simplex_etf(n_classes, d, seed) * 3.0 + 1.5  # shifted global mean
    y = np.repeat(np.arange(n_classes), per)
    h = means[y] + noise * rng.normal(size=(len(y), d))
    return h, y, means


def test_exact_collapse_gives_zeros() -> None:
    h, y, means = collapsed()
    w = means - means.mean(0)
    nc = neural_collapse(h, y, w)
    for key in ("NC1", "NC2_equinorm", "NC2_equiangular", "NC2_max_angle", "NC3", "NC4"):
        assert nc[key] == pytest.approx(0.0, abs=1e-10), key
    assert nc["mean_cos"] == pytest.approx(-1 / 3, abs=1e-12)


def test_nc1_grows_with_within_class_noise_and_matches_definition() -> None:
    values = [neural_collapse(*collapsed(noise=s, seed=1)[:2])["NC1"] for s in (0.1, 0.5, 1.0)]
    assert values[0] < values[1] < values[2]
    h, y, _ = collapsed(noise=0.7, seed=2)
    mu = np.stack([h[y == c].mean(0) for c in range(4)])
    sw = sum((h[y == c] - mu[c]).T @ (h[y == c] - mu[c]) for c in range(4)) / len(h)
    mc = mu - h.mean(0)
    sb = mc.T @ mc / 4
    expected = np.trace(sw @ np.linalg.pinv(sb)) / 4
    assert neural_collapse(h, y)["NC1"] == pytest.approx(expected, rel=1e-8)


def test_non_simplex_means_are_detected() -> None:
    h, y, _ = collapsed()
    h = h.copy()
    h[y == 0] *= 3.0  # one class far out: breaks equinorm and equiangularity
    nc = neural_collapse(h, y)
    assert nc["NC2_equinorm"] > 0.1 and nc["NC2_equiangular"] > 0.05


def test_nc3_and_nc4_with_a_misaligned_classifier() -> None:
    h, y, means = collapsed()
    w = np.roll(means - means.mean(0), 1, axis=0)  # classifier rows permuted
    nc = neural_collapse(h, y, w)
    assert nc["NC3"] > 0.5 and nc["NC4"] == pytest.approx(1.0)


def test_bad_inputs() -> None:
    h, y, means = collapsed()
    with pytest.raises(ValueError, match="at least 2 classes"):
        neural_collapse(h, np.zeros(len(h)))
    with pytest.raises(ValueError, match="labels has 3 entries"):
        neural_collapse(h, [0, 1, 2])
    with pytest.raises(ValueError, match=r"w must have shape \(n_classes, d\)"):
        neural_collapse(h, y, means[:, :3])
    with pytest.raises(ValueError, match="b must have shape"):
        neural_collapse(h, y, means, b=np.zeros(7))
