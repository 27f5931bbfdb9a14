"""Neural collapse measures NC1–NC4 (Papyan, Han & Donoho 2020), definitions stated in full.

h (n, d) penultimate features, y (n,) labels of C ≥ 2 classes, W (C, d) last-layer weights,
b (C,) bias. μ_G = global mean, μ_c = class means, M = [μ_c − μ_G] (C, d).

- ``NC1`` = tr(Σ_W Σ_B⁺)/C with Σ_W = (1/n) Σᵢ (hᵢ − μ_yᵢ)(hᵢ − μ_yᵢ)ᵀ and
  Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ (Papyan's definition; → 0 under collapse).
- ``NC2_equinorm`` = std/mean of ‖μ_c − μ_G‖ (coefficient of variation, population std);
  ``NC2_equiangular`` = mean over c ≠ c' of |cos(μ_c − μ_G, μ_c' − μ_G) + 1/(C − 1)|;
  ``NC2_max_angle`` = max over c ≠ c' of the same (Papyan's "max-angle" check). All → 0 at a
  simplex equiangular tight frame. ``mean_cos`` is the plain mean pairwise cosine (→ −1/(C−1)).
- ``NC3`` = ‖W/‖W‖_F − M/‖M‖_F‖²_F (self-duality; needs W).
- ``NC4`` = fraction of samples where argmax(W h + b) ≠ argmin_c ‖h − μ_c‖ (needs W).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.device import as_numpy
from explorer.validation import check_array, check_labels, check_matrix, rescale

__all__ = ["class_means", "neural_collapse"]


def _labels(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    classes, codes = np.unique(check_labels(y, n), return_inverse=True)
    if len(classes) < 2:
        raise ValueError("neural collapse needs at least 2 classes in the labels")
    return classes, codes


def class_means(h: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, d) in float64 and the sorted class values (C,)."""
    h64 = as_numpy(check_matrix(h, "h"), dtype=np.float64)
    classes, codes = _labels(y, len(h64))
    sums = np.zeros((len(classes), h64.shape[1]))
    np.add.at(sums, codes, h64)
    return sums / np.bincount(codes)[:, None], classes


def neural_collapse(h: Any, y: Any, w: Any = None, b: Any = None) -> dict[str, float]:
    """NC1, NC2 (equinorm, equiangular, max-angle, mean cosine), and with ``w`` NC3 and NC4.

    See the module docstring for the exact definitions. Returns a dict name → float.
    """
    raw = as_numpy(check_matrix(h, "h", min_rows=2), dtype=np.float64)
    h64, _ = rescale(raw)  # every measure but the classifier's logits is scale-free
    n, d = h64.shape
    classes, codes = _labels(y, n)
    n_classes = len(classes)
    mu, _ = class_means(h64, y)
    mu_g = h64.mean(axis=0)
    centred = mu - mu_g  # (C, d)
    within = h64 - mu[codes]
    sigma_w = within.T @ within / n
    sigma_b = centred.T @ centred / n_classes
    out = {"NC1": float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, hermitian=True)) / n_classes)}

    norms = np.linalg.norm(centred, axis=1)
    if np.any(norms == 0):
        raise ValueError("a class mean equals the global mean; NC2 angles are undefined")
    out["NC2_equinorm"] = float(norms.std() / norms.mean())
    unit = centred / norms[:, None]
    cos = unit @ unit.T
    off = ~np.eye(n_classes, dtype=bool)
    dev = np.abs(cos[off] + 1.0 / (n_classes - 1))
    out["NC2_equiangular"] = float(dev.mean())
    out["NC2_max_angle"] = float(dev.max())
    out["mean_cos"] = float(cos[off].mean())
    if w is None:
        return out

    w64 = as_numpy(check_matrix(w, "w"), dtype=np.float64)
    if w64.shape != (n_classes, d):
        raise ValueError(
            f"w must have shape (n_classes, d) = ({n_classes}, {d}), got {w64.shape}; pass the "
            "last layer's weight matrix (rows ordered like the sorted class labels)"
        )
    ws, _ = rescale(w64)  # NC3 and W_equinorm are scale-free
    out["NC3"] = float(
        np.linalg.norm(ws / np.linalg.norm(ws) - centred / np.linalg.norm(centred)) ** 2
    )
    logits = raw @ w64.T
    if b is not None:
        b64 = as_numpy(check_array(b, "b", ndim=1), dtype=np.float64)
        if b64.shape != (n_classes,):
            raise ValueError(f"b must have shape ({n_classes},), got {b64.shape}")
        logits = logits + b64
    if not np.isfinite(logits).all():
        raise ValueError("the classifier's logits W h + b overflow float64: rescale h or w")
    sq = (h64**2).sum(1)[:, None] - 2 * h64 @ mu.T + (mu**2).sum(1)[None, :]
    out["NC4"] = float(np.mean(logits.argmax(1) != sq.argmin(1)))
    out["W_equinorm"] = float(np.linalg.norm(ws, axis=1).std() / np.linalg.norm(ws, axis=1).mean())
    return out
