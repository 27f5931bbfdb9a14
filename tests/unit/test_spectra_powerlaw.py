"""Power-law tail fits (Clauset xmin selection, KS distance, bootstrap p) and weight spectra.

Stated tolerance: on ESDs of synthetic matrices whose tail has n_tail ≥ 300 eigenvalues from a
Pareto law, the fitted alpha is within 0.25 of the truth (≈ 3 standard errors (alpha−1)/√n_tail
at alpha = 4) and xmin lies in [0.8, 1.6] for a true tail start of 1 (xmin is the noisiest
part of a Clauset fit; starting a little inside the tail is still a correct power law).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from explorer.analysis import spectra as S
from explorer.errors import ExplorerWarning
from explorer.kernels.spectra import powerlaw_xmin_scan


def pareto(n: int, alpha: float, xmin: float, rng: np.random.Generator) -> np.ndarray:
    return xmin * (1 - rng.random(n)) ** (-1 / (alpha - 1))


def matrix_with_esd(lam: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, len(lam)) matrix whose WᵀW has eigenvalues ``lam``."""
    u, _ = np.linalg.qr(rng.standard_normal((rows, lam.size)))
    v, _ = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
    return (u * np.sqrt(lam)) @ v.T


def oracle_scan(x: np.ndarray, min_tail: int) -> tuple[np.ndarray, np.ndarray]:
    n = x.size
    alphas, ks = np.full(n, np.nan), np.full(n, np.inf)
    for i in range(n - min_tail + 1):
        if i and x[i] == x[i - 1]:
            continue
        tail = x[i:]
        m = tail.size
        a = 1 + m / np.log(tail / x[i]).sum()
        cdf = 1 - (tail / x[i]) ** (1 - a)
        ks[i] = max(
            np.abs(cdf - np.arange(m) / m).max(), np.abs(np.arange(1, m + 1) / m - cdf).max()
        )
        alphas[i] = a
    return alphas, ks


@pytest.mark.kernels
def test_xmin_scan_matches_a_numpy_oracle() -> None:
    rng = np.random.default_rng(0)
    x = np.sort(np.r_[rng.random(20), pareto(30, 2.5, 1.0, rng), [2.0, 2.0]])
    alphas, ks = powerlaw_xmin_scan(x, 5)
    want_a, want_ks = oracle_scan(x, 5)
    np.testing.assert_allclose(alphas, want_a, rtol=1e-12)
    np.testing.assert_allclose(ks, want_ks, rtol=1e-12)


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.0])  # statistics; the kernel is covered above
def test_alpha_and_xmin_recovered_from_a_synthetic_power_law_matrix(alpha: float) -> None:
    rng = np.random.default_rng(int(alpha * 10))
    lam = np.r_[rng.uniform(0.05, 1.0, 100), pareto(300, alpha, 1.0, rng)]
    w = matrix_with_esd(lam, 500, rng)
    ev = S.esd(w)
    np.testing.assert_allclose(np.sort(ev), np.sort(lam), rtol=1e-8)
    fit = S.fit_power_law(ev)
    assert fit.alpha == pytest.approx(alpha, abs=0.25)
    assert 0.8 <= fit.xmin <= 1.6  # near the true tail start, never inside the bulk
    assert fit.ks_distance < 0.06
    assert fit.sigma == pytest.approx((fit.alpha - 1) / np.sqrt(fit.n_tail))


@pytest.mark.kernels
def test_bootstrap_p_value_separates_power_law_from_exponential() -> None:
    rng = np.random.default_rng(5)
    good = S.fit_power_law(pareto(200, 2.5, 1.0, rng), n_bootstrap=30, seed=1)
    bad = S.fit_power_law(rng.uniform(1.0, 2.0, 200), min_tail=50, n_bootstrap=30, seed=1)
    assert good.p_value >= 0.1
    assert bad.p_value < 0.1


def test_fixed_xmin_and_pdf_normalisation() -> None:
    rng = np.random.default_rng(2)
    x = np.r_[rng.uniform(0.1, 1, 50), pareto(150, 3.0, 1.0, rng)]
    fit = S.fit_power_law(x, xmin=1.0)
    assert fit.xmin >= 1.0 and fit.n_tail == int((x >= fit.xmin).sum())
    grid = np.geomspace(fit.xmin, fit.xmin * 1e6, 200001)
    mass = np.trapezoid(fit.pdf(grid), grid)
    assert mass == pytest.approx(fit.n_tail / fit.n, rel=1e-3)
    assert fit.pdf(np.array([fit.xmin / 2]))[0] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": np.ones(5)}, "at least"),
        ({"values": np.r_[np.ones(20), np.nan]}, "non-finite"),
        ({"values": np.ones(30)}, "no candidate xmin"),
        ({"values": np.arange(1.0, 31), "xmin": 29.0}, "min_tail"),
        ({"values": np.arange(1.0, 31), "min_tail": 1}, "min_tail"),
        ({"values": np.arange(1.0, 31), "n_bootstrap": -1}, "n_bootstrap"),
    ],
)
def test_power_law_bad_inputs(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        S.fit_power_law(**kwargs)


def test_singular_values_and_stable_rank_reference() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 40, 25))
    np.testing.assert_allclose(S.singular_values(w)[1], scipy.linalg.svdvals(w[1]), rtol=1e-12)
    m = S.esd_metrics(np.array([3.0, 2.0, 1.0]) ** 2)
    assert m["stable_rank"] == pytest.approx(1.5556, abs=1e-4)  # metrics.md reference
    assert m["spectral_norm"] == pytest.approx(3.0) and m["lambda_max"] == pytest.approx(9.0)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    with pytest.warns(ExplorerWarning, match="cannot be fitted"):  # NaN, but never silently
        assert np.isnan(S.esd_metrics(S.esd(q))["alpha"])  # orthogonal: all λ = 1, nothing to fit


def test_weight_matrices_selection_and_layout() -> None:
    model = nn.Sequential(
        nn.Embedding(50, 16), nn.Linear(16, 32), nn.Conv2d(4, 12, 3), nn.Linear(32, 4)
    )
    mats = S.weight_matrices(model)
    assert list(mats) == ["1", "2"]  # embedding excluded, 4-wide head below min_dim
    assert tuple(mats["2"].shape) == (12, 36)  # conv (out, in·kh·kw)
    assert list(S.weight_matrices(model, embeddings=True, exclude=["2"])) == ["0", "1"]
    assert list(S.weight_matrices(model, include=["3"], min_dim=2)) == ["3"]
    arrays = S.weight_matrices({"a": np.ones((20, 20)), "b": np.ones(20)})
    assert list(arrays) == ["a"]
    with pytest.raises(TypeError, match="Module or a mapping"):
        S.weight_matrices([np.ones((20, 20))])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no weight matrix"):
        S.layer_esds(model, include=["nothing*"])


def test_weight_spectra_frame_matches_per_layer_metrics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.Linear(64, 128))
    df = S.weight_spectra(model)
    assert list(df.columns) == ["layer", "shape", "metric", "value"]
    wide = df.pivot(index="layer", columns="metric", values="value")
    assert list(wide.index) == ["0", "2", "3"]
    lam = np.linalg.svd(model[2].weight.detach().double().numpy(), compute_uv=False) ** 2
    want = S.esd_metrics(lam)
    for key in ("alpha", "stable_rank", "ks_distance", "lambda_max"):
        assert wide.loc["2", key] == pytest.approx(want[key], rel=1e-9)
    esds = S.layer_esds(model)  # equal shapes go through one batched SVD
    np.testing.assert_allclose(
        esds["0"],
        np.linalg.svd(model[0].weight.detach().double().numpy(), compute_uv=False) ** 2,
        rtol=1e-10,
    )
