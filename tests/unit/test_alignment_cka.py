"""Linear/RBF CKA, all-pairs, streaming and minibatch: reference values, invariances, oracles."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.analysis.alignment import StreamingCKA, cka_matrix, linear_cka, minibatch_cka, rbf_cka
from explorer.analysis.alignment._hsic import cka_from_hsic, hsic_matrix, upper_tiles
from explorer.analysis.alignment.cka import _linear_stats
from explorer.errors import ExplorerWarning
from explorer.kernels import alignment as kernels


@pytest.fixture
def demo() -> tuple[np.ndarray, np.ndarray]:
    """Data of the CKA demo notebook (Kornblith et al. 2019), legacy RandomState."""
    np.random.seed(1337)  # noqa: NPY002 - the published values use legacy RandomState
    x = np.random.randn(100, 10)  # noqa: NPY002
    y = np.random.randn(100, 10) + x  # noqa: NPY002
    return x, y


def oracle_hsic(k: np.ndarray, l: np.ndarray, debiased: bool) -> float:
    """Textbook formulas on explicit n × n Grams (float64)."""
    n = k.shape[0]
    if not debiased:
        h = np.eye(n) - 1.0 / n
        return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    val = np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    val -= 2.0 * (one @ kt @ lt @ one) / (n - 2)
    return float(val / (n * (n - 3)))


def oracle_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    k, l = x @ x.T, y @ y.T
    return oracle_hsic(k, l, debiased) / np.sqrt(
        oracle_hsic(k, k, debiased) * oracle_hsic(l, l, debiased)
    )


def test_published_reference_values(demo):
    x, y = demo
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)
    assert rbf_cka(x, y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("route", ["feature", "gram"])
def test_routes_match_textbook_oracle(demo, route, debiased):
    x, y = demo
    assert linear_cka(x, y, debiased=debiased, route=route) == pytest.approx(
        oracle_cka(x + 3.0, y - 1.0, debiased)
        if debiased
        else oracle_cka(x - x.mean(0), y - y.mean(0)),
        abs=1e-12,
    )


def test_feature_and_gram_routes_agree_when_d_exceeds_n():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 50)), rng.standard_normal((20, 70))
    for debiased in (False, True):
        a = linear_cka(x, y, debiased=debiased, route="feature")
        b = linear_cka(x, y, debiased=debiased, route="gram")
        assert a == pytest.approx(b, abs=1e-12)


def test_invariances(demo):
    x, y = demo
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x + 11.0) == pytest.approx(1.0, abs=1e-12)
    for debiased in (False, True):
        base = linear_cka(x, y, debiased=debiased)
        assert linear_cka(2.0 * x @ q - 5.0, y + 9.0, debiased=debiased) == pytest.approx(
            base, abs=1e-12
        )
    assert rbf_cka(x @ q + 4.0, y) == pytest.approx(rbf_cka(x, y), abs=1e-12)
    # CKA is not invariant to an arbitrary invertible map (CCA is)
    a = rng.standard_normal((10, 10)) @ np.diag(np.logspace(0, 2, 10))
    assert abs(linear_cka(x @ a, y) - linear_cka(x, y)) > 1e-3


def test_debiased_near_zero_where_biased_is_inflated():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 512)), rng.standard_normal((16, 512))
    assert linear_cka(x, y) > 0.9
    assert abs(linear_cka(x, y, debiased=True)) < 0.15


def test_all_pairs_matches_pairwise():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((60, 8))
    reps = {f"l{i}": np.tanh(base @ rng.standard_normal((8, 5 + 3 * i))) + i for i in range(4)}
    for debiased in (False, True):
        for route in ("feature", "gram"):
            m = cka_matrix(reps, debiased=debiased, route=route)
            assert m.shape == (4, 4)
            np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-12)
            np.testing.assert_allclose(m, m.T, atol=1e-14)
            keys = list(reps)
            for i in range(4):
                for j in range(4):
                    assert m[i, j] == pytest.approx(
                        linear_cka(reps[keys[i]], reps[keys[j]], debiased=debiased), abs=1e-12
                    )
    cross = cka_matrix(list(reps.values())[:2], list(reps.values())[1:])
    assert cross.shape == (2, 3)
    assert cross[1, 0] == pytest.approx(1.0, abs=1e-12)


def test_float32_close_to_float64(demo):
    x, y = demo
    for debiased in (False, True):
        ref = linear_cka(x, y, debiased=debiased)
        for route in ("feature", "gram"):
            got = linear_cka(
                x.astype(np.float32), y.astype(np.float32), debiased=debiased, route=route
            )
            assert got == pytest.approx(ref, abs=1e-5)


def test_torch_route_code_matches_numpy_on_cpu_tensors(demo):
    """The CUDA code path (torch ops) run on CPU tensors equals the numpy/numba path."""
    x, y = demo
    pairs = {(0, 1)}
    names = ["x", "y"]
    for route in ("feature", "gram"):
        for dtype in (np.float64, np.float32):
            xs_np = [x.astype(dtype) + 5.0, y.astype(dtype)]
            xs_t = [torch.from_numpy(a) for a in xs_np]
            for debiased in (False, True):
                a = _linear_stats(xs_np, pairs, route, names)
                b = _linear_stats(xs_t, pairs, route, names)
                ha, hb = (hsic_matrix(st, debiased=debiased) for st in (a, b))
                np.testing.assert_allclose(ha, hb, rtol=1e-12 if dtype == np.float64 else 1e-5)
                np.testing.assert_allclose(
                    cka_from_hsic(ha),
                    cka_from_hsic(hb),
                    atol=1e-12 if dtype == np.float64 else 1e-6,
                )
    # torch CPU tensors are accepted at the public boundary too
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(y), device="cpu") == pytest.approx(
        0.55761, abs=5e-6
    )


@pytest.mark.kernels
def test_moment_kernels_match_numpy_float64():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((37, 6)) * 3.0 + 7.0).astype(np.float32)
    x64 = x.astype(np.float64)
    sums = np.ones(6)
    kernels.column_sums(x, 3, 37, sums)
    np.testing.assert_allclose(sums, 1.0 + x64[3:].sum(0), rtol=1e-13)
    shift = x64.mean(0)
    expected = (x64 - shift).astype(np.float32)  # rounded once
    for transposed in (False, True):  # (1, n, d), or zᵀ in chunks of 16 samples (3, 6, 16)
        out = np.zeros((3, 6, 16) if transposed else (1, 37, 6), dtype=np.float32)
        q, zsum = np.empty(37), np.zeros(6)
        kernels.shift_rows(x, shift, 0, 20, out, q, zsum, transposed)
        kernels.shift_rows(x, shift, 20, 37, out, q, zsum, transposed)
        z = np.concatenate(list(out), axis=1).T[:37] if transposed else out[0]
        np.testing.assert_array_equal(z, expected)
        z64 = z.astype(np.float64)
        np.testing.assert_allclose(q, (z64**2).sum(1), rtol=1e-13)
        np.testing.assert_allclose(zsum, z64.sum(0), rtol=1e-10, atol=1e-12)
        if transposed:
            assert not out[2, :, 5:].any()  # padding past n untouched
            v = rng.standard_normal((3, 48))
            dots = np.empty((3, 6))
            kernels.row_dots(out, v, 0, 4, dots)  # chunked feature rows · per-sample vectors
            kernels.row_dots(out, v, 4, 6, dots)
            np.testing.assert_allclose(dots, v[:, :37] @ z64, rtol=1e-12, atol=1e-12)
    v = rng.standard_normal((2, 6))
    dots = np.empty((2, 37))
    kernels.row_dots(z[None], v, 0, 37, dots)
    np.testing.assert_allclose(dots, v @ z64.T, rtol=1e-12, atol=1e-12)


@pytest.mark.kernels
def test_tile_kernels_match_numpy_float64():
    rng = np.random.default_rng(6)
    # six symmetric 11 × 11 kernels (pairs four at a time and one at a time): ⟨K_a, K_b⟩ from
    # upper tiles, weights 2 / 1 / 0; float64 tiles sum in float64, float32 tiles sum each tile
    # row in float32 (≤ 11 terms) before float64
    f = rng.standard_normal((6, 11, 4))
    grams64 = np.einsum("aik,ajk->aij", f, f)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        grams = grams64.astype(dtype)
        flat = grams.astype(np.float64).reshape(6, -1)
        for t in (3, 4, 11):
            inner = np.ones((6, 6))
            for i0, j0, rows, cols in upper_tiles(11, t):
                block = np.ascontiguousarray(grams[:, i0 : i0 + rows, j0 : j0 + cols])
                kernels.tile_pair_sums(block, i0, j0, inner)
            np.testing.assert_allclose(inner, 1.0 + flat @ flat.T, rtol=rtol)
            np.testing.assert_array_equal(inner, inner.T)
        above = np.ones((6, 6))  # a tile wholly above the diagonal counts twice
        kernels.tile_pair_sums(np.ascontiguousarray(grams[:, :3, 5:]), 0, 5, above)
        part = grams[:, :3, 5:].astype(np.float64).reshape(6, -1)
        np.testing.assert_allclose(above, 1.0 + 2.0 * part @ part.T, rtol=rtol)
    # a symmetric 9 × 9 matrix from upper tiles (the diagonal one masked below its diagonal)
    a = rng.standard_normal((40, 9))
    full = a.T @ a
    g = np.zeros((9, 9))
    for i0, j0 in ((0, 0), (0, 5), (5, 5)):
        kernels.add_tile(g, full[i0 : i0 + 5, j0 : j0 + 5], i0, j0, True)
    np.testing.assert_allclose(g, np.triu(full), rtol=1e-14)
    mu = rng.standard_normal(9)
    frob, quad = kernels.centred_frobenius(g, mu, mu, 40.0, True)
    c = full - 40.0 * np.outer(mu, mu)
    assert frob == pytest.approx(float((c * c).sum()), rel=1e-12)
    assert quad == pytest.approx(float(mu @ full @ mu), rel=1e-12)
    cross = rng.standard_normal((9, 4))
    nu = rng.standard_normal(4)
    frob, quad = kernels.centred_frobenius(cross, mu, nu, 3.0, False)
    assert frob == pytest.approx(float(((cross - 3.0 * np.outer(mu, nu)) ** 2).sum()), rel=1e-12)
    assert quad == pytest.approx(float(mu @ cross @ nu), rel=1e-12)


@pytest.mark.kernels
def test_pair_dots_matches_numpy():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 4)).astype(np.float32)
    r, c = np.array([0, 3, 8], dtype=np.int64), np.array([1, 3, 2], dtype=np.int64)
    out = np.empty(3)
    kernels.pair_dots(x, r, c, out)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(out, (x64[r] * x64[c]).sum(1), rtol=1e-12)


@pytest.mark.parametrize("batch", [1, 7, 33, 100])
def test_streaming_equals_in_memory(demo, batch):
    x, y = demo
    x, y = x + 40.0, 3.0 * y - 25.0  # far from zero mean: tests the shift
    s = StreamingCKA()
    for i in range(0, 100, batch):
        s.update(x[i : i + batch], y[i : i + batch])
    assert s.n_samples_ == 100
    assert s.cka() == pytest.approx(linear_cka(x, y), abs=1e-10)
    assert s.cka(debiased=True) == pytest.approx(linear_cka(x, y, debiased=True), abs=1e-10)


def test_streaming_many_layers_matches_cka_matrix():
    rng = np.random.default_rng(7)
    reps = {name: rng.standard_normal((90, d)) + 2.0 for name, d in (("a", 4), ("b", 9), ("c", 6))}
    reps["c"][:, :3] += reps["a"][:, :3]
    s = StreamingCKA()
    for i in range(0, 90, 16):
        s.update({k: v[i : i + 16] for k, v in reps.items()})
    assert s.labels_ == ["a", "b", "c"]
    for debiased in (False, True):
        np.testing.assert_allclose(
            s.matrix(debiased=debiased), cka_matrix(reps, debiased=debiased), atol=1e-10
        )
    with pytest.raises(ValueError, match="same representations"):
        s.update({"a": reps["a"][:4], "b": reps["b"][:4]})


def test_minibatch_is_the_average_of_per_batch_unbiased_hsic(demo):
    x, y = demo
    got = minibatch_cka(x, y, batch_size=25, shuffle=False)
    num = sum(
        oracle_hsic(x[i : i + 25] @ x[i : i + 25].T, y[i : i + 25] @ y[i : i + 25].T, True)
        for i in range(0, 100, 25)
    )
    kk = sum(oracle_hsic(*(2 * [x[i : i + 25] @ x[i : i + 25].T]), True) for i in range(0, 100, 25))
    ll = sum(oracle_hsic(*(2 * [y[i : i + 25] @ y[i : i + 25].T]), True) for i in range(0, 100, 25))
    assert got == pytest.approx(num / np.sqrt(kk * ll), abs=1e-12)


def test_minibatch_warns_about_short_batches(demo):
    x, y = demo
    s = StreamingCKA().update(x[:10], y[:10]).update(x[10:12], y[10:12])
    with pytest.warns(ExplorerWarning, match="fewer than 4"):
        s.minibatch_cka()


def test_bad_inputs(demo):
    x, y = demo
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(x, y[:50])
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(x[:3], y[:3], debiased=True)
    bad = x.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        linear_cka(bad, y)
    with pytest.raises(ValueError, match="constant across samples"):
        linear_cka(np.ones((10, 3)), y[:10])
    with pytest.raises(ValueError, match="route"):
        linear_cka(x, y, route="fast")
    with pytest.raises(ValueError, match="threshold"):
        rbf_cka(x, y, threshold=0.0)
    with pytest.raises(RuntimeError, match="update"):
        StreamingCKA().cka()
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_cka(x, y, batch_size=2)


def test_conv_maps_pool_explicitly():
    rng = np.random.default_rng(8)
    maps = rng.standard_normal((30, 4, 5, 5))
    flat = linear_cka(maps, maps.reshape(30, -1) @ np.eye(100), pool="flatten")
    assert flat == pytest.approx(1.0, abs=1e-12)
    pooled = linear_cka(maps, maps.mean(axis=(2, 3)), pool="mean")
    assert pooled == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 12),
    d1=st.integers(1, 6),
    d2=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
)
def test_property_cka_bounded_and_symmetric(n, d1, d2, seed, scale):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((n, d1))
    y = rng.standard_normal((n, d2)) + 5.0
    c = linear_cka(x, y)
    assert -1e-12 <= c <= 1.0 + 1e-12
    assert c == pytest.approx(linear_cka(y, x), abs=1e-12)
    assert c == pytest.approx(oracle_cka(x - x.mean(0), y - y.mean(0)), abs=1e-9)
    h = linear_cka(x, y, debiased=True) if np.isfinite(oracle_cka(x, y, True)) else None
    if h is not None:
        assert h == pytest.approx(oracle_cka(x, y, True), abs=1e-8)


def test_upper_tiles_cover_the_upper_triangle_once():
    for n in (1, 5, 9, 64, 130):
        for t in (1, 3, 4, 8, 64):
            cover = np.zeros((n, n), dtype=int)
            for i0, j0, rows, cols in upper_tiles(n, t):
                assert rows > 0 and cols > 0
                cover[i0 : i0 + rows, j0 : j0 + cols] += 1
            upper = np.triu(np.ones((n, n), dtype=bool))
            assert (cover[upper] == 1).all() and cover.max() == 1
            if n >= 2 * t >= 8:  # most of the lower triangle is never computed
                assert cover[~upper].sum() < 0.25 * (~upper).sum()


@pytest.mark.kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_abs_max_bits_is_the_peak_and_flags_every_non_finite_value(dtype):
    ints = np.int32 if dtype == np.float32 else np.int64
    mask = np.iinfo(ints).max  # all bits but the sign
    inf_bits = int(np.array(np.inf, dtype=dtype).view(ints))
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([[-0.0, tiny, -3.5], [2.0, -1e-3, 0.5]], dtype=dtype)

    def peak(a: np.ndarray) -> int:
        return kernels.abs_max_bits(np.ascontiguousarray(a).reshape(-1).view(ints), mask)

    assert np.array(peak(x), dtype=ints).view(dtype) == 3.5
    assert np.array(peak(np.array([[-0.0, tiny]], dtype)), dtype=ints).view(dtype) == tiny
    assert peak(np.zeros((1, 1), dtype)) == 0
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        y = x.copy()
        y[1, 1] = bad
        assert peak(y) >= inf_bits
    if not numba.config.DISABLE_JIT:  # a long array (pure Python would take long)
        big = np.random.default_rng(0).standard_normal((3, (1 << 20) // 2 + 7)).astype(dtype)
        big[2, -1] = -40.0
        assert np.array(peak(big), dtype=ints).view(dtype) == 40.0
        big[0, 3] = np.nan
        assert peak(big) >= inf_bits


def test_float_matrices_are_checked_and_scaled_in_one_pass():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 6))
    y = x @ rng.standard_normal((6, 4)) + 0.3 * rng.standard_normal((50, 4))
    expected = linear_cka(x, y)
    for scale in (1e200, 1e-200):  # squares would overflow / underflow without the rescale
        assert linear_cka(x * scale, y) == pytest.approx(expected, abs=1e-12)
    for dtype in (np.float32, np.float64):
        for bad in (np.nan, -np.inf):
            z = x.astype(dtype)
            z[7, 3] = bad
            with pytest.raises(ValueError, match=r"1 non-finite value\(s\).*index \(7, 3\)"):
                cka_matrix({"a": z, "b": y})
