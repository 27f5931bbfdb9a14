"""Where spectral work runs: numpy (pocketfft/LAPACK) on CPU, torch on CUDA, both in float64.

Private to :mod:`explorer.analysis.spectra`. FFTs are not something numba can beat, so the CPU
path is numpy; numba is used only where a scalar loop is the hot part (the power-law xmin scan).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from explorer.device import DeviceLike, as_torch, backend_for, resolve_device

Engine = Literal["numpy", "torch"]


def engine_for(device: DeviceLike, *arrays: Any) -> Engine:
    """``"torch"`` when the work runs on CUDA, ``"numpy"`` otherwise."""
    return "torch" if backend_for(device, *arrays) == "torch" else "numpy"


def to_engine(x: Any, engine: Engine, device: DeviceLike = "auto") -> Any:
    """``x`` as a float64 numpy array or a float64 torch tensor on the resolved device."""
    if engine == "torch":
        dev = resolve_device(device, x)
        return as_torch(x, device=dev, dtype=torch.float64)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def rfft_power(x: Any) -> Any:
    """|rfft|² along the last axis (unnormalised), numpy or torch."""
    f = torch.fft.rfft(x, dim=-1) if isinstance(x, torch.Tensor) else np.fft.rfft(x, axis=-1)
    return f.real**2 + f.imag**2


def rfft_amplitude(x: Any) -> Any:
    """|rfft| along the last axis (unnormalised), numpy or torch."""
    f = torch.fft.rfft(x, dim=-1) if isinstance(x, torch.Tensor) else np.fft.rfft(x, axis=-1)
    return abs(f)


def fft2_power(x: Any) -> Any:
    """|fft2|² over the last two axes (unnormalised, unshifted), numpy or torch."""
    if isinstance(x, torch.Tensor):
        f = torch.fft.fft2(x, dim=(-2, -1))
    else:
        f = np.fft.fft2(x, axes=(-2, -1))
    return f.real**2 + f.imag**2


def ring_sum(p2: Any, ring: np.ndarray, n_rings: int) -> Any:
    """Sum the last two axes of ``p2`` (..., h, w) into rings: ``ring`` (h, w) holds ring ids,
    ``-1`` for excluded cells. Returns (..., n_rings) as the same array type."""
    keep = ring.reshape(-1) >= 0
    idx = ring.reshape(-1)[keep]
    flat = p2.reshape(*p2.shape[:-2], -1)
    if isinstance(flat, torch.Tensor):
        sel = flat[..., torch.as_tensor(np.flatnonzero(keep), device=flat.device)]
        out = torch.zeros((*flat.shape[:-1], n_rings), dtype=flat.dtype, device=flat.device)
        return out.index_add_(-1, torch.as_tensor(idx, device=flat.device), sel)
    sel = flat[..., keep].reshape(-1, idx.size)
    ids = (idx[None, :] + n_rings * np.arange(sel.shape[0])[:, None]).reshape(-1)
    sums = np.bincount(ids, weights=sel.reshape(-1), minlength=n_rings * sel.shape[0])
    return sums.reshape(*flat.shape[:-1], n_rings)
