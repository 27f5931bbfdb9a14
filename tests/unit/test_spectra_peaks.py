"""Repeated spectral peaks left by upsampling: zero insertion copies a spectrum exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis.spectra import mean_power_2d, repeated_peak_prominence


def _zero_insert(x: np.ndarray) -> np.ndarray:
    out = np.zeros((*x.shape[:-2], 2 * x.shape[-2], 2 * x.shape[-1]))
    out[..., ::2, ::2] = x
    return out


def test_mean_power_is_parseval_normalised_and_averages_leading_axes() -> None:
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 8)) + 0.5
    p = mean_power_2d(x)
    assert p.shape == (8, 8)
    np.testing.assert_allclose(p.sum(), (x**2).mean(), rtol=1e-12)
    np.testing.assert_allclose(mean_power_2d(torch.from_numpy(x)), p, rtol=1e-12)


def test_zero_insertion_copies_the_spectrum_onto_the_lattice() -> None:
    x = np.random.default_rng(1).random((4, 16, 16))  # positive: a strong mean
    up = _zero_insert(x)
    p_small, p_up = mean_power_2d(x), mean_power_2d(up)
    for a in (0, 16):
        for b in (0, 16):
            np.testing.assert_allclose(p_up[a : a + 16, b : b + 16], p_small / 16, rtol=1e-10)
    assert repeated_peak_prominence(up, 2) > 1.0  # the mean's copies stand 10× above neighbours
    assert repeated_peak_prominence(_zero_insert(up), 4) > 1.0


def test_white_noise_and_smooth_maps_have_no_lattice_peaks() -> None:
    noise = np.random.default_rng(2).standard_normal((64, 32, 32))
    assert abs(repeated_peak_prominence(noise, 2)) < 0.1
    yy, xx = np.mgrid[:32, :32] / 32
    smooth = np.cos(2 * np.pi * (xx + yy)) + 2.0  # one low tone and a mean, nothing repeated
    assert repeated_peak_prominence(smooth[None], 4) < 0.1


@pytest.mark.parametrize(("shape", "copies"), [((8, 8), 8), ((12, 8), 8), ((8, 8), 1)])
def test_lattice_must_fit_the_map(shape, copies) -> None:
    with pytest.raises(ValueError, match="copies"):
        repeated_peak_prominence(np.ones(shape), copies)


def test_bad_maps_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        repeated_peak_prominence(np.full((8, 8), np.nan), 2)
    with pytest.raises(ValueError, match="height, width"):
        mean_power_2d(np.ones(8))
