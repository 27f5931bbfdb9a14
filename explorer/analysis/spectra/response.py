"""Frequency responses of linear operators: convolution / state-space kernels and token mixers
(attention patterns of any variant, attention-free mixing matrices).

A mixer A (T, T) acts on a sequence; its gain at frequency f is ``‖A v_f‖ / ‖v_f‖`` for the
complex sinusoid ``v_f[t] = e^{2πi f t}``. A row-stochastic A (softmax attention) has gain 1 at
f = 0; a low-pass mixer ("self-attentions behave like low-pass filters", SPANet) has gains that
fall with f. For a circulant A this is exactly |DFT of its kernel|.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explorer.analysis.spectra._backend import engine_for, to_engine
from explorer.analysis.spectra.fourier import Spectrum, _check_signal, _radial
from explorer.device import DeviceLike, as_numpy
from explorer.validation import check_array, check_magnitude, check_positive_int

__all__ = ["kernel_frequency_response", "mixing_frequency_response"]


def kernel_frequency_response(
    kernel: Any, *, ndim: int = 1, n_fft: int = 256, device: DeviceLike = "auto"
) -> Spectrum:
    """Magnitude response |H(f)| of convolution taps, zero-padded to ``n_fft``.

    1-D taps (..., k) → gain (..., n_fft // 2 + 1) at ``rfftfreq(n_fft)``; 2-D kernels
    (..., kh, kw) (e.g. a conv weight (out, in, kh, kw)) → radially averaged |H| (..., n_fft//2+1).
    A state-space model's convolution kernel (C Aᵏ B)ₖ is 1-D taps.
    """
    n_fft = check_positive_int(n_fft, "n_fft", minimum=4)
    kernel = check_array(kernel, "kernel")
    check_magnitude(kernel, "kernel")
    if isinstance(ndim, bool) or ndim not in (1, 2) or kernel.ndim < ndim:
        raise ValueError(
            f"kernel must have ndim >= {ndim} (ndim must be 1 or 2), got shape {tuple(kernel.shape)}"
        )
    if any(s > n_fft for s in tuple(kernel.shape)[-ndim:]):
        raise ValueError(f"n_fft={n_fft} is shorter than the kernel {tuple(kernel.shape)[-ndim:]}")
    engine = engine_for(device, kernel)
    k = to_engine(kernel, engine, device)
    pad = [(0, 0)] * (k.ndim - ndim) + [(0, n_fft - s) for s in k.shape[-ndim:]]
    if engine == "torch":
        flat_pad = [p for pair in reversed(pad[-ndim:]) for p in pair]
        k = torch.nn.functional.pad(k, flat_pad)
    else:
        k = np.pad(k, pad)
    if ndim == 1:
        f = torch.fft.rfft(k, dim=-1) if engine == "torch" else np.fft.rfft(k, axis=-1)
        return Spectrum(np.fft.rfftfreq(n_fft), as_numpy(abs(f)), "gain")
    # |H| averaged over rings: _radial returns ring means of sqrt(|FFT|²/(n²)²) → undo the 1/n².
    amp = _radial(k, "mean", False, device, amplitude=True)
    return Spectrum(amp.freqs, amp.power * n_fft**2, "gain")


def mixing_frequency_response(mixer: Any, *, device: DeviceLike = "auto") -> Spectrum:
    """Gain of a token mixer (..., T, T) at frequencies 0 … T // 2 cycles per T tokens:
    (..., T // 2 + 1) at ``freqs = k / T`` cycles per token (rows of A produce outputs)."""
    a = _check_signal(mixer, "mixer", 2)
    t = int(a.shape[-1])
    if a.shape[-2] != t:
        raise ValueError(f"mixer must be square (..., T, T), got {tuple(a.shape)}")
    k = np.arange(t // 2 + 1)
    waves = np.exp(2j * np.pi * np.outer(np.arange(t), k) / t)  # (T, K)
    return Spectrum(k / t, mixer_gain(to_engine(a, engine_for(device, a), device), waves), "gain")


def mixer_gain(a: np.ndarray | torch.Tensor, waves: np.ndarray) -> np.ndarray:
    """``‖A v‖ / ‖v‖`` for each column ``v`` of ``waves`` (T, K), unit-modulus entries so
    ‖v‖ = √T, through mixers ``a`` (..., T, T) (numpy, or torch on its device): (..., K)."""
    norm = np.sqrt(len(waves))
    if isinstance(a, torch.Tensor):
        mixed = a.to(torch.complex128) @ torch.as_tensor(waves, device=a.device)
        return as_numpy(torch.linalg.vector_norm(mixed, dim=-2)) / norm
    return np.linalg.norm(a @ waves, axis=-2) / norm
