"""Weight spectra: singular values, empirical spectral density (ESD) of WᵀW, heavy-tail metrics
per layer — what WeightWatcher reports, on any torch model (ours, MiniLM) or a dict of matrices.

Names and their WeightWatcher counterparts (which uses λ = σ² throughout):

============== ================================== ======================
metric         definition                         WeightWatcher column
============== ================================== ======================
alpha          power-law exponent of the ESD tail alpha
alpha_weighted alpha · log10(λ_max)               alpha_weighted
ks_distance    KS distance D of the tail fit      D
xmin, n_tail   start and size of the fitted tail  xmin, num_pl_spikes
lambda_max     λ_max = σ_max²                     spectral_norm
spectral_norm  ‖W‖₂ = σ_max                       —
norm           ‖W‖²_F = Σλ                        norm
stable_rank    ‖W‖²_F / ‖W‖²₂ = Σλ / λ_max        stable_rank
============== ================================== ======================

Conv weights (out, in, k, ...) are flattened to (out, in·k·…) — one matrix per layer (WeightWatcher
by default slices per kernel position instead).
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.analysis.spectra._backend import engine_for
from explorer.analysis.spectra.powerlaw import fit_power_law
from explorer.device import DeviceLike, as_numpy, as_torch, resolve_device
from explorer.errors import ExplorerWarning
from explorer.frames import tidy
from explorer.validation import check_array, check_magnitude, check_matrix, check_positive_int

__all__ = [
    "esd",
    "esd_metrics",
    "layer_esds",
    "singular_values",
    "weight_matrices",
    "weight_spectra",
]


def singular_values(w: Any, *, centre: bool = False, device: DeviceLike = "auto") -> np.ndarray:
    """Singular values of w (..., m, n), descending: (..., min(m, n)), float64.

    ``centre=True`` subtracts each matrix's column means first (rows are samples: the spectrum
    of a representation's covariance, σ² = (n − 1)·eigenvalues); the default is the plain
    matrix's. LAPACK (gesdd via numpy) on CPU, ``torch.linalg.svdvals`` on CUDA; stacked
    matrices are decomposed in one batched call.
    """
    w = check_array(w, "w", min_ndim=2)
    if engine_for(device, w) == "torch":
        t = as_torch(w, device=resolve_device(device, w), dtype=torch.float64)
        if centre:
            t = t - t.mean(-2, keepdim=True)
        return as_numpy(torch.linalg.svdvals(t))
    a = as_numpy(w, dtype=np.float64)
    if centre:
        a = a - a.mean(-2, keepdims=True)
    return np.linalg.svd(a, compute_uv=False)


def esd(w: Any, *, device: DeviceLike = "auto") -> np.ndarray:
    """Eigenvalues of WᵀW (the empirical spectral density's support), λ = σ², descending.

    λ is in w's units squared: w must stay within about 1e±100 (λ within float64)."""
    w = check_array(w, "w", min_ndim=2)
    check_magnitude(w, "w")
    return singular_values(w, device=device) ** 2


def _is_embedding(module: nn.Module) -> bool:
    return isinstance(module, (nn.Embedding, nn.EmbeddingBag))


def weight_matrices(
    model: nn.Module | Mapping[str, Any],
    *,
    include: Iterable[str] = ("*",),
    exclude: Iterable[str] = (),
    min_dim: int = 10,
    embeddings: bool = False,
) -> dict[str, Any]:
    """The 2-D weight matrices of ``model``: name → (m, n) tensor/array.

    From a module: every submodule's ``weight`` with ≥ 2 dims (Linear, Conv — flattened to
    (out, rest) — and HF ``Conv1D``); embeddings only with ``embeddings=True``. From a mapping:
    every entry with ≥ 2 dims. Names are filtered by ``include``/``exclude`` globs, and matrices
    whose smaller side is below ``min_dim`` are skipped (too few eigenvalues for a tail).
    """
    min_dim = check_positive_int(min_dim, "min_dim")
    include, exclude = tuple(include), tuple(exclude)
    if isinstance(model, nn.Module):
        items = [
            (name, mod.weight)
            for name, mod in model.named_modules()
            if isinstance(getattr(mod, "weight", None), torch.Tensor)
            and mod.weight.ndim >= 2
            and (embeddings or not _is_embedding(mod))
        ]
    elif isinstance(model, Mapping):
        items = [(k, v if hasattr(v, "shape") else np.asarray(v)) for k, v in model.items()]
    else:
        raise TypeError(
            f"model must be a torch.nn.Module or a mapping name → matrix, got {type(model).__name__}"
        )
    out: dict[str, Any] = {}
    for name, w in items:
        if w.ndim < 2 or not any(fnmatch.fnmatchcase(name, p) for p in include):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in exclude):
            continue
        w = w.detach() if isinstance(w, torch.Tensor) else w
        mat = w.reshape(w.shape[0], -1)
        if min(mat.shape) >= min_dim:
            out[name] = mat
    return out


def layer_esds(
    model: nn.Module | Mapping[str, Any], *, device: DeviceLike = "auto", **select: Any
) -> dict[str, np.ndarray]:
    """ESD (λ = σ², descending) of every matrix from :func:`weight_matrices` (``select`` kwargs).

    Matrices of equal shape are decomposed in one batched SVD.
    """
    mats = weight_matrices(model, **select)
    if not mats:
        raise ValueError("no weight matrix matched (check include/exclude/min_dim)")
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for name, m in mats.items():
        check_matrix(m, name)
        by_shape.setdefault(tuple(m.shape), []).append(name)
    result: dict[str, np.ndarray] = {}
    for names in by_shape.values():
        first = mats[names[0]]
        if isinstance(first, torch.Tensor):
            stack: Any = torch.stack([mats[n].to(first.device) for n in names])
        else:
            stack = np.stack([np.asarray(mats[n]) for n in names])
        for name, lam in zip(names, esd(stack, device=device), strict=True):
            result[name] = lam
    return {name: result[name] for name in mats}


def esd_metrics(eigenvalues: Any, *, min_tail: int = 10) -> dict[str, float]:
    """Heavy-tail and norm metrics of one ESD (see the module table). A tail that cannot be
    fitted (e.g. all eigenvalues equal, as for an orthogonal matrix) gives NaN fit metrics."""
    min_tail = check_positive_int(min_tail, "min_tail", minimum=2)
    lam = as_numpy(check_array(eigenvalues, "eigenvalues"), dtype=np.float64).reshape(-1)
    lam = np.sort(lam)[::-1]
    if lam.size == 0 or lam[0] <= 0:
        raise ValueError("eigenvalues must contain a positive value (is the matrix all zeros?)")
    lam_max, norm = float(lam[0]), float(lam.sum())
    metrics = {
        "lambda_max": lam_max,
        "spectral_norm": float(np.sqrt(lam_max)),
        "norm": norm,
        "log_norm": float(np.log10(norm)),
        "stable_rank": norm / lam_max,
    }
    try:
        fit = fit_power_law(lam, min_tail=min(min_tail, max(2, int((lam > 0).sum()))))
    except ValueError as err:
        warnings.warn(
            f"the ESD's tail cannot be fitted ({err}); alpha, alpha_weighted, ks_distance, xmin "
            "and n_tail are NaN",
            ExplorerWarning,
            stacklevel=2,
        )
        nan = float("nan")
        return {
            **metrics,
            "alpha": nan,
            "alpha_weighted": nan,
            "ks_distance": nan,
            "xmin": nan,
            "n_tail": nan,
        }
    return {
        **metrics,
        "alpha": fit.alpha,
        "alpha_weighted": fit.alpha * float(np.log10(lam_max)),
        "ks_distance": fit.ks_distance,
        "xmin": fit.xmin,
        "n_tail": float(fit.n_tail),
    }


def weight_spectra(
    model: nn.Module | Mapping[str, Any],
    *,
    min_tail: int = 10,
    device: DeviceLike = "auto",
    **select: Any,
) -> pd.DataFrame:
    """Per-layer weight-spectrum metrics as a tidy frame: ``layer, shape, metric, value``.

    ``select`` goes to :func:`weight_matrices` (include, exclude, min_dim, embeddings). Pivot
    with ``df.pivot(index="layer", columns="metric", values="value")`` for one row per layer.
    """
    min_tail = check_positive_int(min_tail, "min_tail", minimum=2)
    mats = weight_matrices(model, **select)
    esds = layer_esds(model, device=device, **select)
    records = []
    for name, lam in esds.items():
        shape = "x".join(str(s) for s in mats[name].shape)
        for metric, value in esd_metrics(lam, min_tail=min_tail).items():
            records.append({"layer": name, "shape": shape, "metric": metric, "value": value})
    return tidy(records)
