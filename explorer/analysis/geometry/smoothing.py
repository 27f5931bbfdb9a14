"""Over-smoothing: node representations under repeated graph propagation.

Propagating features with the GCN matrix Â = D^{-1/2}(A + I)D^{-1/2} averages every node with
its neighbours. A few rounds denoise features of a homophilous graph; many rounds drive every row
toward the top eigenvector of Â (each node's row ∝ √degree times one shared vector), so rows of
different classes become "indistinguishable" (Liu, Gao & Ji, *Towards Deeper Graph Neural
Networks*, 2020): the effective rank falls to 1 and class separation to chance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from explorer.device import as_numpy
from explorer.validation import check_matrix, check_positive_int

__all__ = ["propagate"]


def propagate(propagation: Any, x: Any, depths: Iterable[int]) -> dict[int, np.ndarray]:
    """``x`` (n, d) after k rounds of ``propagation`` (n, n), for every k in ``depths``: float64.

    Depths are computed incrementally (k matrix products for the largest k).
    """
    p = as_numpy(check_matrix(propagation, "propagation"), dtype=np.float64)
    h = as_numpy(check_matrix(x, "x"), dtype=np.float64)
    if p.shape != (len(h), len(h)):
        raise ValueError(f"propagation must be (n, n) with n = {len(h)} rows of x, got {p.shape}")
    wanted = sorted(
        {check_positive_int(k, "each of depths (non-negative integers)", minimum=0) for k in depths}
    )
    if not wanted:
        raise ValueError("depths is empty: pass the numbers of propagation rounds to return")
    out, done = {}, 0
    for k in wanted:
        for _ in range(k - done):
            h = p @ h
        done = k
        out[k] = h.copy()
    if not all(np.isfinite(v).all() for v in out.values()):
        raise ValueError("propagated features overflow float64: rescale x or the propagation")
    return out
