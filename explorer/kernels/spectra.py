"""Numba kernels for spectral analysis: the Clauset xmin scan of a continuous power-law fit.

Pure functions on float64 arrays; the public API is :mod:`explorer.analysis.spectra`.
"""

from __future__ import annotations

import numpy as np

from explorer.kernels._numba import leaf

__all__ = ["REL_SPREAD", "powerlaw_xmin_scan"]

REL_SPREAD = 1e-9  # tails whose mean log(x / xmin) is below this are degenerate


@leaf
def powerlaw_xmin_scan(x: np.ndarray, min_tail: int) -> tuple[np.ndarray, np.ndarray]:
    """For every candidate ``xmin = x[i]``: the MLE exponent and KS distance of the tail.

    ``x``: (n,) positive, sorted ascending, float64. Candidate ``i`` fits the tail ``x[i:]``
    (``n - i`` points) with ``alpha_i = 1 + m / sum(log(x[i:] / x[i]))`` (continuous MLE,
    Clauset, Shalizi & Newman 2009, eq. 3.1) and measures the two-sided Kolmogorov–Smirnov
    distance between the empirical tail CDF and ``1 - (x / xmin)^(1 - alpha)``.

    Returns ``(alphas, ks)``, each (n,); candidates with fewer than ``min_tail`` points, a
    repeated xmin (the tail starts at its first copy) or a degenerate tail (values equal up to
    ``REL_SPREAD`` in log) get
    ``alpha = nan`` and ``ks = inf``. O(n²) time, O(n) memory.
    """
    n = x.shape[0]
    alphas = np.full(n, np.nan)
    ks = np.full(n, np.inf)
    logx = np.log(x)
    suffix = np.zeros(n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + logx[i]
    for i in range(n - min_tail + 1):
        if i > 0 and x[i] == x[i - 1]:
            continue
        m = n - i
        s = suffix[i] - m * logx[i]
        if s <= m * REL_SPREAD:  # all tail values equal to rounding: nothing to fit
            continue
        alpha = 1.0 + m / s
        d = 0.0
        for j in range(i, n):
            model = 1.0 - (x[j] / x[i]) ** (1.0 - alpha)
            below = abs(model - (j - i) / m)
            above = abs((j - i + 1) / m - model)
            if below > d:
                d = below
            if above > d:
                d = above
        alphas[i] = alpha
        ks[i] = d
    return alphas, ks
