"""Per-point intrinsic-dimension kernels on kNN neighbourhoods."""

from __future__ import annotations

import numpy as np
from numba import prange

from explorer.kernels._numba import leaf, parallel

__all__ = ["RULE_BROKEN_STICK", "RULE_FRACTION", "RULE_RATIO", "count_components", "local_pca"]

RULE_FRACTION = 0  # eigenvalues above threshold × the largest
RULE_RATIO = 1  # fewest components explaining ≥ threshold of the variance
RULE_BROKEN_STICK = 2  # leading components above the broken-stick expectation


@leaf
def count_components(eig_desc: np.ndarray, rule: int, threshold: float) -> int:
    """Number of significant components of a descending, non-negative eigenvalue vector."""
    p = eig_desc.shape[0]
    total = 0.0
    for i in range(p):
        total += eig_desc[i]
    if total <= 0.0:
        return 0
    if rule == RULE_FRACTION:
        count = 0
        for i in range(p):
            if eig_desc[i] > threshold * eig_desc[0]:
                count += 1
        return count
    if rule == RULE_RATIO:
        acc = 0.0
        for i in range(p):
            acc += eig_desc[i]
            if acc >= threshold * total:
                return i + 1
        return p
    count = 0
    for i in range(p):
        stick = 0.0
        for j in range(i, p):
            stick += 1.0 / (j + 1)
        if eig_desc[i] / total > stick / p:
            count += 1
        else:
            break
    return count


@leaf
def _local_pca_point(
    data: np.ndarray, point: int, neighbors: np.ndarray, rule: int, threshold: float
) -> int:
    k = neighbors.shape[0]
    dim = data.shape[1]
    pts = np.empty((k + 1, dim), dtype=np.float64)
    pts[0] = data[point]
    for a in range(k):
        pts[a + 1] = data[neighbors[a]]
    for c in range(dim):
        mean = 0.0
        for a in range(k + 1):
            mean += pts[a, c]
        mean /= k + 1
        for a in range(k + 1):
            pts[a, c] -= mean
    eig = np.linalg.eigvalsh(pts @ pts.T)[::-1].copy()
    for a in range(eig.shape[0]):
        if eig[a] < 0.0:
            eig[a] = 0.0
    return count_components(eig, rule, threshold)


@parallel
def local_pca(
    data: np.ndarray, neighbors: np.ndarray, rule: int, threshold: float, out: np.ndarray
) -> None:
    """Local PCA dimension of each point's neighbourhood (the point and its k neighbours).

    data: (n, D) float64, neighbors: (n, k) int64 → out (n,) component counts. Eigenvalues come
    from the (k+1)×(k+1) centred Gram matrix (same non-zero spectrum as the covariance).
    """
    for i in prange(data.shape[0]):
        out[i] = _local_pca_point(data, i, neighbors[i], rule, threshold)
