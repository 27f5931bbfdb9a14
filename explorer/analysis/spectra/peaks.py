"""Repeated spectral peaks: what ×2 upsampling leaves in a feature map's 2-D spectrum.

Upsampling a map of size n by zero insertion copies its spectrum onto a 2 × 2 grid of
frequencies (the images at multiples of n, "strong signals repetitively appear at certain
frequencies", Tang et al., *Defects of Convolutional Decoder Networks in Frequency
Representation*, ICML 2023); k upsamplings copy it onto a lattice with spacing N / 2ᵏ of the final
size N. A feature map's per-channel mean — large after a ReLU — is such a strong signal, so its
copies show as isolated peaks on that lattice. :func:`repeated_peak_prominence` measures how far
the lattice frequencies stand above their immediate neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.analysis.spectra._backend import engine_for, fft2_power, to_engine
from explorer.analysis.spectra.fourier import _check_signal
from explorer.device import DeviceLike, as_numpy
from explorer.validation import check_positive_int, rescale

__all__ = ["mean_power_2d", "repeated_peak_prominence"]


def mean_power_2d(maps: Any, *, device: DeviceLike = "auto") -> np.ndarray:
    """2-D power spectrum |FFT2|² / (h·w)² averaged over all leading axes: (..., h, w) → (h, w).

    Unshifted (DC at [0, 0]); ``np.fft.fftshift`` centres it for display. The map means are
    kept: they are the strong signals whose copies upsampling spreads.
    """
    x = _check_signal(maps, "maps", 2)
    h, w = (int(s) for s in x.shape[-2:])
    xe = to_engine(x, engine_for(device, x), device)
    power = as_numpy(fft2_power(xe).reshape(-1, h, w).mean(0))
    return power / float(h * w) ** 2


def repeated_peak_prominence(maps: Any, copies: int, *, device: DeviceLike = "auto") -> float:
    """How strongly the spectrum peaks on the lattice left by upsampling, in decades: float.

    ``maps`` (..., h, w), e.g. a decoder layer's feature maps (B, C, H, W); ``copies`` = 2ᵏ after
    k ×2 upsamplings (the lattice spacing is h / copies and w / copies, each ≥ 2). For every
    lattice frequency except DC: log10 of its power over the mean power of its 8 neighbours
    (circularly); returns the mean. 0 means no peaks (white noise gives ≈ 0); 1 means the
    lattice frequencies carry 10× the power of the frequencies around them.
    """
    copies = check_positive_int(copies, "copies", minimum=2)
    x = rescale(_check_signal(maps, "maps", 2, scale_free=True))[0]  # log ratios: scale-free
    power = mean_power_2d(x, device=device)
    h, w = power.shape
    if h % copies or w % copies or min(h, w) // copies < 2:
        raise ValueError(
            f"maps of size {h}×{w} cannot hold {copies} spectral copies per axis: the size must "
            f"be a multiple of copies with a spacing of at least 2 (copies = 2^upsamplings)"
        )
    tiny = np.finfo(np.float64).tiny
    neighbours = sum(
        np.roll(power, (a, b), axis=(0, 1))
        for a in (-1, 0, 1)
        for b in (-1, 0, 1)
        if (a, b) != (0, 0)
    )
    ratio = (power + tiny) / (neighbours / 8 + tiny)
    lattice = ratio[:: h // copies, :: w // copies].ravel()[1:]  # every lattice point but DC
    return float(np.log10(lattice).mean())
