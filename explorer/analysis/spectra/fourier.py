"""Spectra of signals, images and feature maps; residual power per frequency against a target.

Conventions (all functions):

- frequencies are in cycles per sample (per unit length with ``spacing``); 2-D spectra are
  radial, in cycles per pixel, on integer rings ``k / N`` with ``N = min(h, w)``, up to the
  Nyquist frequency 0.5 of the shorter side (corner frequencies beyond it are left out);
- power is normalised so that Parseval holds: ``power_spectrum(x).power.sum(-1) == mean(x**2)``
  (one-sided bins are doubled), and a full 2-D spectrum sums to ``mean(x**2)`` as well;
- work runs in float64, with numpy's FFT on CPU and ``torch.fft`` on CUDA; results are numpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from explorer.analysis.spectra._backend import (
    engine_for,
    fft2_power,
    rfft_amplitude,
    rfft_power,
    ring_sum,
    to_engine,
)
from explorer.device import DeviceLike, as_numpy
from explorer.errors import ExplorerWarning
from explorer.frames import tidy
from explorer.validation import (
    check_array,
    check_finite,
    check_magnitude,
    check_number,
    check_positive_int,
    rescale,
)

__all__ = [
    "Spectrum",
    "band_power",
    "feature_map_spectra",
    "grid_maps",
    "high_frequency_share",
    "layer_spectra",
    "layer_spectra_frame",
    "power_spectrum",
    "radial_power_spectrum",
    "residual_history",
    "residual_spectrum",
    "spectral_centroid",
    "spectrum_distance",
]

MIN_LENGTH = 4


@dataclass(frozen=True)
class Spectrum:
    """A spectrum: ``power`` (..., k) at frequencies ``freqs`` (k,).

    ``kind`` says what ``power`` holds: ``"power"``, ``"residual"`` (residual power relative to
    the target's total power), ``"amplitude"`` or ``"gain"`` (frequency responses).
    ``edges`` (k + 1,) is set when bins are bands.
    """

    freqs: np.ndarray
    power: np.ndarray
    kind: str = "power"
    edges: np.ndarray | None = None

    @property
    def nyquist(self) -> float:
        """The highest frequency represented (the reference for relative cut-offs)."""
        return float(self.edges[-1] if self.edges is not None else self.freqs[-1])


def _check_signal(x: Any, name: str, ndim: int, *, scale_free: bool = False) -> Any:
    """Validate ``x`` (real, finite) with at least ``ndim`` trailing signal axes of length
    >= MIN_LENGTH. Power is in x's units squared, so x must stay within float64's safe range
    (:func:`~explorer.validation.check_magnitude`) unless the caller's measure is
    ``scale_free``; then nothing is checked here (the caller rescales)."""
    x = check_array(x, name, finite=False)
    if x.ndim < ndim:
        axes = "(..., n)" if ndim == 1 else "(..., height, width)"
        raise ValueError(
            f"{name} must have shape {axes} for a {ndim}-D spectrum, got {tuple(x.shape)}"
        )
    short = [s for s in tuple(x.shape)[-ndim:] if s < MIN_LENGTH]
    if short:
        raise ValueError(
            f"{name} has signal axes {tuple(x.shape)[-ndim:]}: each needs at least {MIN_LENGTH} "
            "samples for a meaningful spectrum; sample the function on a finer grid"
        )
    check_finite(x, name)
    if not scale_free:
        check_magnitude(x, name)
    return x


def _check_spectrum(spectrum: Any, name: str = "spectrum") -> Spectrum:
    """A :class:`Spectrum` with finite power, else TypeError / ValueError."""
    if not isinstance(spectrum, Spectrum):
        raise TypeError(
            f"{name} must be a Spectrum (from power_spectrum, radial_power_spectrum, …), got "
            f"{type(spectrum).__name__}"
        )
    check_finite(np.asarray(spectrum.power), f"{name}.power")
    return spectrum


def _peak(x: Any) -> float:
    return float(abs(x).max()) if x.size else 0.0


def grid_maps(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Values on a grid in raster order (..., N, C) → maps (..., C, *shape), float64 numpy.

    The layout of a field task's ``y_grid`` or of a model's predictions on ``x_grid``, turned
    so that spectra run over the grid axes.
    """
    v = as_numpy(check_array(values, "values"), dtype=np.float64)
    shape = tuple(check_positive_int(s, "shape") for s in shape)
    if v.ndim < 2 or v.shape[-2] != int(np.prod(shape)):
        raise ValueError(
            f"values must be (..., N, C) with N = prod(shape) = {int(np.prod(shape))}, "
            f"got {v.shape}"
        )
    maps = v.reshape(*v.shape[:-2], *shape, v.shape[-1])
    return np.moveaxis(maps, -1, v.ndim - 2)


def _check_ndim(ndim: int) -> int:
    if isinstance(ndim, bool) or ndim not in (1, 2):
        raise ValueError(f"ndim must be 1 (signals on a line) or 2 (images/grids), got {ndim!r}")
    return ndim


def _one_sided_weights(n: int) -> np.ndarray:
    """Weights that fold the two-sided |FFT|² onto rfft bins so Parseval holds."""
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w / n**2


def power_spectrum(
    x: Any, *, spacing: float = 1.0, detrend: bool = False, device: DeviceLike = "auto"
) -> Spectrum:
    """One-sided power spectrum along the last axis: x (..., n) → power (..., n // 2 + 1).

    ``power.sum(-1) == mean(x**2, -1)`` (Parseval). ``detrend`` removes each signal's mean first.
    """
    x = _check_signal(x, "x", 1)
    spacing = check_number(spacing, "spacing (sample spacing)", low=0.0, low_open=True)
    n = int(x.shape[-1])
    xe = to_engine(x, engine_for(device, x), device)
    if detrend:
        xe = xe - xe.mean(-1, keepdims=True)
    power = as_numpy(rfft_power(xe)) * _one_sided_weights(n)
    return Spectrum(np.fft.rfftfreq(n, d=spacing), power)


def _rings(h: int, w: int) -> tuple[np.ndarray, int]:
    """Ring id (h, w) of every 2-D FFT cell (unshifted), -1 beyond Nyquist; and the ring count."""
    n = min(h, w)
    r = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    ring = np.rint(r * n).astype(np.int64)
    n_rings = n // 2 + 1
    ring[ring >= n_rings] = -1
    return ring, n_rings


def _radial(
    x: Any, statistic: str, detrend: bool, device: DeviceLike, amplitude: bool = False
) -> Spectrum:
    h, w = (int(s) for s in x.shape[-2:])
    xe = to_engine(x, engine_for(device, x), device)
    if detrend:
        xe = xe - xe.mean((-2, -1), keepdims=True)
    p2 = fft2_power(xe) / float(h * w) ** 2
    if amplitude:
        p2 = p2**0.5
    ring, n_rings = _rings(h, w)
    sums = as_numpy(ring_sum(p2, ring, n_rings))
    if statistic == "mean":
        sums = sums / np.bincount(ring[ring >= 0], minlength=n_rings)
    return Spectrum(np.arange(n_rings) / min(h, w), sums, "amplitude" if amplitude else "power")


def radial_power_spectrum(
    x: Any,
    *,
    statistic: Literal["mean", "sum"] = "mean",
    detrend: bool = False,
    device: DeviceLike = "auto",
) -> Spectrum:
    """Radially averaged (or summed) power of images: x (..., h, w) → power (..., min(h, w)//2 + 1).

    Ring ``k`` collects the 2-D FFT cells whose radius (cycles per pixel) rounds to ``k / N``,
    ``N = min(h, w)``. ``statistic="mean"`` averages the cells of a ring (the usual radially
    averaged power spectrum); ``"sum"`` adds them (the power in the ring).
    """
    if statistic not in ("mean", "sum"):
        raise ValueError(f"statistic must be 'mean' or 'sum', got {statistic!r}")
    x = _check_signal(x, "x", 2)
    return _radial(x, statistic, detrend, device)


def band_power(spectrum: Spectrum, n_bands: int = 8) -> Spectrum:
    """Sum ``spectrum`` into ``n_bands`` equal-width bands on [0, highest frequency].

    The last band includes the highest frequency. Returns a Spectrum with ``edges`` (n_bands+1,)
    and ``freqs`` at band centres.
    """
    if isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive integer, got {n_bands!r}")
    _check_spectrum(spectrum)
    edges = np.linspace(0.0, spectrum.nyquist, n_bands + 1)
    idx = np.clip(np.searchsorted(edges, spectrum.freqs, side="right") - 1, 0, n_bands - 1)
    onehot = np.zeros((spectrum.freqs.size, n_bands))
    onehot[np.arange(spectrum.freqs.size), idx] = 1.0
    return Spectrum((edges[:-1] + edges[1:]) / 2, spectrum.power @ onehot, spectrum.kind, edges)


def residual_spectrum(
    prediction: Any,
    target: Any,
    *,
    ndim: int = 1,
    spacing: float = 1.0,
    device: DeviceLike = "auto",
) -> Spectrum:
    """Power of ``prediction - target`` per frequency, relative to the target's total power.

    prediction (..., n) or (..., h, w) — e.g. (steps, n) for a history over training — and
    target with the same trailing shape (broadcast). For 2-D, rings are summed. The bins add up
    to the relative squared error ``‖prediction − target‖² / ‖target‖²`` (up to the corner
    frequencies a 2-D ring set leaves out), so a row of this is "which frequencies are still
    wrong". Use :func:`band_power` to coarsen.
    """
    _check_ndim(ndim)
    spacing = check_number(spacing, "spacing (sample spacing)", low=0.0, low_open=True)
    pred = _check_signal(prediction, "prediction", ndim, scale_free=True)
    tgt = _check_signal(target, "target", ndim, scale_free=True)
    if tuple(pred.shape)[-ndim:] != tuple(tgt.shape)[-ndim:]:
        raise ValueError(
            f"prediction and target must share their last {ndim} axes, got "
            f"{tuple(pred.shape)} and {tuple(tgt.shape)}"
        )
    # relative power is scale-free: one exact power of two for both keeps squares in range
    _, e = rescale(np.array([_peak(pred), _peak(tgt)]))
    pred, tgt = rescale(pred, e)[0], rescale(tgt, e)[0]
    engine = engine_for(device, pred, tgt)
    resid = to_engine(pred, engine, device) - to_engine(tgt, engine, device)
    total = float((to_engine(tgt, engine, device) ** 2).mean())
    if total <= 0.0:
        raise ValueError("target is identically zero: relative residual power is undefined")
    if ndim == 1:
        out = power_spectrum(resid, spacing=spacing, device=device)
    else:
        out = _radial(resid, "sum", False, device)
    return Spectrum(out.freqs, out.power / total, "residual")


def residual_history(predictions: Any, target: Any, shape: tuple[int, ...]) -> Spectrum:
    """Residual power per frequency over training: the picture of spectral bias.

    ``predictions`` (steps, N, C): a model's outputs on a grid of ``shape`` (1-D or 2-D, raster
    order; e.g. the predictions of successive training snapshots on a field task's grid);
    ``target`` (N, C) on the same grid. Returns a :class:`Spectrum` with ``power`` (steps, k):
    :func:`residual_spectrum` per step, averaged over channels, so each row sums to that
    step's relative squared error ``‖prediction − target‖² / ‖target‖²`` (all channels). Frequencies in cycles per
    sample (1-D) or per pixel (2-D rings).
    """
    if len(shape) not in (1, 2):
        raise ValueError(f"shape must be 1-D or 2-D, got {shape}")
    preds = grid_maps(predictions, shape)  # (steps, C, *shape); shape's entries validated here
    if preds.ndim != len(shape) + 2:
        raise ValueError(
            f"predictions must be (steps, N, C) with N = prod(shape), got {np.shape(predictions)}"
        )
    tgt = grid_maps(target, shape)  # (C, *shape)
    res = residual_spectrum(preds, tgt, ndim=len(shape), device="cpu")
    return Spectrum(res.freqs, res.power.mean(-2), "residual")


def high_frequency_share(spectrum: Spectrum, cutoff: float = 0.5) -> np.ndarray:
    """Share of non-DC power at frequencies ≥ ``cutoff`` × the highest frequency: (...,).

    NaN where a signal has no non-DC power (a constant map).
    """
    cutoff = check_number(
        cutoff, "cutoff (fraction of the highest frequency)", low=0.0, high=1.0,
        low_open=True, high_open=True,
    )  # fmt: skip
    f = _check_spectrum(spectrum).freqs
    ac = spectrum.power[..., f > 0].sum(-1)
    high = spectrum.power[..., f >= cutoff * spectrum.nyquist].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ac > 0, high / np.where(ac > 0, ac, 1.0), np.nan)


def spectral_centroid(spectrum: Spectrum) -> np.ndarray:
    """Power-weighted mean non-DC frequency, as a fraction of the highest frequency: (...,)."""
    f = _check_spectrum(spectrum).freqs
    p = spectrum.power[..., f > 0]
    total = p.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (p @ f[f > 0]) / np.where(total > 0, total, 1.0), np.nan) / (
            spectrum.nyquist
        )


def spectrum_distance(
    output: Any, target: Any, *, ndim: int = 1, device: DeviceLike = "auto"
) -> np.ndarray:
    """FreSh-style distance between the frequency content of ``output`` and ``target``: (...,).

    Definition: take the amplitude spectra (|FFT|, one-sided for 1-D, ring-summed for 2-D), drop
    DC, normalise each to unit mass — a distribution over frequency — and return the
    1-Wasserstein (earth mover's) distance between the two on the frequency axis scaled to
    [0, 1] (fraction of the highest frequency): ``Σ_k |CDF_out(k) − CDF_target(k)| · Δf``.
    0 means the same spectral shape, 1 is the maximum (all mass at opposite ends). Invariant to
    the overall scale of either signal. Used on an untrained model's output as the FreSh
    diagnostic (Kania et al., "FreSh: Frequency Shifting for Accelerated Neural Representation
    Learning").
    """
    _check_ndim(ndim)
    out = rescale(_check_signal(output, "output", ndim, scale_free=True))[0]  # scale-free
    tgt = rescale(_check_signal(target, "target", ndim, scale_free=True))[0]
    if tuple(out.shape)[-ndim:] != tuple(tgt.shape)[-ndim:]:
        raise ValueError(
            f"output and target must share their last {ndim} axes, got {tuple(out.shape)} and "
            f"{tuple(tgt.shape)}"
        )

    def amplitude(x: Any) -> np.ndarray:
        if ndim == 1:
            engine = engine_for(device, x)
            return as_numpy(rfft_amplitude(to_engine(x, engine, device)))[..., 1:]
        return _radial(x, "sum", False, device, amplitude=True).power[..., 1:]

    a, b = amplitude(out), amplitude(tgt)
    sa, sb = a.sum(-1, keepdims=True), b.sum(-1, keepdims=True)
    if np.any(sa <= 0) or np.any(sb <= 0):
        raise ValueError("a constant signal has no non-DC frequency content to compare")
    cdf_gap = np.abs(np.cumsum(a / sa, -1) - np.cumsum(b / sb, -1))
    k = a.shape[-1]
    return cdf_gap[..., :-1].sum(-1) / max(k - 1, 1)


def _spatial_layout(x: Any, grid: tuple[int, ...] | None, name: str) -> Any:
    """Activations → (B, C, *spatial) with 1 or 2 spatial axes, where they live."""
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    shape = tuple(x.shape)
    if len(shape) == 4:  # (B, C, H, W) conv feature maps
        return x
    if len(shape) == 2:  # (N, D): N grid points (coordinate network), one "batch"
        x = x[None]
        shape = tuple(x.shape)
    if len(shape) != 3:
        raise ValueError(
            f"{name}: activations must be (B, C, H, W) maps, (B, T, D) tokens or (N, D) grid "
            f"points, got shape {shape}"
        )
    b, t, d = shape
    if grid is None:
        return _permute(x, (0, 2, 1))
    cells = int(np.prod(grid))
    if len(grid) not in (1, 2) or cells > t:
        raise ValueError(f"{name}: grid {grid} does not fit {t} positions (tokens or points)")
    x = x[:, t - cells :]  # drop leading prefix tokens such as CLS
    x = x.reshape(b, *grid, d)
    perm = (0, len(grid) + 1, *range(1, len(grid) + 1))
    return _permute(x, perm)


def _permute(x: Any, perm: tuple[int, ...]) -> Any:
    return np.transpose(x, perm) if isinstance(x, np.ndarray) else x.permute(*perm)


def feature_map_spectra(
    activations: Any,
    *,
    grid: tuple[int, ...] | None = None,
    device: DeviceLike = "auto",
    name: str = "activations",
) -> Spectrum:
    """Per-channel spatial power spectra of a layer, averaged over the batch: power (C, k).

    Accepts conv maps (B, C, H, W) → radial 2-D spectra; tokens (B, T, D) → 1-D spectra along
    T, or 2-D over ``grid=(h, w)`` using the last h·w tokens (a ViT's patches after CLS);
    coordinate-network activations (N, D) on a grid of N points in raster order → 1-D along N,
    or 2-D with ``grid=(h, w)``. Each map's mean is removed first (DC carries no spatial
    frequency), so shares and centroids describe spatial structure only.
    """
    x = _spatial_layout(activations, tuple(grid) if grid is not None else None, name)
    spatial = x.ndim - 2
    x = _check_signal(x, name, spatial)
    if spatial == 1:
        spec = power_spectrum(x, detrend=True, device=device)
    else:
        spec = _radial(x, "mean", True, device)
    return Spectrum(spec.freqs, spec.power.mean(0), spec.kind)


def layer_spectra(
    activations: Mapping[str, Any],
    *,
    grid: tuple[int, ...] | None = None,
    device: DeviceLike = "auto",
) -> dict[str, Spectrum]:
    """:func:`feature_map_spectra` for every entry of a capture (name → activations)."""
    if not isinstance(activations, Mapping) or not activations:
        raise ValueError("activations must be a non-empty mapping of layer name → activations")
    return {
        k: feature_map_spectra(v, grid=grid, device=device, name=k) for k, v in activations.items()
    }


def layer_spectra_frame(spectra: Mapping[str, Spectrum], *, cutoff: float = 0.5) -> pd.DataFrame:
    """Tidy per-layer summary: ``layer, metric, value`` with metrics ``hf_share`` (of the
    channel-averaged spectrum), ``hf_share_std`` (across channels) and ``centroid``. A layer
    whose maps are constant has no spatial frequencies: its values are NaN, with an
    :class:`ExplorerWarning` naming it."""
    records = []
    flat = []
    for layer, spec in spectra.items():
        spec = _check_spectrum(spec, f"spectra[{layer!r}]")
        mean = Spectrum(spec.freqs, spec.power.mean(0), spec.kind, spec.edges)
        per_channel = high_frequency_share(spec, cutoff)
        values = {
            "hf_share": float(high_frequency_share(mean, cutoff)),
            "hf_share_std": float(np.nanstd(per_channel))
            if np.isfinite(per_channel).any()
            else np.nan,
            "centroid": float(spectral_centroid(mean)),
        }
        records += [{"layer": layer, "metric": m, "value": v} for m, v in values.items()]
        if not np.isfinite(list(values.values())).all():
            flat.append(str(layer))
    if flat:
        warnings.warn(
            f"layer(s) {flat[:5]} have constant maps (no power beyond DC): their hf_share, "
            "hf_share_std or centroid are NaN",
            ExplorerWarning,
            stacklevel=2,
        )
    return tidy(records)
