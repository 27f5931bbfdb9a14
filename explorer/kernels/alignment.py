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
- :func:`pair_dots`: float64 dot products of listed row pairs (CKNNA);
- :func:`abs_max_bits`: max |x| and whether x is finite, in one pass (input checks).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from explorer.kernels._numba import FASTMATH_SAFE, LEAF, LEAF_REDUCTION, PARALLEL

__all__ = [
    "abs_max_bits",
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
    rows = np.empty((16, d), dtype=out.dtype)  # 16 rows of z, row-major, then transposed:
    i0 = r0  # each feature row gets 16 contiguous samples (a 64-byte line for float32)
    while i0 < r1:
        c = i0 // k
        i1 = min(r1, i0 + 16, (c + 1) * k)
        for i in range(i0, i1):
            q[i] = _shift_row(x[i], shift, rows[i - i0], sums)
        b = i0 - c * k
        if i1 - i0 == 16:  # unrolled: sixteen contiguous stores per feature row
            z0, z1, z2, z3 = rows[0], rows[1], rows[2], rows[3]
            z4, z5, z6, z7 = rows[4], rows[5], rows[6], rows[7]
            z8, z9, za, zb = rows[8], rows[9], rows[10], rows[11]
            zc, zd, ze, zf = rows[12], rows[13], rows[14], rows[15]
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
                dst[b + 8] = z8[j]
                dst[b + 9] = z9[j]
                dst[b + 10] = za[j]
                dst[b + 11] = zb[j]
                dst[b + 12] = zc[j]
                dst[b + 13] = zd[j]
                dst[b + 14] = ze[j]
                dst[b + 15] = zf[j]
        else:
            for j in range(d):
                for i in range(i1 - i0):
                    out[c, j, b + i] = rows[i, j]
        i0 = i1


@_leaf_reduction
def row_dots(z: np.ndarray, v: np.ndarray, r0: int, r1: int, out: np.ndarray) -> None:
    """out[b, i] ← Σ_c z[c, i, :] · v[b, c k : (c+1) k] in float64 for r0 ≤ i < r1, every b.

    z: (C, r, k) any float dtype (a row-major (n, d) matrix is z[None]; feature rows in C
    chunks of k samples are :func:`shift_rows`' chunked layout); v: (m, C·k) float64; out:
    (m, r). Row i is read from memory once for all m vectors (it stays in cache between them).
    """
    chunks, _, k = z.shape
    for i in range(r0, r1):
        for b in range(v.shape[0]):
            s = 0.0
            for c in range(chunks):
                row = z[c, i]
                vb = v[b, c * k : (c + 1) * k]
                for j in range(k):
                    s += np.float64(row[j]) * vb[j]
            out[b, i] = s


@_leaf_reduction
def add_tile(g: np.ndarray, tile: np.ndarray, r0: int, c0: int, upper: bool) -> None:
    """g[r0 + i, c0 + j] += tile[i, j] in float64; ``upper``: only where r0 + i ≤ c0 + j."""
    t, u = tile.shape
    for i in range(t):
        start = min(u, max(0, r0 + i - c0)) if upper else 0
        src = tile[i, start:]  # slices: a loop from a runtime start is not vectorised
        dst = g[r0 + i, c0 + start : c0 + u]
        for j in range(src.shape[0]):
            dst[j] += np.float64(src[j])


@_leaf_reduction
def tile_pair_sums(tiles: np.ndarray, r0: int, c0: int, inner: np.ndarray) -> None:
    """inner[a, b] += Σ over the tile of w_ij K_a[i, j] K_b[i, j], for every a, b (float64).

    tiles: (m, t, u) entries [r0, r0+t) × [c0, c0+u) of each of m symmetric kernel matrices
    (float32 or float64); the weights count the upper triangle for the whole matrix: w = 2 above
    the diagonal, 1 on it, 0 below (entries below are never read). Summed over tiles covering
    the upper triangle this gives ⟨K_a, K_b⟩_F. inner: (m, m) float64, kept symmetric.

    Each tile row's products are summed in the tiles' precision (≤ u terms, in vector lanes,
    four pairs per pass over K_a's row), then in float64: for float32 tiles twice the lanes of
    a float64 sum and a quarter of the loads; the error per row sum stays near float32
    rounding (~1e-7 relative) and averages out over the rows.
    """
    m, t, u = tiles.shape
    upper = np.zeros((m, m), dtype=np.float64)  # Σ over entries on and above the diagonal
    diag = np.zeros((m, m), dtype=np.float64)  # Σ over diagonal entries
    zero = np.zeros(1, dtype=tiles.dtype)[0]  # accumulators in the tiles' dtype
    for i in range(t):
        start = min(u, max(0, r0 + i - c0))  # first column on or above the diagonal
        for a in range(m):
            ra = tiles[a, i, start:]  # slices: a loop from a runtime start is not vectorised
            for b in range(0, a + 1 - 3, 4):
                q0, q1 = tiles[b, i, start:], tiles[b + 1, i, start:]
                q2, q3 = tiles[b + 2, i, start:], tiles[b + 3, i, start:]
                s0 = s1 = s2 = s3 = zero
                for j in range(ra.shape[0]):
                    x = ra[j]
                    s0 += x * q0[j]
                    s1 += x * q1[j]
                    s2 += x * q2[j]
                    s3 += x * q3[j]
                upper[a, b] += np.float64(s0)
                upper[a, b + 1] += np.float64(s1)
                upper[a, b + 2] += np.float64(s2)
                upper[a, b + 3] += np.float64(s3)
            for b in range((a + 1) // 4 * 4, a + 1):
                rb = tiles[b, i, start:]
                s = zero
                for j in range(ra.shape[0]):
                    s += ra[j] * rb[j]
                upper[a, b] += np.float64(s)
        if r0 + i >= c0 and start < u:  # then column `start` is the diagonal entry
            for a in range(m):
                for b in range(a + 1):
                    diag[a, b] += np.float64(tiles[a, i, start]) * np.float64(tiles[b, i, start])
    for a in range(m):
        for b in range(a + 1):
            v = 2.0 * upper[a, b] - diag[a, b]
            inner[a, b] += v
            if a != b:
                inner[b, a] += v


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
        ni = n * mu_a[i]
        fr = 0.0
        qr = 0.0
        start = min(i, db) if upper else 0
        row = g[i, start:]  # slices: a loop from a runtime start is not vectorised
        mu = mu_b[start:]
        for j in range(row.shape[0]):
            c = row[j] - ni * mu[j]
            fr += c * c
            qr += row[j] * mu[j]
        if upper:  # off-diagonal entries stand for two; the diagonal one was counted once
            c = g[i, i] - ni * mu_b[i]
            fr = 2.0 * fr - c * c
            qr = 2.0 * qr - g[i, i] * mu_b[i]
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


@numba.njit(**LEAF)
def abs_max_bits(bits: np.ndarray, mask: int) -> int:
    """max(bits & mask) over a flat signed-integer view of a float array (float32 → int32 and
    mask 0x7FFFFFFF, float64 → int64 and 0x7FFF…F): the bit pattern of max |x|, as the order
    of non-negative floats is that of their bits. At or above the pattern of +inf (0x7F800000
    for float32) some entry is inf or NaN. Integer lanes: one vectorised pass at memory speed
    (4 ms for 163 MB), serial and cached: a parallel kernel would compile anew in every
    process (~0.7 s on the first call)."""
    top = 0
    for i in range(bits.shape[0]):
        v = bits[i] & mask
        if v > top:
            top = v
    return top
