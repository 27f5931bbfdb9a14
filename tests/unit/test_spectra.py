"""Spectra of signals, images and feature maps: Parseval, tones, power laws, radial averages,
residual spectra, FreSh distance, frequency responses — against analytic values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.analysis import spectra as S
from explorer.analysis.spectra import fourier, response, weights


def tone(n: int, k: float, phase: float = 0.3) -> np.ndarray:
    return np.cos(2 * np.pi * k * np.arange(n) / n + phase)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(4, 97), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_parseval_1d(n: int, batch: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((batch, n)) * 3 + 1
    spec = S.power_spectrum(x)
    assert spec.power.shape == (batch, n // 2 + 1)
    np.testing.assert_allclose(spec.power.sum(-1), (x**2).mean(-1), rtol=1e-12)


def test_pure_tone_lands_on_its_bin_with_half_the_squared_amplitude() -> None:
    spec = S.power_spectrum(2.0 * tone(128, 9), spacing=1 / 128)  # 128 samples per unit
    assert spec.freqs[9] == pytest.approx(9.0)  # cycles per unit
    np.testing.assert_allclose(spec.power[9], 2.0, rtol=1e-12)  # a²/2
    assert np.delete(spec.power, 9).max() < 1e-20


def test_power_law_noise_slope_is_recovered() -> None:
    n, beta = 1024, 1.7
    k = np.arange(1, n // 2)
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, k.size)
    x = (
        k[:, None] ** (-beta / 2)
        * np.cos(2 * np.pi * k[:, None] * np.arange(n) / n + phases[:, None])
    ).sum(0)
    spec = S.power_spectrum(x)
    slope = np.polyfit(np.log(spec.freqs[1:-1]), np.log(spec.power[1:-1]), 1)[0]
    assert slope == pytest.approx(-beta, abs=1e-6)


def test_radial_spectrum_puts_a_plane_wave_on_its_ring() -> None:
    n = 64
    yy, xx = np.mgrid[:n, :n]
    img = np.cos(2 * np.pi * (3 * xx + 4 * yy) / n)  # radius 5 cycles per image
    ring = S.radial_power_spectrum(img, statistic="sum")
    assert ring.power.shape == (n // 2 + 1,)
    assert ring.freqs[5] == pytest.approx(5 / n)
    np.testing.assert_allclose(ring.power[5], 0.5, rtol=1e-12)
    assert np.delete(ring.power, 5).max() < 1e-20


def test_radial_average_of_a_gaussian_matches_its_analytic_spectrum() -> None:
    n, s = 128, 3.0
    yy, xx = np.mgrid[:n, :n] - n // 2
    img = np.exp(-(xx**2 + yy**2) / (2 * s**2))
    spec = S.radial_power_spectrum(img)
    f, p = spec.freqs[1:20], spec.power[1:20]
    # |FT|² of a Gaussian of width s is ∝ exp(-4π² s² f²): log power is linear in f²
    slope = np.polyfit(f**2, np.log(p), 1)[0]
    assert slope == pytest.approx(-4 * np.pi**2 * s**2, rel=0.03)


def test_band_limited_image_satisfies_parseval_through_rings() -> None:
    rng = np.random.default_rng(1)
    img = sum(
        rng.normal()
        * np.cos(
            2 * np.pi * (a * np.arange(32)[:, None] + b * np.arange(32)) / 32 + rng.uniform(0, 6)
        )
        for a, b in [(1, 2), (3, 0), (5, 7), (0, 9)]
    )
    ring = S.radial_power_spectrum(img, statistic="sum")
    np.testing.assert_allclose(ring.power.sum(), (img**2).mean(), rtol=1e-12)


def test_band_power_and_high_frequency_share() -> None:
    x = np.stack([tone(64, 2), tone(64, 30), tone(64, 2) + tone(64, 30)])
    spec = S.power_spectrum(x)
    bands = S.band_power(spec, 4)
    assert bands.edges is not None and bands.edges.size == 5
    np.testing.assert_allclose(bands.power.sum(-1), spec.power.sum(-1), rtol=1e-12)
    np.testing.assert_allclose(S.high_frequency_share(spec, 0.5), [0.0, 1.0, 0.5], atol=1e-12)
    centroid = S.spectral_centroid(spec)
    np.testing.assert_allclose(centroid, [2 / 32, 30 / 32, 16 / 32], atol=1e-12)


def test_residual_spectrum_sums_to_relative_error_and_tracks_history() -> None:
    target = tone(128, 3) + 0.5 * tone(128, 40)
    history = np.stack([np.zeros(128), tone(128, 3), target])  # learns low, then high
    res = S.residual_spectrum(history, target)
    assert res.kind == "residual" and res.power.shape == (3, 65)
    rel = ((history - target) ** 2).sum(-1) / (target**2).sum()
    np.testing.assert_allclose(res.power.sum(-1), rel, atol=1e-12)
    assert res.power[1, 3] < 1e-20 < res.power[1, 40]  # low frequency fitted first
    img_t = np.random.default_rng(0).standard_normal((16, 16))
    res2 = S.residual_spectrum(np.zeros((2, 16, 16)), img_t, ndim=2)
    assert res2.power.shape == (2, 9) and np.all(res2.power.sum(-1) <= 1 + 1e-12)


def test_spectrum_distance_properties() -> None:
    low, high, mix = tone(128, 2), tone(128, 60), tone(128, 2) + tone(128, 60)
    assert S.spectrum_distance(low, low) == pytest.approx(0.0, abs=1e-12)
    assert S.spectrum_distance(5 * low, low) == pytest.approx(0.0, abs=1e-12)  # scale-invariant
    d = S.spectrum_distance(np.stack([low, mix, high]), high)
    assert d[0] == pytest.approx((60 - 2) / 63, abs=1e-9)  # all mass moved 58 of 63 steps
    assert d[0] > d[1] > d[2] == pytest.approx(0.0, abs=1e-12)
    assert S.spectrum_distance(low, high) == pytest.approx(S.spectrum_distance(high, low))
    _, xx = np.mgrid[:32, :32]
    img_lo, img_hi = np.cos(2 * np.pi * xx / 32), np.cos(2 * np.pi * 12 * xx / 32)
    assert S.spectrum_distance(img_lo, img_hi, ndim=2) > 0.5


def test_feature_map_spectra_layouts() -> None:
    rng = np.random.default_rng(0)
    smooth = np.cos(2 * np.pi * np.arange(16) / 16)
    rough = np.cos(np.pi * np.arange(16))
    conv = np.stack([np.add.outer(smooth, smooth), np.add.outer(rough, rough)])[
        None
    ]  # (1, 2, 16, 16)
    spec = S.feature_map_spectra(np.repeat(conv, 3, 0) + 0 * rng.standard_normal((3, 2, 16, 16)))
    assert spec.power.shape == (2, 9)
    share = S.high_frequency_share(spec, 0.5)
    assert share[0] == pytest.approx(0.0, abs=1e-12) and share[1] > 0.99
    # ViT tokens: CLS + 16 patches on a 4x4 grid, channel = row of maps → same spectra as conv
    maps = rng.standard_normal((2, 3, 4, 4))
    tokens = np.concatenate(
        [rng.standard_normal((2, 1, 3)), maps.reshape(2, 3, 16).transpose(0, 2, 1)], 1
    )
    np.testing.assert_allclose(
        S.feature_map_spectra(tokens, grid=(4, 4)).power,
        S.feature_map_spectra(maps).power,
        rtol=1e-12,
    )
    # coordinate network (N, D): spectra along the N grid points
    acts = np.stack([smooth, rough], 1)  # (16, 2)
    np.testing.assert_allclose(
        S.high_frequency_share(S.feature_map_spectra(acts)), [0.0, 1.0], atol=1e-12
    )
    frame = S.layer_spectra_frame(S.layer_spectra({"a": conv, "b": torch.as_tensor(acts)}))
    assert list(frame.columns) == ["layer", "metric", "value"]
    assert set(frame.metric) == {"hf_share", "hf_share_std", "centroid"}


def test_frequency_responses() -> None:
    gain = S.kernel_frequency_response(np.array([0.5, 0.5]), n_fft=64)
    np.testing.assert_allclose(gain.power, np.abs(np.cos(np.pi * gain.freqs)), atol=1e-12)
    box = S.kernel_frequency_response(np.ones((3, 3)) / 9, ndim=2, n_fft=32)
    assert box.power[0] == pytest.approx(1.0) and box.power[-1] < 0.5
    t = 16
    ident = S.mixing_frequency_response(np.eye(t))
    np.testing.assert_allclose(ident.power, 1.0, atol=1e-12)
    mean = S.mixing_frequency_response(np.full((t, t), 1 / t))
    np.testing.assert_allclose(mean.power, np.r_[1.0, np.zeros(t // 2)], atol=1e-12)
    kern = np.zeros(t)
    kern[[0, 1, t - 1]] = [0.5, 0.25, 0.25]  # circulant smoother
    circ = np.stack([np.roll(kern, i) for i in range(t)])
    np.testing.assert_allclose(
        S.mixing_frequency_response(circ).power, np.abs(np.fft.rfft(kern)), atol=1e-12
    )


@pytest.fixture
def torch_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the torch path (used on CUDA) on CPU tensors."""
    for mod in (fourier, response, weights):
        monkeypatch.setattr(mod, "engine_for", lambda *a, **k: "torch")


def test_numpy_and_torch_paths_agree(torch_engine: None) -> None:
    rng = np.random.default_rng(3)
    x, img = rng.standard_normal((2, 50)), rng.standard_normal((2, 3, 20, 24))
    mix, w = rng.random((2, 12, 12)), rng.standard_normal((3, 20, 30))
    got = {
        "p1": S.power_spectrum(x).power,
        "radial": S.radial_power_spectrum(img).power,
        "dist": S.spectrum_distance(img, img[0, 0], ndim=2),
        "dist1": S.spectrum_distance(x, x[0]),
        "mix": S.mixing_frequency_response(mix).power,
        "kern": S.kernel_frequency_response(img[0], ndim=2, n_fft=32).power,
        "sv": S.singular_values(w),
    }
    for mod in (fourier, response, weights):
        mod.engine_for = lambda *a, **k: "numpy"  # type: ignore[attr-defined]
    want = {
        "p1": S.power_spectrum(x).power,
        "radial": S.radial_power_spectrum(img).power,
        "dist": S.spectrum_distance(img, img[0, 0], ndim=2),
        "dist1": S.spectrum_distance(x, x[0]),
        "mix": S.mixing_frequency_response(mix).power,
        "kern": S.kernel_frequency_response(img[0], ndim=2, n_fft=32).power,
        "sv": S.singular_values(w),
    }
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-10, atol=1e-14, err_msg=key)


def test_torch_inputs_are_accepted() -> None:
    x = torch.randn(2, 32)
    np.testing.assert_allclose(
        S.power_spectrum(x).power, S.power_spectrum(x.numpy()).power, rtol=1e-6
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: S.power_spectrum(np.array([1.0, np.nan, 2, 3, 4])), "non-finite"),
        (lambda: S.power_spectrum(np.ones(3)), "at least 4"),
        (lambda: S.power_spectrum(np.ones(8), spacing=0), "spacing"),
        (lambda: S.power_spectrum(np.array(["a"] * 8)), "real numbers"),
        (lambda: S.radial_power_spectrum(np.ones(16)), "height, width"),
        (lambda: S.radial_power_spectrum(np.ones((8, 8)), statistic="max"), "statistic"),
        (lambda: S.residual_spectrum(np.ones(8), np.ones(9)), "share their last"),
        (lambda: S.residual_spectrum(np.ones(8), np.zeros(8)), "identically zero"),
        (lambda: S.residual_spectrum(np.ones(8), np.ones(8), ndim=3), "ndim must be"),
        (lambda: S.spectrum_distance(np.ones(8), tone(8, 1)), "constant signal"),
        (lambda: S.high_frequency_share(S.power_spectrum(np.ones(8)), 1.5), "cutoff"),
        (lambda: S.band_power(S.power_spectrum(np.ones(8)), 0), "n_bands"),
        (lambda: S.feature_map_spectra(np.ones((2, 3, 4, 5, 6))), "activations must be"),
        (lambda: S.feature_map_spectra(np.ones((2, 10, 3)), grid=(4, 4)), "does not fit"),
        (lambda: S.layer_spectra({}), "non-empty"),
        (lambda: S.mixing_frequency_response(np.ones((2, 8, 9))), "square"),
        (lambda: S.kernel_frequency_response(np.ones(40), n_fft=32), "shorter than"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, TypeError), match=match):
        call()
