"""Frequency response of token mixers over a 2-D grid of tokens (a ViT's patches), and the
equal-entropy control for attention maps.

A mixer A (T, T) over tokens on an h×w grid (raster order) has gain ‖A v_f‖ / ‖v_f‖ at the 2-D
frequency f = (u, v) for the plane wave v_f[p] = e^{2πi(u·row_p/h + v·col_p/w)}; gains are
averaged over the rings of :func:`explorer.analysis.spectra.radial_power_spectrum` (cycles per
token, up to Nyquist). A row-stochastic A passes DC with gain 1; a low-pass mixer's gain falls
with frequency ("self-attentions behave like low-pass filters", SPANet; Park & Kim, *How Do
Vision Transformers Work?*). Any averaging map attenuates the non-DC band on average, so the
test of a *learned* roll-off is a comparison with :func:`permute_rows`: the same weights in each
row, shuffled over the keys — the same entropy and no spatial structure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.analysis.spectra.fourier import Spectrum, _rings
from explorer.analysis.spectra.response import mixer_gain
from explorer.device import as_numpy
from explorer.validation import (
    check_array,
    check_finite,
    check_magnitude,
    check_positive_int,
    check_seed,
)

__all__ = ["grid_mixing_response", "permute_rows"]


def grid_mixing_response(mixer: Any, grid: tuple[int, int]) -> Spectrum:
    """Ring-averaged gain of mixers (..., T, T), T = h·w tokens in raster order: (..., rings)."""
    h, w = (check_positive_int(s, "grid", minimum=2) for s in grid)
    a = as_numpy(check_array(mixer, "mixer"), dtype=np.float64)
    check_magnitude(a, "mixer")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] != h * w:
        raise ValueError(
            f"mixer must be (..., T, T) with T = {h}·{w} = {h * w} grid tokens, got {a.shape}; "
            "drop prefix tokens such as CLS first"
        )
    check_finite(a, "mixer")
    rows, cols = np.divmod(np.arange(h * w), w)
    u, v = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    waves = np.exp(2j * np.pi * (np.outer(rows, u.ravel()) / h + np.outer(cols, v.ravel()) / w))
    gain = mixer_gain(a, waves)  # (..., h·w)
    ring, n_rings = _rings(h, w)
    ring = ring.ravel()
    power = np.stack([gain[..., ring == k].mean(-1) for k in range(n_rings)], axis=-1)
    return Spectrum(np.arange(n_rings) / min(h, w), power, "gain")


def permute_rows(maps: Any, *, seed: int | None = 0) -> np.ndarray:
    """Each row of ``maps`` (..., T, T) with its entries shuffled over the keys (float64).

    Keeps every row's weights (so its sum and entropy) and destroys where they sit: the
    "random map of equal entropy" control.
    """
    a = as_numpy(check_array(maps, "maps"), dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"maps must be (..., T, T), got shape {a.shape}")
    order = np.argsort(np.random.default_rng(check_seed(seed)).random(a.shape), axis=-1)
    return np.take_along_axis(a, order, axis=-1)
