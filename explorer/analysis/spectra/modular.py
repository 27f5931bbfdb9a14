"""Fourier analysis over Z_p for modular-arithmetic models: which frequencies embeddings and
logits use (Nanda et al. 2023; Morwani et al., "Feature emergence via margin maximization").

Frequency ``k`` (0 … p // 2) stands for the pair of characters e^{±2πi k a / p}; the power of
k and p − k is folded together, so a real signal's power adds up over k = 0 … p // 2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.analysis.spectra.fourier import Spectrum, _check_spectrum, power_spectrum
from explorer.device import DeviceLike, as_numpy
from explorer.validation import check_array, check_finite, check_number, check_positive_int, rescale

__all__ = ["fourier_concentration", "key_frequencies", "logit_fourier_power", "zp_fourier_power"]


def zp_fourier_power(x: Any, *, axis: int = 0, device: DeviceLike = "auto") -> Spectrum:
    """Power per Z_p frequency of ``x`` indexed by a residue along ``axis``, summed over the
    other axes: e.g. a token embedding (p, d) → power (p // 2 + 1,) at ``freqs`` k = 0 … p // 2.

    Normalised so that ``power.sum() == (x**2).sum() / p`` (Parseval per feature, summed).
    """
    x = check_array(x, "x")
    if x.ndim < 1:
        raise ValueError("x must have at least one axis indexed by residues a = 0 … p-1")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of range for x of shape {tuple(x.shape)}")
    moved = x.movedim(axis, -1) if hasattr(x, "movedim") else np.moveaxis(x, axis, -1)
    spec = power_spectrum(moved, device=device)
    p = int(moved.shape[-1])
    power = spec.power.reshape(-1, spec.power.shape[-1]).sum(0)
    return Spectrum(np.arange(p // 2 + 1, dtype=np.float64), power)


def logit_fourier_power(logits: Any) -> Spectrum:
    """Power of logits over the (a, b) input grid on "sum" frequencies (k, k) — the Fourier
    modes of functions of a + b — as a share of all non-constant power.

    ``logits``: (p, p, C) or (p·p, C) with row a·p + b. Returns power (p // 2 + 1,) at k = 0 …
    p // 2 (±k folded, k = 0 is 0); ``power.sum()`` is the share of the logits' non-constant
    power that depends on a + b only through those modes (1.0 for a perfect Fourier circuit).
    """
    arr = as_numpy(check_array(logits, "logits", finite=False), dtype=np.float64)
    if arr.ndim == 2:
        p = int(round(np.sqrt(arr.shape[0])))
        if p * p != arr.shape[0]:
            raise ValueError(f"logits (p*p, C) needs a square number of rows, got {arr.shape[0]}")
        arr = arr.reshape(p, p, -1)
    if arr.ndim != 3 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"logits must be (p, p, C) or (p*p, C), got shape {arr.shape}")
    check_finite(arr, "logits")
    arr, _ = rescale(arr)  # a share of power: scale-free
    p = arr.shape[0]
    f = np.fft.fft2(arr, axes=(0, 1))
    power = (np.abs(f) ** 2).sum(-1)  # (p, p)
    power[0, 0] = 0.0
    total = power.sum()
    if total <= 0:
        raise ValueError("logits are constant over (a, b): no Fourier structure to measure")
    diag = np.diag(power)
    folded = np.zeros(p // 2 + 1)
    for k in range(1, p):
        folded[min(k, p - k)] += diag[k]
    return Spectrum(np.arange(p // 2 + 1, dtype=np.float64), folded / total)


def _ac(spectrum: Spectrum) -> np.ndarray:
    power = np.asarray(_check_spectrum(spectrum).power, dtype=np.float64)
    if power.ndim != 1:
        raise ValueError(f"expected one spectrum (k,), got power of shape {power.shape}")
    return power[1:]


def key_frequencies(
    spectrum: Spectrum, *, top: int | None = None, coverage: float = 0.8
) -> list[int]:
    """The dominant non-zero frequencies, strongest first: the ``top`` ones, or (``top=None``)
    the fewest whose power reaches ``coverage`` of all non-constant power."""
    ac = _ac(spectrum)
    order = np.argsort(ac)[::-1]
    if top is not None:
        top = check_positive_int(top, "top")
        chosen = order[:top]
    else:
        coverage = check_number(coverage, "coverage", low=0.0, high=1.0, low_open=True)
        total = ac.sum()
        if total <= 0:
            return []
        n = int(np.searchsorted(np.cumsum(ac[order]) / total, coverage - 1e-12) + 1)
        chosen = order[:n]
    return [int(spectrum.freqs[1 + i]) for i in chosen]


def fourier_concentration(spectrum: Spectrum, *, top: int = 5) -> float:
    """Share of non-constant power in the ``top`` strongest frequencies (1.0: all of it;
    about top / (p // 2) for a flat spectrum)."""
    ac = _ac(spectrum)
    top = check_positive_int(top, "top")
    total = ac.sum()
    if total <= 0:
        return float("nan")
    return float(np.sort(ac)[::-1][:top].sum() / total)
