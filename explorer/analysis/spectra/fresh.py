"""The FreSh experiment as one batched computation: Fourier-feature MLPs with different scales σ
trained side by side, scored on held-out points, next to the initial-spectrum distance.

Kania et al., "FreSh: Frequency Shifting for Accelerated Neural Representation Learning": "the
initial frequency spectrum of an untrained model's output correlates strongly with the model's
eventual performance". All S models share the seed (same Gaussian directions G, B = σ·G, same
MLP initialisation), are stacked with ``torch.func.stack_module_state`` and run through
``vmap(functional_call)``: one forward/backward per step for the whole sweep. The summed loss
has block-diagonal gradients and Adam is elementwise, so this equals S independent runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call, stack_module_state, vmap

from explorer.analysis.spectra.fourier import grid_maps, spectrum_distance
from explorer.device import DeviceLike, as_numpy, resolve_device
from explorer.frames import tidy
from explorer.validation import check_array, check_number, check_positive_int, check_seed, rescale

__all__ = ["FourierSweep", "fourier_feature_sweep", "psnr"]


@dataclass(frozen=True)
class FourierSweep:
    """Per σ (S,): ``initial_distance`` (:func:`spectrum_distance` of the untrained output on the
    full grid to the target), ``train_psnr``/``test_psnr`` after training; ``prediction``
    (S, N, C) is the trained output on the full grid and ``initial`` the untrained one."""

    sigmas: np.ndarray
    initial_distance: np.ndarray
    train_psnr: np.ndarray
    test_psnr: np.ndarray
    prediction: np.ndarray
    initial: np.ndarray

    def frame(self) -> pd.DataFrame:
        """Tidy ``sigma, metric, value``."""
        metrics = ("initial_distance", "train_psnr", "test_psnr")
        return tidy(
            {"sigma": float(s), "metric": m, "value": float(getattr(self, m)[i])}
            for i, s in enumerate(self.sigmas)
            for m in metrics
        )


def psnr(prediction: Any, target: Any, *, peak: float | None = None) -> np.ndarray:
    """Peak signal-to-noise ratio in dB over the last two axes (N, C): (...,).

    ``peak`` defaults to the target's range (max − min), so signals in any units compare.
    A prediction equal to its target scores +inf dB (no error at all).
    """
    p = as_numpy(check_array(prediction, "prediction", min_ndim=2), dtype=np.float64)
    t = as_numpy(check_array(target, "target", min_ndim=2), dtype=np.float64)
    if peak is not None:
        peak = check_number(peak, "peak", low=0.0, low_open=True)
    # PSNR is scale-free when prediction, target and peak scale together: one power of two
    _, e = rescale(np.array([np.abs(p).max(initial=0.0), np.abs(t).max(initial=0.0)]))
    p, t = np.ldexp(p, -e), np.ldexp(t, -e)
    peak = float(t.max() - t.min()) if peak is None else float(np.ldexp(peak, -e))
    if peak <= 0:
        raise ValueError("target is constant: PSNR needs a positive peak (pass peak=...)")
    mse = ((p - t) ** 2).mean(axis=(-2, -1))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak**2 / mse)


def _stack(
    models: list[torch.nn.Module],
) -> tuple[Any, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def call(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> Any:
        return functional_call(base, (p, b), (x,))

    return vmap(call, in_dims=(0, 0, None)), params, buffers


def _train(
    models: list[torch.nn.Module], data: dict[str, torch.Tensor], steps: int, lr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train stacked ``models`` full-batch; returns (initial grid output, final grid output,
    final train output, final test output), each (S, N, C)."""
    forward, params, buffers = _stack(models)
    with torch.no_grad():
        initial = forward(params, buffers, data["x_grid"])
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        pred = forward(params, buffers, data["x_train"])  # (S, N, C)
        loss = ((pred - data["y_train"]) ** 2).mean(dim=(1, 2)).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        outs = [forward(params, buffers, data[k]) for k in ("x_grid", "x_train", "x_test")]
    return as_numpy(initial), *(as_numpy(o) for o in outs)  # type: ignore[return-value]


def fourier_feature_sweep(
    task: Any,
    sigmas: Sequence[float],
    *,
    width: int = 64,
    depth: int = 3,
    n_fourier: int = 64,
    steps: int = 300,
    lr: float = 1e-3,
    seed: int | None = 0,
    batched: bool = True,
    device: DeviceLike = "auto",
) -> FourierSweep:
    """Train one ReLU MLP with random Fourier features per scale σ on a field ``task``.

    ``task``: a signal/image :class:`explorer.data.Task` (``x_train``, ``y_train``, ``x_test``,
    ``y_test`` and ``meta["x_grid"]``, ``meta["y_grid"]``, ``meta["shape"]``). Training is
    full-batch Adam for ``steps`` steps. ``batched=False`` trains the same models one after the
    other (for timing comparisons; results agree to float tolerance).
    """
    from explorer.models import MLP, MLPConfig

    sig = as_numpy(check_array(sigmas, "sigmas", finite=False), dtype=np.float64).reshape(-1)
    if sig.size == 0 or not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(
            f"sigmas must be positive finite Fourier-feature scales, got {list(sigmas)}"
        )
    steps = check_positive_int(steps, "steps")
    lr = check_number(lr, "lr", low=0.0, low_open=True)
    for name, value in (("width", width), ("depth", depth), ("n_fourier", n_fourier)):
        check_positive_int(value, name)
    seed = check_seed(seed)
    if seed is None:  # unseeded: a fresh seed, shared by every σ as always
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    meta = getattr(task, "meta", {})
    if not {"x_grid", "y_grid", "shape"} <= set(meta):
        raise ValueError(
            "task must be a field task with meta['x_grid'], meta['y_grid'] and meta['shape'] "
            "(make one with explorer.data.signal_1d or field_task)"
        )
    dev = resolve_device(device)
    data = {
        "x_grid": meta["x_grid"], "x_train": task.x_train, "y_train": task.y_train,
        "x_test": task.x_test,
    }  # fmt: skip
    data = {k: torch.as_tensor(v, dtype=torch.float32, device=dev) for k, v in data.items()}
    in_dim, out_dim = int(data["x_grid"].shape[1]), int(data["y_train"].shape[1])

    def build(s: float) -> torch.nn.Module:
        cfg = MLPConfig(
            in_dim=in_dim, out_dim=out_dim, depth=depth, width=width, activation="relu",
            encoding="fourier", fourier_scale=float(s), n_fourier=n_fourier, seed=seed,
        )  # fmt: skip
        return MLP(cfg).to(dev)

    groups = [list(sig)] if batched else [[s] for s in sig]
    parts = [_train([build(s) for s in g], data, steps, lr) for g in groups]
    initial, grid, train, test = (np.concatenate([p[i] for p in parts]) for i in range(4))

    shape = tuple(int(s) for s in meta["shape"])
    y_grid = as_numpy(meta["y_grid"], dtype=np.float64)
    peak = float(y_grid.max() - y_grid.min())
    ndim = len(shape)
    distance = spectrum_distance(grid_maps(initial, shape), grid_maps(y_grid, shape), ndim=ndim)
    distance = distance.mean(-1)  # over channels
    return FourierSweep(
        sigmas=sig,
        initial_distance=distance,
        train_psnr=psnr(train, as_numpy(task.y_train)[None], peak=peak),
        test_psnr=psnr(test, as_numpy(task.y_test)[None], peak=peak),
        prediction=grid,
        initial=initial,
    )
