"""Alignment kernels: float64 moments of representations and float64 reductions of GEMM tiles.

Every kernel but :func:`pair_dots` is serial, cached and releases the GIL: Python splits the
work (row ranges, GEMM tiles) over worker threads (:func:`explorer.device.run_on_workers`).

The products themselves (ZᵀZ tiles, Gram tiles Z Zᵀ) come from BLAS in the input precision;
these kernels do everything around them in one pass over memory each, accumulating in float64
whatever the input dtype:

- :func:`column_sums`, :func:`shift_rows`, :func:`row_dots`: the moments of an (n, d)
  representation, over a range of rows;
- :func:`add_tile`, :func:`tile_pair_sums`: fold one GEMM tile into float64 accumulators;
- :func:`centred_frobenius`: ‖G − n μ_a μ_bᵀ‖²_F and μ_aᵀ G μ_b of an accumulated ZᵀZ;
- :func:`pair_dots`: float64 dot products of listed row pairs (CKNNA).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from explorer.kernels._numba import FASTMATH_SAFE, LEAF_REDUCTION, PARALLEL

__all__ = [
    "add_tile",
    "centred_frobenius",
    "column_sums",
    "pair_dots",
    "row_dots",
    "shift_rows",
    "tile_pair_sums",
]

# Reductions only: reassociation lets LLVM vectorise the float64 sums; NaN/inf semantics stay.
_parallel_reduction = numba.njit(**{**PARALLEL, "fastmath": set(FASTMATH_SAFE)})
_leaf_reduction = numba.njit(**LEAF_REDUCTION)


@_leaf_reduction
def column_sums(x: np.ndarray, r0: int, r1: int, out: np.ndarray) -> None:
    """out (d,) float64 += Σ_{r0 ≤ i < r1} x[i, :] for x (n, d) of any float dtype."""
    d = x.shape[1]
    for i in range(r0, r1):
        row = x[i]
        for j in range(d):
            out[j] += np.float64(row[j])


@_leaf_reduction
def _shift_row(src: np.ndarray, shift: np.ndarray, dst: np.ndarray, sums: np.ndarray) -> float:
    """dst ← src − shift (rounded to dst's dtype); sums += dst; returns Σ dst² (float64)."""
    s = 0.0
    for j in range(src.shape[0]):
        dst[j] = np.float64(src[j]) - shift[j]
        v = np.float64(dst[j])
        s += v * v
        sums[j] += v
    return s


@_leaf_reduction
def shift_rows(
    x: np.ndarray,
    shift: np.ndarray,
    r0: int,
    r1: int,
    out: np.ndarray,
    q: np.ndarray,
    sums: np.ndarray,
    transposed: bool,
) -> None:
    """Rows r0 … r1−1 of z = x − shift (rounded once to out's dtype), with float64 moments.

    x: (n, d); shift: (d,) float64; q: (n,) float64 ← row norms² Σ_j z[i, j]²;
    sums: (d,) float64 += Σ_i z[i, :] over the rows. ``out``: z as (1, n, d), or when
    ``transposed`` zᵀ in chunks of k samples, (C, d, k) with out[c, j, i − c k] = z[i, j] (the
    layout the feature products multiply fastest: contiguous along samples).
    """
    d = x.shape[1]
    if not transposed:
        for i in range(r0, r1):
            q[i] = _shift_row(x[i], shift, out[0, i], sums)
        return
    k = out.shape[2]
    rows = np.empty((8, d), dtype=out.dtype)  # 8 rows of z, row-major: then written transposed
    i0 = r0
    while i0 < r1:
        c = i0 // k
        i1 = min(r1, i0 + 8, (c + 1) * k)
        for i in range(i0, i1):
            q[i] = _shift_row(x[i], shift, rows[i - i0], sums)
        b = i0 - c * k
        if i1 - i0 == 8:  # unrolled: eight contiguous stores per feature row
            z0, z1, z2, z3 = rows[0], rows[1], rows[2], rows[3]
            z4, z5, z6, z7 = rows[4], rows[5], rows[6], rows[7]
            for j in range(d):
                dst = out[c, j]
                dst[b] = z0[j]
                dst[b + 1] = z1[j]
                dst[b + 2] = z2[j]
                dst[b + 3] = z3[j]
                dst[b + 4] = z4[j]
                dst[b + 5] = z5[j]
                dst[b + 6] = z6[j]
                dst[b + 7] = z7[j]
        else:
            for j in range(d):
                for i in range(i1 - i0):
                    out[c, j, b + i] = rows[i, j]
        i0 = i1


@_leaf_reduction
def row_dots(z: np.ndarray, v: np.ndarray, r0: int, r1: int, out: np.ndarray) -> None:
    """out[i] ← Σ_c z[c, i, :] · v[c k : (c+1) k] in float64 for r0 ≤ i < r1.

    z: (C, r, k) any float dtype (a row-major (n, d) matrix is z[None]; feature rows in C
    chunks of k samples are :func:`shift_rows`' chunked layout); v: (C·k,) float64.
    """
    chunks, _, k = z.shape
    for i in range(r0, r1):
        s = 0.0
        for c in range(chunks):
            row = z[c, i]
            for j in range(k):
                s += np.float64(row[j]) * v[c * k + j]
        out[i] = s


@_leaf_reduction
def add_tile(g: np.ndarray, tile: np.ndarray, r0: int, c0: int, upper: bool) -> None:
    """g[r0 + i, c0 + j] += tile[i, j] in float64; ``upper``: only where r0 + i ≤ c0 + j."""
    t, u = tile.shape
    for i in range(t):
        src = tile[i]
        dst = g[r0 + i]
        start = max(0, r0 + i - c0) if upper else 0
        for j in range(start, u):
            dst[c0 + j] += np.float64(src[j])


@_leaf_reduction
def tile_pair_sums(tiles: np.ndarray, weight: float, inner: np.ndarray) -> None:
    """inner[a, b] += weight · Σ_ij tiles[a, i, j] tiles[b, i, j] for every a, b (float64).

    tiles: (m, t, u) one tile of each of m kernel matrices, same position (any float dtype);
    inner: (m, m) float64, kept symmetric.
    """
    m, t, u = tiles.shape
    rows = np.empty((m, u), dtype=np.float64)  # row i of every tile, widened once
    acc = np.zeros((m, m), dtype=np.float64)
    for i in range(t):
        for a in range(m):
            src = tiles[a, i]
            dst = rows[a]
            for j in range(u):
                dst[j] = np.float64(src[j])
        for a in range(m):
            ra = rows[a]
            b = 0
            while b + 4 <= a + 1:  # four pairs per pass: one load of row a feeds four FMAs
                r0, r1, r2, r3 = rows[b], rows[b + 1], rows[b + 2], rows[b + 3]
                s0 = s1 = s2 = s3 = 0.0
                for j in range(u):
                    v = ra[j]
                    s0 += v * r0[j]
                    s1 += v * r1[j]
                    s2 += v * r2[j]
                    s3 += v * r3[j]
                acc[a, b] += s0
                acc[a, b + 1] += s1
                acc[a, b + 2] += s2
                acc[a, b + 3] += s3
                b += 4
            for c in range(b, a + 1):
                rc = rows[c]
                s = 0.0
                for j in range(u):
                    s += ra[j] * rc[j]
                acc[a, c] += s
    for a in range(m):
        for b in range(a + 1):
            inner[a, b] += weight * acc[a, b]
            if a != b:
                inner[b, a] += weight * acc[a, b]


@_leaf_reduction
def centred_frobenius(
    g: np.ndarray, mu_a: np.ndarray, mu_b: np.ndarray, n: float, upper: bool
) -> tuple[float, float]:
    """(‖G − n μ_a μ_bᵀ‖²_F, μ_aᵀ G μ_b) of G = Z_aᵀZ_b (float64), in one pass.

    ``upper``: G is symmetric and only its upper triangle is stored (strict lower part ignored).
    """
    da, db = g.shape
    frob = 0.0
    quad = 0.0
    for i in range(da):
        row = g[i]
        ni = n * mu_a[i]
        fr = 0.0
        qr = 0.0
        start = i if upper else 0
        for j in range(start, db):
            c = row[j] - ni * mu_b[j]
            fr += c * c
            qr += row[j] * mu_b[j]
        if upper:  # off-diagonal entries stand for two; the diagonal one was counted once
            c = row[i] - ni * mu_b[i]
            fr = 2.0 * fr - c * c
            qr = 2.0 * qr - row[i] * mu_b[i]
        frob += fr
        quad += mu_a[i] * qr
    return frob, quad


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
