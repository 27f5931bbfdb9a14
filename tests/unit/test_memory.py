"""Associative memory read-outs: Hebbian crosstalk matches its Gaussian prediction, softmax with
a large β reads back far more pairs, capacity search brackets the 90 % point."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from explorer.analysis.memory import memory_capacity, recall_accuracy


def test_one_pair_is_always_read_back() -> None:
    for rule in ("hebbian", "softmax"):
        assert recall_accuracy(1, 8, rule=rule, beta=0.0) == 1.0


def test_hebbian_crosstalk_matches_the_gaussian_prediction() -> None:
    n, d = 257, 64
    acc = np.mean([recall_accuracy(n, d, rule="hebbian", seed=s, n_queries=256) for s in range(4)])
    assert acc == pytest.approx(norm.cdf(np.sqrt(d / (n - 1))), abs=0.01)


def test_softmax_at_zero_beta_averages_everything_away() -> None:
    assert recall_accuracy(512, 16, rule="softmax", beta=0.0) < 0.6
    assert recall_accuracy(512, 16, rule="softmax", beta=16.0) > 0.99


def test_capacity_brackets_the_level() -> None:
    cap = memory_capacity(32, rule="hebbian", seed=0)
    assert recall_accuracy(cap, 32, rule="hebbian", seed=0) < 0.9
    assert recall_accuracy(cap - 1, 32, rule="hebbian", seed=0) >= 0.9
    assert memory_capacity(8, rule="softmax", beta=50.0, max_pairs=64) == 65  # never fails


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"rule": "cosine"}, "rule"), ({"beta": -1.0}, "beta"), ({"n_pairs": 0}, "n_pairs")],
)
def test_bad_arguments(kwargs, match) -> None:
    args = {"n_pairs": 4, "d_key": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        recall_accuracy(**args)
    with pytest.raises(ValueError, match="level"):
        memory_capacity(4, level=0.5)
