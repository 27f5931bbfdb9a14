"""Position/context decomposition on constructed hidden states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.geometry import position_context


def synthetic(n_seq: int = 40, seq_len: int = 24, d: int = 32, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(seq_len) / seq_len * 2 * np.pi
    pos = np.zeros((seq_len, d))
    pos[:, 0], pos[:, 1] = 3 * np.cos(t), 3 * np.sin(t)  # a circle in 2 dims: low-dim, smooth
    centres = rng.normal(size=(4, d)) * 2
    centres[:, :2] = 0  # context lives away from the positional plane
    ctx = centres[np.arange(n_seq) % 4] + 0.1 * rng.normal(size=(n_seq, d))
    ctx[:, :2] = 0
    mu = rng.normal(size=d)
    h = mu + pos[None] + ctx[:, None] + 0.05 * rng.normal(size=(n_seq, seq_len, d))
    return {"h": h, "pos": pos, "mu": mu}


def test_recovers_parts_and_variances_add_up() -> None:
    s = synthetic()
    dec = position_context(torch.as_tensor(s["h"]))
    np.testing.assert_allclose(dec.position, s["pos"] - s["pos"].mean(0), atol=0.05)
    assert sum(dec.variance_share.values()) == pytest.approx(1.0, abs=1e-10)
    recon = dec.mean + dec.position[None] + dec.context[:, None] + dec.residual
    np.testing.assert_allclose(recon, s["h"], atol=1e-10)
    summary = dec.summary()
    assert summary["position_top2_share"] > 0.99
    assert summary["position_smoothness"] > 0.9
    assert summary["incoherence_max"] < 0.05 < summary["incoherence_random"]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"shape \(n_sequences, seq_len, d\)"):
        position_context(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="at least 2 sequences"):
        position_context(np.zeros((1, 5, 3)))
    with pytest.raises(ValueError, match="constant"):
        position_context(np.ones((3, 4, 2)))
    h = np.random.default_rng(0).normal(size=(3, 4, 2))
    h[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        position_context(h)
