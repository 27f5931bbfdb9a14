"""Signals with controllable frequency content for neural fields and spectral-bias studies.

Coordinates lie on a periodic grid in [-1, 1): x_i = -1 + 2i/n, so a sinusoid with an integer
frequency k (cycles over the grid) falls exactly on DFT bin k. Train/test splits for fields hold
out interleaved grid points (``holdout_every``), so test scores measure interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from explorer.data.task import Task, rng
from explorer.validation import check_number, check_positive_int

__all__ = ["coordinate_grid", "field_task", "signal_1d"]

SIGNALS_1D = ("sines", "chirp", "steps")


def coordinate_grid(shape: Sequence[int] | int) -> torch.Tensor:
    """(prod(shape), len(shape)) float32 coordinates of a periodic grid in [-1, 1)^d (C order)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    for s in dims:
        check_positive_int(s, "grid size")
    axes = [torch.arange(s, dtype=torch.float64) * (2.0 / s) - 1.0 for s in dims]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1).float()


def _holdout_mask(shape: tuple[int, ...], every: int) -> np.ndarray:
    """True at held-out grid points: every ``every``-th point along each axis (offset 1)."""
    idx = np.indices(shape).reshape(len(shape), -1)
    return np.all(idx % every == 1 % every, axis=0) if every > 1 else np.zeros(idx.shape[1], bool)


def field_task(
    name: str,
    values: np.ndarray,
    *,
    holdout_every: int = 2,
    seed: int = 0,
    **meta: object,
) -> Task:
    """A neural-field task from grid values (*shape, C): coordinates (N, d) → values (N, C).

    Points with every index ≡ 1 (mod ``holdout_every``) form the test set (1 in 2^d points for
    the default 2); ``holdout_every=1`` trains on the full grid and tests on it too.
    """
    check_positive_int(holdout_every, "holdout_every")
    values = np.asarray(values, dtype=np.float32)
    if values.ndim < 2:
        raise ValueError(f"{name}: values must have shape (*grid, channels), got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: signal values must be finite")
    spatial, channels = values.shape[:-1], values.shape[-1]
    x = coordinate_grid(spatial)
    y = torch.from_numpy(values.reshape(len(x), channels).copy())
    held = torch.from_numpy(_holdout_mask(spatial, holdout_every))
    train = ~held if holdout_every > 1 else torch.ones_like(held)
    test = held if holdout_every > 1 else torch.ones_like(held)
    kind = "signal" if len(spatial) == 1 else "image"
    info = {
        "loss": "mse", "shape": tuple(int(s) for s in spatial), "channels": channels,
        "in_dim": len(spatial), "out_dim": channels, "holdout_every": holdout_every,
        "seed": seed, "x_grid": x, "y_grid": y, **meta,
    }  # fmt: skip
    return Task(name, kind, x[train], y[train], x[test], y[test], meta=info)


def signal_1d(
    kind: str = "sines",
    n: int = 256,
    *,
    frequencies: Sequence[int] = (1, 4, 16),
    amplitudes: Sequence[float] | None = None,
    f_start: float = 1.0,
    f_end: float = 32.0,
    n_steps: int = 8,
    noise: float = 0.0,
    holdout_every: int = 2,
    seed: int = 0,
) -> Task:
    """A 1-D signal task (x (N, 1) → y (N, 1)) on an n-point periodic grid.

    - ``sines``: Σ a_k sin(2π k u + φ_k), u = (x+1)/2, integer ``frequencies`` k (< n/2),
      amplitudes default 1, random phases from ``seed``.
    - ``chirp``: sin(2π(f₀u + (f₁-f₀)u²/2)), instantaneous frequency from ``f_start`` to ``f_end``.
    - ``steps``: piecewise constant with ``n_steps`` random levels (broadband, ~1/k spectrum).
    """
    if kind not in SIGNALS_1D:
        raise ValueError(f"kind must be one of {SIGNALS_1D}, got {kind!r}")
    check_positive_int(n, "n", minimum=8)
    check_number(noise, "noise", low=0)
    for name, f in (("f_start", f_start), ("f_end", f_end)):
        check_number(f, name, low=0)
    check_positive_int(n_steps, "n_steps", minimum=2)
    gen = rng(seed)
    u = np.arange(n) / n
    meta: dict[str, object] = {"signal": kind}
    if kind == "sines":
        freqs = [int(f) for f in frequencies]
        if not freqs or any(f < 0 or f >= n / 2 or int(f) != f for f in frequencies):
            raise ValueError(
                f"frequencies must be integers in [0, n/2) = [0, {n / 2:g}), got "
                f"{list(frequencies)}; raise n to resolve higher frequencies"
            )
        amps = [1.0] * len(freqs) if amplitudes is None else [float(a) for a in amplitudes]
        if len(amps) != len(freqs):
            raise ValueError(f"amplitudes has {len(amps)} entries but frequencies has {len(freqs)}")
        phases = gen.uniform(0, 2 * np.pi, len(freqs))
        y = sum(a * np.sin(2 * np.pi * f * u + p) for a, f, p in zip(amps, freqs, phases))
        meta.update(frequencies=freqs, amplitudes=amps)
    elif kind == "chirp":
        if not (f_start < n / 2 and f_end < n / 2):
            raise ValueError(f"f_start and f_end must lie in [0, n/2) = [0, {n / 2:g})")
        y = np.sin(2 * np.pi * (f_start * u + (f_end - f_start) * u**2 / 2))
        meta.update(f_start=f_start, f_end=f_end)
    else:
        edges = np.sort(gen.choice(np.arange(1, n), n_steps - 1, replace=False))
        levels = gen.uniform(-1, 1, n_steps)
        y = levels[np.searchsorted(edges, np.arange(n), side="right")]
        meta.update(n_steps=n_steps)
    y = np.asarray(y, dtype=np.float64) + noise * gen.standard_normal(n)
    return field_task(
        f"signal_{kind}", y[:, None], holdout_every=holdout_every, seed=seed, noise=noise, **meta
    )
