"""Alignment kernels: float64 reductions over blocks of Gram matrices and over sparse pairs.

The Gram matrices themselves come from BLAS (numpy ``@``); these kernels fuse what follows into
one pass over memory, accumulating in float64 whatever the Gram dtype.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from explorer.kernels._numba import FASTMATH_SAFE, PARALLEL

__all__ = ["gram_block_sums", "pair_dots"]

# Reductions only: reassociation lets LLVM vectorise the float64 sums; NaN/inf semantics stay.
_parallel_reduction = numba.njit(**{**PARALLEL, "fastmath": set(FASTMATH_SAFE)})


@_parallel_reduction
def gram_block_sums(blocks: np.ndarray, inner: np.ndarray, rowsums: np.ndarray) -> None:
    """Accumulate ⟨K_a, K_b⟩ over a block of rows of m Gram matrices.

    blocks: (m, t, n) rows ``r … r+t`` of each K_a (any float dtype);
    inner: (m, m) float64, incremented by Σ_ij K_a[i, j] K_b[i, j] over the block (symmetric);
    rowsums: (m, t) float64, overwritten with the row sums K_a 1 of the block.
    """
    m, t, n = blocks.shape
    partial = np.zeros((t, m, m), dtype=np.float64)
    for i in prange(t):
        rows = np.empty((m, n), dtype=np.float64)  # this row of every Gram, widened once
        for a in range(m):
            s_row = 0.0
            for j in range(n):
                v = np.float64(blocks[a, i, j])
                rows[a, j] = v
                s_row += v
            rowsums[a, i] = s_row
        for a in range(m):
            ra = rows[a]
            for b in range(a + 1):
                rb = rows[b]
                s = 0.0
                for j in range(n):
                    s += ra[j] * rb[j]
                partial[i, a, b] = s
    for a in range(m):
        for b in range(a + 1):
            s = 0.0
            for i in range(t):
                s += partial[i, a, b]
            inner[a, b] += s
            if a != b:
                inner[b, a] += s


@_parallel_reduction
def pair_dots(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray) -> None:
    """out[p] = x[rows[p]] · x[cols[p]] in float64, for p pairs. x: (n, d)."""
    d = x.shape[1]
    for p in prange(rows.shape[0]):
        xi = x[rows[p]]
        xj = x[cols[p]]
        s = 0.0
        for c in range(d):
            s += np.float64(xi[c]) * np.float64(xj[c])
        out[p] = s
