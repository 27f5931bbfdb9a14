"""Per-layer tidy geometry profiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.geometry import geometry_over_training, geometry_profile, twonn


def test_profile_is_tidy_and_matches_direct_calls() -> None:
    rng = np.random.default_rng(0)
    acts = {
        "flat": rng.normal(size=(300, 3)) @ rng.normal(size=(3, 10)),
        "tokens": torch.as_tensor(rng.normal(size=(10, 30, 6))),
    }
    labels = rng.integers(0, 3, 300)
    df = geometry_profile(acts, labels=labels, max_points=10_000, pool="tokens")
    assert list(df.columns) == ["layer", "metric", "value"]
    assert set(df.metric) >= {"twonn", "mle", "effective_rank", "NC1", "duplicate_fraction"}
    got = df.query("layer == 'flat' and metric == 'twonn'").value.item()
    assert got == pytest.approx(twonn(acts["flat"]))


def test_duplicates_are_reported_not_warned_and_over_training_has_steps() -> None:
    x = np.random.default_rng(1).normal(size=(100, 4))
    snaps = [(0, {"a": np.vstack([x, x[:25]])}), (10, {"a": x})]
    df = geometry_over_training(snaps, metrics=["twonn"])
    assert list(df.columns) == ["layer", "step", "metric", "value"]
    dup = df.query("metric == 'duplicate_fraction'").set_index("step").value
    assert dup[0] == pytest.approx(0.2) and dup[10] == 0.0


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        geometry_profile({"a": np.eye(5)}, metrics=["curvy"])
    with pytest.raises(ValueError, match="need labels"):
        geometry_profile({"a": np.eye(5)}, metrics=["NC1"])
    with pytest.raises(ValueError, match=r"labels \(layer .a.\) has 2 entries"):
        geometry_profile({"a": np.eye(5)}, labels=[0, 1])
