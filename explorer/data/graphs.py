"""Graphs for node classification: a stochastic block model with noisy class features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.data.task import rng
from explorer.validation import check_positive_int

__all__ = ["Graph", "stochastic_block_model"]


@dataclass(frozen=True)
class Graph:
    """An undirected graph with node features and labels.

    ``adjacency`` (n, n) symmetric 0/1 float64 without self-loops, ``features`` (n, d) float64,
    ``labels`` (n,) int64.
    """

    adjacency: np.ndarray
    features: np.ndarray
    labels: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    def propagation_matrix(self) -> np.ndarray:
        """GCN propagation Â = D^{-1/2} (A + I) D^{-1/2} (n, n) (Kipf & Welling; self-loops added)."""
        a = self.adjacency + np.eye(self.n_nodes)
        scale = 1.0 / np.sqrt(a.sum(1))
        return a * scale[:, None] * scale[None, :]


def stochastic_block_model(
    n: int = 300,
    n_classes: int = 3,
    *,
    p_in: float = 0.05,
    p_out: float = 0.01,
    n_features: int = 32,
    signal: float = 0.35,
    seed: int = 0,
) -> Graph:
    """Nodes in ``n_classes`` equal blocks; an edge joins two nodes with probability ``p_in``
    inside a block and ``p_out`` across. Features: a random class mean of norm ≈ ``signal`` plus
    isotropic noise of norm ≈ 1, in ``n_features`` dimensions."""
    check_positive_int(n, "n", minimum=2)
    check_positive_int(n_classes, "n_classes", minimum=2)
    check_positive_int(n_features, "n_features")
    for name, p in (("p_in", p_in), ("p_out", p_out)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    if not (np.isfinite(signal) and signal >= 0):
        raise ValueError(f"signal must be >= 0, got {signal!r}")
    gen = rng(seed)
    labels = np.arange(n) % n_classes
    prob = np.where(labels[:, None] == labels[None, :], p_in, p_out)
    upper = np.triu(gen.random((n, n)) < prob, 1)
    adjacency = (upper | upper.T).astype(np.float64)
    means = gen.standard_normal((n_classes, n_features)) * signal / np.sqrt(n_features)
    noise = gen.standard_normal((n, n_features)) / np.sqrt(n_features)
    return Graph(adjacency, means[labels] + noise, labels.astype(np.int64))
