"""Stochastic block model, propagation, linear probes and Matryoshka heads: shapes, invariants
and the behaviour the G4/G5 tutorials rely on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.analysis.decoding import probe_accuracy
from explorer.analysis.geometry import effective_rank, propagate
from explorer.data import IGNORE_INDEX, make_task, stochastic_block_model
from explorer.models import Matryoshka, adaptive_classify, matryoshka_task


def test_block_model_is_symmetric_without_self_loops_and_homophilous() -> None:
    g = stochastic_block_model(n=120, n_classes=3, p_in=0.2, p_out=0.02, n_features=8, seed=1)
    a = g.adjacency
    assert np.array_equal(a, a.T) and not a.diagonal().any()
    same = g.labels[:, None] == g.labels[None, :]
    assert a[same].mean() > 5 * a[~same].mean()
    assert g.features.shape == (120, 8) and np.bincount(g.labels).tolist() == [40, 40, 40]
    p = g.propagation_matrix()
    np.testing.assert_allclose(p, p.T)
    assert np.linalg.eigvalsh(p).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="p_in"):
        stochastic_block_model(p_in=1.5)


def test_propagation_converges_to_rank_one() -> None:
    g = stochastic_block_model(n=90, p_in=0.3, p_out=0.05, seed=0)
    hs = propagate(g.propagation_matrix(), g.features, [0, 3, 200])
    assert list(hs) == [0, 3, 200]
    np.testing.assert_array_equal(hs[0], g.features)
    p = g.propagation_matrix()
    np.testing.assert_allclose(hs[3], p @ p @ p @ g.features)
    assert effective_rank(hs[200]) < 1.01 < effective_rank(hs[0])
    with pytest.raises(ValueError, match=r"\(n, n\)"):
        propagate(np.eye(3), g.features, [1])
    with pytest.raises(ValueError, match="non-negative"):
        propagate(p, g.features, [-1])


def test_probes_read_out_separable_classes_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    x = rng.standard_normal((200, 6)) + 3 * np.eye(6)[y]
    for kind in ("lda", "centroid"):
        assert probe_accuracy(x[:100], y[:100], x[100:], y[100:], kind=kind) > 0.9
        noise = rng.standard_normal((200, 6))
        assert probe_accuracy(noise[:100], y[:100], noise[100:], y[100:], kind=kind) < 0.45
    with pytest.raises(ValueError, match="two classes"):
        probe_accuracy(x[:10], np.zeros(10), x[10:20], y[10:20])
    with pytest.raises(ValueError, match="kind"):
        probe_accuracy(x, y, x, y, kind="svm")


def test_matryoshka_heads_read_nested_prefixes() -> None:
    model = Matryoshka(nn.Linear(5, 8), dims=(2, 4, 8), n_classes=3, seed=0)
    x = torch.randn(7, 5)
    out = model(x)
    assert out.shape == (7, 3, 3)
    z = model.encoder(x)
    torch.testing.assert_close(out[:, 0], model.heads[0](z[:, :2]))
    with pytest.raises(ValueError, match="increasing"):
        Matryoshka(nn.Linear(5, 8), dims=(4, 2), n_classes=3)
    with pytest.raises(ValueError, match="embeddings"):
        Matryoshka(nn.Linear(5, 6), dims=(2, 8), n_classes=3)(x)


def test_matryoshka_task_scores_every_prefix_or_only_the_last() -> None:
    digits = make_task("digits")
    nested = matryoshka_task(digits, 3)
    full = matryoshka_task(digits, 3, nested=False)
    assert nested.y_train.shape == (digits.n_train, 3)
    assert (nested.y_train == digits.y_train[:, None]).all()
    assert (full.y_train[:, :2] == IGNORE_INDEX).all() and torch.equal(
        full.y_train[:, 2], digits.y_train
    )
    with pytest.raises(ValueError, match="classification"):
        matryoshka_task(make_task("copy", n=20), 2)


def test_adaptive_classification_stops_at_the_first_confident_prefix() -> None:
    logits = torch.tensor(
        [
            [[5.0, 0.0], [0.0, 5.0]],  # confident at once: class 0, size 2
            [[0.1, 0.0], [0.0, 5.0]],  # unsure, then class 1 at size 4
            [[0.1, 0.0], [0.0, 0.1]],
        ]
    )  # fmt: skip  never confident: the last
    labels, sizes = adaptive_classify(logits, (2, 4), threshold=0.9)
    assert labels.tolist() == [0, 1, 1] and sizes.tolist() == [2, 4, 4]
    with pytest.raises(ValueError, match="threshold"):
        adaptive_classify(logits, (2, 4), threshold=0.0)
