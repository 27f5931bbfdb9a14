"""Frequency lens: spectra of learned functions, images and feature maps; residual power per
frequency against a target over training; FreSh initial-spectrum distance and the batched σ
sweep; weight spectra with power-law tails (what WeightWatcher reports); Fourier analysis over
Z_p; frequency responses of kernels and token mixers; peaks repeated by upsampling.

CPU work runs in numpy (FFT, LAPACK) with a numba kernel for the power-law xmin scan; CUDA
inputs (or ``device="cuda"``) run in ``torch.fft``/``torch.linalg``. Everything is float64.
"""

from explorer.analysis.spectra.fourier import (
    Spectrum,
    band_power,
    feature_map_spectra,
    grid_maps,
    high_frequency_share,
    layer_spectra,
    layer_spectra_frame,
    power_spectrum,
    radial_power_spectrum,
    residual_history,
    residual_spectrum,
    spectral_centroid,
    spectrum_distance,
)
from explorer.analysis.spectra.fresh import FourierSweep, fourier_feature_sweep, psnr
from explorer.analysis.spectra.grid_response import grid_mixing_response, permute_rows
from explorer.analysis.spectra.modular import (
    fourier_concentration,
    key_frequencies,
    logit_fourier_power,
    zp_fourier_power,
)
from explorer.analysis.spectra.peaks import mean_power_2d, repeated_peak_prominence
from explorer.analysis.spectra.powerlaw import PowerLawFit, fit_power_law
from explorer.analysis.spectra.response import kernel_frequency_response, mixing_frequency_response
from explorer.analysis.spectra.weights import (
    esd,
    esd_metrics,
    layer_esds,
    singular_values,
    weight_matrices,
    weight_spectra,
)

__all__ = [
    "FourierSweep",
    "PowerLawFit",
    "Spectrum",
    "band_power",
    "esd",
    "esd_metrics",
    "feature_map_spectra",
    "fit_power_law",
    "fourier_concentration",
    "fourier_feature_sweep",
    "grid_maps",
    "grid_mixing_response",
    "high_frequency_share",
    "kernel_frequency_response",
    "key_frequencies",
    "layer_esds",
    "layer_spectra",
    "layer_spectra_frame",
    "logit_fourier_power",
    "mean_power_2d",
    "mixing_frequency_response",
    "permute_rows",
    "power_spectrum",
    "psnr",
    "radial_power_spectrum",
    "repeated_peak_prominence",
    "residual_history",
    "residual_spectrum",
    "singular_values",
    "spectral_centroid",
    "spectrum_distance",
    "weight_matrices",
    "weight_spectra",
    "zp_fourier_power",
]
