"""CUDA parity of the spectral lens: torch.fft / torch.linalg on the GPU vs numpy on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import spectra as S

pytestmark = pytest.mark.cuda


def test_fft_spectra_match_cpu() -> None:
    rng = np.random.default_rng(0)
    x, img, mix = (
        rng.standard_normal((3, 100)),
        rng.standard_normal((2, 4, 32, 40)),
        rng.random((3, 16, 16)),
    )
    pairs = [
        (S.power_spectrum(torch.as_tensor(x, device="cuda")).power, S.power_spectrum(x).power),
        (
            S.radial_power_spectrum(torch.as_tensor(img, device="cuda")).power,
            S.radial_power_spectrum(img).power,
        ),
        (
            S.feature_map_spectra(torch.as_tensor(img, device="cuda")).power,
            S.feature_map_spectra(img).power,
        ),
        (
            S.mixing_frequency_response(torch.as_tensor(mix, device="cuda")).power,
            S.mixing_frequency_response(mix).power,
        ),
        (S.spectrum_distance(x, x[0], device="cuda"), S.spectrum_distance(x, x[0], device="cpu")),
        (
            S.residual_spectrum(img, img[0, 0] + 1, ndim=2, device="cuda").power,
            S.residual_spectrum(img, img[0, 0] + 1, ndim=2).power,
        ),
    ]
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-14)


def test_weight_spectra_match_cpu() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.Linear(128, 128), torch.nn.Linear(128, 64)
    )
    cpu = S.weight_spectra(model, device="cpu")
    gpu = S.weight_spectra(model.cuda(), device="cuda")
    np.testing.assert_allclose(gpu["value"].to_numpy(), cpu["value"].to_numpy(), rtol=1e-7)


def test_sweep_runs_on_cuda_and_matches_cpu_initial_outputs() -> None:
    from explorer.data.signals import signal_1d

    task = signal_1d("sines", 64, frequencies=(1, 6))
    gpu = S.fourier_feature_sweep(task, [1.0, 8.0], steps=3, width=16, n_fourier=8, device="cuda")
    cpu = S.fourier_feature_sweep(task, [1.0, 8.0], steps=3, width=16, n_fourier=8, device="cpu")
    np.testing.assert_allclose(gpu.initial, cpu.initial, atol=1e-4)
    np.testing.assert_allclose(gpu.initial_distance, cpu.initial_distance, atol=1e-4)
