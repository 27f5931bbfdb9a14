"""CCA family, shape metrics, RSA, neighbourhood alignment, relative representations,
predictivity, and the tidy comparison API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import pdist

import explorer.analysis.alignment as al
from explorer.analysis import pool_features
from explorer.errors import ExplorerWarning


@pytest.fixture
def demo() -> tuple[np.ndarray, np.ndarray]:
    np.random.seed(1337)  # noqa: NPY002 - the published values use legacy RandomState
    x = np.random.randn(100, 10)  # noqa: NPY002
    y = np.random.randn(100, 10) + x  # noqa: NPY002
    return x, y


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def test_mean_squared_cca_reference(demo):
    x, y = demo
    assert al.cca_similarity(x, y, summary="mean_rho2", centre=False) == pytest.approx(
        0.54312, abs=5e-6
    )


def test_cca_against_scipy_oracle(demo):
    x, y = demo
    xc, yc = x - x.mean(0), y - y.mean(0)
    qx, qy = np.linalg.qr(xc)[0], np.linalg.qr(yc)[0]
    rho = np.linalg.svd(qx.T @ qy, compute_uv=False)
    np.testing.assert_allclose(al.canonical_correlations(x, y), rho, atol=1e-12)
    assert al.cca_similarity(x, y) == pytest.approx(rho.mean(), abs=1e-12)


def test_cca_invariant_to_invertible_maps_cka_is_not(demo, rng):
    x, y = demo
    a = rng.standard_normal((10, 10)) @ np.diag(np.logspace(0, 2, 10))
    assert al.cca_similarity(x @ a + 3.0, y) == pytest.approx(al.cca_similarity(x, y), abs=1e-12)
    assert al.svcca(x, y, keep=10) == pytest.approx(al.cca_similarity(x, y), abs=1e-12)
    assert abs(al.linear_cka(x @ a, y) - al.linear_cka(x, y)) > 1e-3


def test_cca_rejects_d_at_least_n_and_warns_on_rank_deficiency(rng):
    with pytest.raises(ValueError, match="saturates"):
        al.cca_similarity(rng.standard_normal((10, 9)), rng.standard_normal((10, 3)))
    x = rng.standard_normal((40, 5))
    x[:, 4] = 2.0  # constant feature
    with pytest.warns(ExplorerWarning, match="rank 4"):
        rho = al.canonical_correlations(x, x[:, :4])
    np.testing.assert_allclose(rho, 1.0, atol=1e-12)


def test_svcca_truncation_rules(rng):
    x = rng.standard_normal((200, 6)) * np.array([10.0, 5, 1, 0.1, 0.1, 0.1])
    y = x @ rng.standard_normal((6, 6))
    # Σσ² reaches 99% after 2 components; Σσ needs more: the rules differ
    assert al.svcca(x, y, keep=0.99, rule="variance") != pytest.approx(
        al.svcca(x, y, keep=0.99, rule="singular"), abs=1e-6
    )
    with pytest.raises(ValueError, match="keep"):
        al.svcca(x, y, keep=1.5)
    with pytest.raises(ValueError, match="rule"):
        al.svcca(x, y, rule="energy")


def test_pwcca_unequal_widths_and_weights(rng):
    x = rng.standard_normal((300, 12))
    y = np.concatenate([x[:, :3], rng.standard_normal((300, 2))], axis=1)
    p = al.pwcca(x, y)
    rho = al.canonical_correlations(x, y)
    assert rho.size == 5 and 0.0 <= p <= 1.0
    assert min(rho) - 1e-12 <= p <= max(rho) + 1e-12
    assert al.pwcca(x, x @ rng.standard_normal((12, 12))) == pytest.approx(1.0, abs=1e-10)


def test_shape_metric_invariances(demo, rng):
    x, y = demo
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert al.procrustes_distance(x, 2.5 * x @ q + 7.0) == pytest.approx(0.0, abs=1e-12)
    assert al.procrustes_distance(x, 2.5 * x @ q + 7.0, kind="euclidean") == pytest.approx(
        0.0, abs=1e-12
    )
    assert np.cos(al.procrustes_distance(x, y)) == pytest.approx(
        al.bures_similarity(x, y), abs=1e-12
    )
    # α = 0 whitens both sides: the angular distance becomes arccos of mean CCA ρ
    assert al.procrustes_distance(x, y, alpha=0.0) == pytest.approx(
        np.arccos(al.cca_similarity(x, y)), abs=1e-10
    )
    # unequal widths are zero-padded: embedding in more dimensions changes nothing
    assert al.procrustes_distance(x, np.pad(x, ((0, 0), (0, 5)))) == pytest.approx(0.0, abs=1e-12)


def test_procrustes_is_a_metric(rng):
    a, b, c = (rng.standard_normal((30, 4)) for _ in range(3))
    ab, bc, ac = (
        al.procrustes_distance(a, b),
        al.procrustes_distance(b, c),
        al.procrustes_distance(a, c),
    )
    assert ac <= ab + bc + 1e-12
    assert ab == pytest.approx(al.procrustes_distance(b, a), abs=1e-12)


def test_procrustes_wide_matches_narrow_route(rng):
    x, y = rng.standard_normal((12, 40)), rng.standard_normal((12, 30))
    xr = np.linalg.qr((x - x.mean(0)).T, mode="r").T
    assert al.procrustes_distance(x, y) == pytest.approx(al.procrustes_distance(xr, y), abs=1e-12)


def test_permutation_metric(demo, rng):
    x, y = demo
    perm = rng.permutation(10)
    assert al.permutation_distance(x, x[:, perm] * 3.0 + 1.0) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(al.match_units(x[:, perm], x), perm)
    assert al.permutation_distance(x, y) >= al.procrustes_distance(x, y) - 1e-12
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert al.permutation_distance(x, x @ q) > 0.1  # rotations are not permutations


def test_aligned_projection_coincides_for_rotated_copies(demo, rng):
    x, _ = demo
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    px, py = al.aligned_projection(x, 4.0 * x @ q + 2.0)
    assert px.shape == (100, 2)
    np.testing.assert_allclose(px, py, atol=1e-12)


def test_rsa_matches_scipy(demo):
    x, y = demo
    for metric in ("correlation", "euclidean", "sqeuclidean", "cosine"):
        ref = stats.spearmanr(pdist(x, metric), pdist(y, metric))[0]
        assert al.rsa(x, y, metric=metric) == pytest.approx(ref, abs=1e-12)
    ref = stats.pearsonr(pdist(x, "euclidean"), pdist(y, "euclidean"))[0]
    assert al.rsa(x, y, metric="euclidean", compare="pearson") == pytest.approx(ref, abs=1e-12)
    d = al.rdm(x)
    assert d.shape == (100, 100) and np.allclose(np.diag(d), 0.0)
    # squared and plain Euclidean RDMs have the same ranks, not the same Pearson r
    assert al.rsa(x, y, metric="sqeuclidean") == pytest.approx(
        al.rsa(x, y, metric="euclidean"), abs=1e-12
    )


def test_rsa_rejects_constant_rows(demo):
    x, y = demo
    x = x.copy()
    x[3] = 1.0
    with pytest.raises(ValueError, match="constant row"):
        al.rsa(x, y)


def full_argsort_knn(x: np.ndarray, k: int) -> np.ndarray:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_mutual_knn_matches_full_argsort(demo):
    x, y = demo
    k = 7
    ia, ib = full_argsort_knn(x, k), full_argsort_knn(y, k)
    ref = np.mean([len(set(ia[i]) & set(ib[i])) / k for i in range(100)])
    assert al.mutual_knn(x, y, k=k) == pytest.approx(ref, abs=1e-12)
    np.testing.assert_array_equal(np.sort(al.cosine_knn(x, k), 1), np.sort(ia, 1))
    assert al.mutual_knn(x, 5.0 * x, k=k) == 1.0


def dense_cknna(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Oracle: the same definition on dense n × n masks."""
    n = len(x)
    ux = x / np.linalg.norm(x, axis=1, keepdims=True)
    uy = y / np.linalg.norm(y, axis=1, keepdims=True)
    kx, ly = ux @ ux.T, uy @ uy.T
    mx, my = np.zeros((n, n)), np.zeros((n, n))
    np.put_along_axis(mx, full_argsort_knn(x, k), 1.0, 1)
    np.put_along_axis(my, full_argsort_knn(y, k), 1.0, 1)

    def hsic(a, b):
        one = np.ones(n)
        v = (a * b).sum() + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
        v -= 2.0 * (a @ one) @ (b @ one) / (n - 2)
        return v / (n * (n - 3))

    m = mx * my
    return hsic(m * kx, m * ly) / np.sqrt(hsic(mx * kx, mx * kx) * hsic(my * ly, my * ly))


def test_cknna_matches_dense_oracle_and_reduces_to_debiased_cka(demo):
    x, y = demo
    assert al.cknna(x, y, k=10) == pytest.approx(dense_cknna(x, y, 10), abs=1e-12)
    ux = x / np.linalg.norm(x, axis=1, keepdims=True)
    uy = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert al.cknna(x, y, k=99) == pytest.approx(al.linear_cka(ux, uy, debiased=True), abs=1e-12)


def test_neighbour_bad_inputs(demo):
    x, y = demo
    with pytest.raises(ValueError, match="k=100"):
        al.mutual_knn(x, y, k=100)
    z = x.copy()
    z[4] = 0.0
    with pytest.raises(ValueError, match="all-zero row"):
        al.mutual_knn(z, y)


def test_relative_representation_invariant_to_rotation_and_scale(demo, rng):
    x, _ = demo
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    anchors = x[:12]
    r1 = al.relative_representation(x, anchors)
    r2 = al.relative_representation(3.0 * x @ q, 3.0 * anchors @ q)
    np.testing.assert_allclose(r1, r2, atol=1e-12)
    assert r1.shape == (100, 12) and np.abs(r1).max() <= 1.0 + 1e-12
    with pytest.raises(ValueError, match="same latent space"):
        al.relative_representation(x, anchors[:, :5])


def test_zero_shot_stitching_relative_beats_absolute(rng):
    n = 600
    labels = rng.integers(0, 3, n)
    centres = rng.standard_normal((3, 8)) * 3.0
    za = centres[labels] + rng.standard_normal((n, 8))
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    zb = 2.0 * za @ q  # another "seed": rotated and rescaled
    frame = al.zero_shot_stitching(za, zb, labels, anchors=32, seed=0)
    score = frame.set_index(["space", "metric"])["value"]
    assert score["relative", "stitching_score"] == pytest.approx(1.0, abs=1e-9)
    assert score["absolute", "stitching_score"] < 0.8
    assert list(frame.columns) == ["space", "metric", "value"]


def test_zero_shot_stitching_centred_survives_a_shift(rng):
    n = 600
    labels = rng.integers(0, 3, n)
    za = rng.standard_normal((3, 8))[labels] * 3.0 + rng.standard_normal((n, 8))
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    zb = 2.0 * za @ q  # rotated and rescaled …
    za = za + 10.0 * rng.standard_normal(8)  # … and A shifted far from the origin

    def score(centre: bool) -> float:
        frame = al.zero_shot_stitching(za, zb, labels, anchors=32, seed=0, centre=centre)
        return float(frame.set_index(["space", "metric"])["value"]["relative", "stitching_score"])

    assert score(True) == pytest.approx(1.0, abs=1e-9)
    assert score(False) < 0.9  # plain cosine is not translation invariant (0.33–0.82 over 6 draws)
    with pytest.raises(TypeError, match="centre"):
        al.zero_shot_stitching(za, zb, labels, centre="yes")


def test_linear_predictivity_and_linearity(rng):
    x = rng.standard_normal((200, 6))
    y = x @ rng.standard_normal((6, 4)) + 0.01 * rng.standard_normal((200, 4))
    assert al.linear_predictivity(x, y) > 0.99
    assert al.linear_predictivity(x, rng.standard_normal((200, 4))) < 0.1
    assert al.linearity_score(x, y) > 0.99
    assert al.linearity_score(x, np.tanh(3 * x[:, :1]) ** 2) < 0.5
    with pytest.raises(ValueError, match="too few"):
        al.linear_predictivity(x[:6], y[:6])


def test_similarity_matrix_and_tidy_compare(demo):
    x, y = demo
    reps = {"in": x, "out": y}
    for metric in ("rbf_cka", "cca", "bures", "rsa", "mutual_knn", "procrustes", "pwcca"):
        m = al.similarity_matrix(reps, metric=metric)
        assert m.shape == (2, 2)
        assert m[0, 1] == pytest.approx(al.METRICS[metric].fn(x, y), abs=1e-12)
    frame = al.compare(
        reps, {"other": y}, metrics=["cka", "cca"], model_a="seed0", model_b="seed1", step=5
    )
    assert list(frame.columns) == [
        "model_a",
        "layer_a",
        "model_b",
        "layer_b",
        "step",
        "metric",
        "value",
    ]
    assert len(frame) == 4
    row = frame[(frame.layer_a == "in") & (frame.metric == "cka")]
    assert row.value.item() == pytest.approx(al.linear_cka(x, y), abs=1e-12)
    with pytest.raises(ValueError, match="unknown metric"):
        al.similarity_matrix(reps, metric="cosine")


def test_layer_representations_from_a_capture_like_mapping(rng):
    acts = {
        "blocks.0.hook_resid_post": rng.standard_normal((8, 5, 4)),
        "conv": rng.standard_normal((8, 3, 2, 2)),
    }
    reps = al.layer_representations(acts, pool="mean")
    assert reps["blocks.0.hook_resid_post"].shape == (8, 4) and reps["conv"].shape == (8, 3)
    with pytest.raises(KeyError, match="not found"):
        al.layer_representations(acts, ["nope"])
    with pytest.raises(ValueError, match="token sequences"):
        pool_features(acts["conv"], "cls")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(8, 20), d=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_property_shape_and_cca_bounds(n, d, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d + 1))
    assert 0.0 <= al.procrustes_distance(x, y) <= np.pi / 2 + 1e-12
    assert 0.0 <= al.bures_similarity(x, y) <= 1.0
    rho = al.canonical_correlations(x, y)
    assert np.all((rho >= 0) & (rho <= 1)) and np.all(np.diff(rho) <= 1e-12)


def test_partial_whitening_procrustes_does_not_depend_on_the_data_scale(rng):
    x = rng.standard_normal((40, 5)) * np.linspace(0.5, 3, 5)
    y = x @ rng.standard_normal((5, 4)) + rng.standard_normal((40, 4))
    for alpha in (0.0, 0.3, 0.5, 0.9, 1.0):
        d = al.procrustes_distance(x, y, alpha=alpha)
        assert al.procrustes_distance(10 * x, y, alpha=alpha) == pytest.approx(d, abs=1e-12)
        assert al.procrustes_distance(x, 0.01 * y + 3, alpha=alpha) == pytest.approx(d, abs=1e-12)


def _released_cknna(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Dense reference of the authors' released CKNNA (the textbook matrix formula of the
    unbiased HSIC on masked cosine kernels, +1e-6 in the denominator)."""

    def kernel(a: np.ndarray) -> np.ndarray:
        u = a / np.linalg.norm(a, axis=1, keepdims=True)
        return u @ u.T

    def knn_mask(g: np.ndarray) -> np.ndarray:
        g = g.copy()
        np.fill_diagonal(g, -np.inf)
        mask = np.zeros_like(g)
        np.put_along_axis(mask, np.argsort(-g, axis=1)[:, :k], 1.0, axis=1)
        return mask

    def hsic(kk: np.ndarray, ll: np.ndarray) -> float:
        n = len(kk)
        kt, lt = kk.copy(), ll.copy()
        np.fill_diagonal(kt, 0.0)
        np.fill_diagonal(lt, 0.0)
        value = (kt * lt.T).sum() + kt.sum() * lt.sum() / ((n - 1) * (n - 2))
        return (value - 2 * (kt @ lt).sum() / (n - 2)) / (n * (n - 3))

    kx, ly = kernel(x), kernel(y)
    mk, ml = knn_mask(kx), knn_mask(ly)
    both = mk * ml
    return hsic(both * kx, both * ly) / (
        np.sqrt(hsic(mk * kx, mk * kx) * hsic(ml * ly, ml * ly)) + 1e-6
    )


def test_cknna_offers_the_released_variant_by_name(rng):
    x = rng.standard_normal((60, 6))
    y = x @ rng.standard_normal((6, 5)) + 0.8 * rng.standard_normal((60, 5))
    released = al.cknna(x, y, k=8, variant="released")
    assert released == pytest.approx(_released_cknna(x, y, 8), abs=1e-10)
    paper = al.cknna(x, y, k=8)
    assert abs(paper - released) > 1e-3  # asymmetric masks: the two formulas differ
    with pytest.raises(ValueError, match="variant"):
        al.cknna(x, y, variant="authors")
