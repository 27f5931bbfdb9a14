"""Feature-pair task, explained variance and seed disagreement: oracles and invariants."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.analysis.decoding import explained_variance
from explorer.analysis.disagreement import disagreement, held_out_auroc, pairwise_disagreement
from explorer.data import feature_pair


def test_feature_pair_labels_by_oracle() -> None:
    t = feature_pair(200, features=("majority", "parity"), n_bits=10, seed=3)
    x, y = t.x_train.numpy(), t.y_train.numpy()
    assert t.meta["bits"] == [[0, 1, 2, 3, 4], [5, 6, 7]]
    np.testing.assert_array_equal(y[:, 0], np.sign(x[:, :5].sum(1)))
    np.testing.assert_array_equal(y[:, 1], x[:, 5:8].prod(1))
    assert set(np.unique(x)) == {-1.0, 1.0} and t.n_test == 50
    with pytest.raises(ValueError, match="features"):
        feature_pair(features=("xor",))
    with pytest.raises(ValueError, match="n_bits"):
        feature_pair(features=("majority", "majority"), n_bits=8)


def test_explained_variance_is_the_between_class_share() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 50)
    x = rng.standard_normal((150, 4))
    assert explained_variance(x, labels) < 0.05
    x_sep = x + 100 * np.eye(4)[labels]
    assert explained_variance(x_sep, labels) > 0.99
    # R² of regressing x on the one-hot labels
    onehot = np.eye(3)[labels]
    fit = onehot @ np.linalg.lstsq(onehot, x - x.mean(0), rcond=None)[0]
    expected = (fit**2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert explained_variance(x, labels) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="constant"):
        explained_variance(np.ones((4, 2)), [0, 1, 0, 1])


def test_disagreement_and_pairwise_rate() -> None:
    p = np.array([[0, 1, 2, 3], [0, 1, 2, 0], [0, 2, 1, 1]])
    np.testing.assert_allclose(disagreement(p), [0, 1 / 3, 1 / 3, 2 / 3])
    assert pairwise_disagreement(p) == pytest.approx(np.mean([1 / 4, 3 / 4, 3 / 4]))
    with pytest.raises(TypeError, match="integer"):
        disagreement(p.astype(float))
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_disagreement(p[:1])


def test_held_out_auroc_finds_errors_where_others_disagree() -> None:
    rng = np.random.default_rng(0)
    n, s = 400, 6
    labels = rng.integers(0, 5, n)
    hard = rng.random(n) < 0.2  # on hard examples every model guesses
    preds = np.where(hard[None], rng.integers(0, 5, (s, n)), labels[None])
    auc = held_out_auroc(preds, labels)
    assert (auc > 0.9).all()
    control = held_out_auroc(preds, labels, shuffle=True, seed=1)
    assert abs(control.mean() - 0.5) < 0.08
    perfect = np.repeat(labels[None], 3, 0)
    assert np.isnan(held_out_auroc(perfect, labels)).all()
    with pytest.raises(ValueError, match="one per example"):
        held_out_auroc(preds, labels[:-1])
