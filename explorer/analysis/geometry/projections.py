"""Projections for looking at representations: PCA (exact / randomized), UMAP, t-SNE, and
Procrustes alignment so projections of successive training snapshots do not spin or flip.

UMAP and t-SNE come from ``umap-learn`` and ``openTSNE`` (the ``projections`` extra), imported
on first use; they are not reimplemented here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from explorer.device import DeviceLike, as_numpy, as_torch, resolve_device
from explorer.errors import optional_import, renamed_keywords
from explorer.validation import (
    check_magnitude,
    check_matrix,
    check_positive_int,
    check_seed,
    rescale,
)

__all__ = ["PCA", "align_snapshots", "procrustes_align", "project"]

Method = Literal["pca", "umap", "tsne"]


def _flip_signs(components: np.ndarray) -> np.ndarray:
    """Make the largest-|loading| entry of each component positive (scikit-learn's convention)."""
    idx = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(len(components)), idx])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


class PCA:
    """Principal component analysis, exact or randomized (Halko et al. 2011), float64.

    ``method="auto"``: randomized when min(n, d) > 500 and n_components < 0.8·min(n, d),
    else exact. Exact uses the eigendecomposition of the smaller Gram matrix; randomized uses
    ``n_oversamples`` extra directions and ``n_iter`` power iterations, its random start drawn
    with ``seed`` (``None``: unseeded, different each fit). CUDA inputs (or
    ``device="cuda"``) run in torch. Fitted attributes: ``mean_`` (d,), ``components_`` (k, d),
    ``explained_variance_`` (k,) (divided by n − 1), ``explained_variance_ratio_`` (k,),
    ``singular_values_`` (k,), ``method_``.
    """

    @renamed_keywords(random_state="seed")
    def __init__(
        self,
        n_components: int = 2,
        *,
        method: Literal["auto", "exact", "randomized"] = "auto",
        n_oversamples: int = 10,
        n_iter: int = 4,
        seed: int | None = 0,
        device: DeviceLike = "auto",
    ) -> None:
        self.n_components = n_components
        self.method = method
        self.n_oversamples = n_oversamples
        self.n_iter = n_iter
        self.seed = seed
        self.device = device

    def fit(self, x: Any) -> PCA:
        """Fit on x (n, d); returns self. Variances are in x's units, so x must stay within
        about 1e±100 (their squares within float64)."""
        x = check_matrix(x, "x", min_rows=2)
        check_magnitude(x, "x")
        n, d = x.shape
        k = check_positive_int(self.n_components, "n_components")
        oversamples = check_positive_int(self.n_oversamples, "n_oversamples", minimum=0)
        n_iter = check_positive_int(self.n_iter, "n_iter", minimum=0)
        seed = check_seed(self.seed)
        if k > min(n, d):
            raise ValueError(f"n_components={k} must be ≤ min(n_samples, n_features) = {min(n, d)}")
        if self.method not in ("auto", "exact", "randomized"):
            raise ValueError(f"method must be 'auto', 'exact' or 'randomized', got {self.method!r}")
        method = self.method
        if method == "auto":
            method = "randomized" if min(n, d) > 500 and k < 0.8 * min(n, d) else "exact"
        dev = resolve_device(self.device, x)
        t = as_torch(x, device=dev, dtype=torch.float64)
        mean = t.mean(dim=0)
        xc = t - mean
        if method == "exact":
            s, vt = _exact_svd(xc, k)
        else:
            s, vt = _randomized_svd(xc, k, oversamples, n_iter, seed)
        var = s**2 / (n - 1)
        total = (xc * xc).sum() / (n - 1)
        self.mean_ = as_numpy(mean)
        self.components_ = _flip_signs(as_numpy(vt))
        self.singular_values_ = as_numpy(s)
        self.explained_variance_ = as_numpy(var)
        self.explained_variance_ratio_ = (
            as_numpy(var / total) if float(total) > 0 else (np.zeros(k))
        )
        self.method_ = method
        return self

    def transform(self, x: Any) -> np.ndarray:
        """Project x (m, d) on the fitted components → (m, k) float64."""
        if not hasattr(self, "components_"):
            raise RuntimeError("this PCA is not fitted yet; call fit(x) first")
        x = check_matrix(x, "x")
        if x.shape[1] != self.components_.shape[1]:
            raise ValueError(
                f"x has {x.shape[1]} features but the PCA was fitted on {self.components_.shape[1]}"
            )
        return (as_numpy(x, dtype=np.float64) - self.mean_) @ self.components_.T

    def fit_transform(self, x: Any) -> np.ndarray:
        """fit(x) then transform(x)."""
        return self.fit(x).transform(x)


def _exact_svd(xc: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = xc.shape
    if d <= n:
        lam, vec = torch.linalg.eigh(xc.T @ xc)
        order = torch.argsort(lam, descending=True)[:k]
        return lam[order].clamp_min(0).sqrt(), vec[:, order].T
    lam, u = torch.linalg.eigh(xc @ xc.T)
    order = torch.argsort(lam, descending=True)[:k]
    s = lam[order].clamp_min(0).sqrt()
    vt = (u[:, order].T @ xc) / s.clamp_min(torch.finfo(s.dtype).tiny)[:, None]
    return s, vt


def _randomized_svd(
    xc: torch.Tensor, k: int, oversamples: int, n_iter: int, seed: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = xc.shape
    gen = torch.Generator(device=xc.device)
    if seed is None:
        gen.seed()  # fresh entropy: unseeded means different each call, never a silent 0
    else:
        gen.manual_seed(seed)
    width = min(k + oversamples, min(n, d))
    q = torch.randn(d, width, generator=gen, device=xc.device, dtype=xc.dtype)
    q, _ = torch.linalg.qr(xc @ q)
    for _ in range(n_iter):
        q, _ = torch.linalg.qr(xc.T @ q)
        q, _ = torch.linalg.qr(xc @ q)
    _, s, vt = torch.linalg.svd(q.T @ xc, full_matrices=False)
    return s[:k], vt[:k]


@renamed_keywords(random_state="seed")
def project(
    x: Any,
    method: Method = "pca",
    n_components: int = 2,
    *,
    seed: int | None = 0,
    init: Any = None,
    device: DeviceLike = "auto",
    **kwargs: Any,
) -> np.ndarray:
    """Low-dimensional coordinates (n, n_components) of x (n, d) by PCA, UMAP or t-SNE.

    ``init``: optional (n, n_components) starting layout for UMAP/t-SNE (pass the previous
    snapshot's coordinates to keep an animation stable). ``seed``: the random start (``None``:
    unseeded). Extra keywords go to
    ``umap.UMAP`` / ``openTSNE.TSNE`` (e.g. ``n_neighbors``, ``perplexity``).
    """
    x = check_matrix(x, "x", min_rows=3)
    n_components = check_positive_int(n_components, "n_components")
    seed = check_seed(seed)
    if method == "pca":
        return PCA(n_components, seed=seed, device=device).fit_transform(x)
    data = as_numpy(x, dtype=np.float32)
    start = None if init is None else as_numpy(init, dtype=np.float32)
    if start is not None and start.shape != (len(data), n_components):
        raise ValueError(f"init must have shape ({len(data)}, {n_components}), got {start.shape}")
    if method == "umap":
        umap = optional_import("umap", "projections", package="umap-learn")
        reducer = umap.UMAP(
            n_components=n_components,
            random_state=seed,
            init=start if start is not None else "spectral",
            **kwargs,
        )
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)
    if method == "tsne":
        open_tsne = optional_import("openTSNE", "projections", package="openTSNE")
        tsne = open_tsne.TSNE(
            n_components=n_components,
            random_state=seed,
            initialization=start if start is not None else "pca",
            n_jobs=1,
            **kwargs,
        )
        return np.asarray(tsne.fit(data), dtype=np.float64)
    raise ValueError(f"method must be 'pca', 'umap' or 'tsne', got {method!r}")


def procrustes_align(y: Any, reference: Any, *, scale: bool = False) -> np.ndarray:
    """Rotate/reflect (and translate; optionally scale) y (n, k) onto reference (n, k).

    Orthogonal Procrustes: R = argmin ‖(y − ȳ)R − (ref − r̄)‖_F over orthogonal R, then shifted
    to the reference centroid. Distances within y are unchanged unless ``scale=True``.
    """
    y = as_numpy(check_matrix(y, "y"), dtype=np.float64)
    ref = as_numpy(check_matrix(reference, "reference"), dtype=np.float64)
    if y.shape != ref.shape:
        raise ValueError(f"y {y.shape} and reference {ref.shape} must have the same shape")
    yc, rc = y - y.mean(0), ref - ref.mean(0)
    (ys, ey), (rs, er) = rescale(yc), rescale(rc)  # the rotation is scale-free
    u, s, vt = np.linalg.svd(ys.T @ rs)
    rot = u @ vt
    norm = (ys**2).sum()
    factor = np.ldexp(s.sum() / norm, er - ey) if scale and norm > 0 else 1.0
    out = factor * yc @ rot + ref.mean(0)
    if not np.isfinite(out).all():
        raise ValueError("the aligned coordinates overflow float64: rescale y or reference")
    return out


def align_snapshots(layouts: Sequence[Any], *, scale: bool = False) -> list[np.ndarray]:
    """Align each layout (n, k) to the previous aligned one, so a sequence does not spin."""
    if len(layouts) == 0:
        return []
    out = [as_numpy(check_matrix(layouts[0], "layouts[0]"), dtype=np.float64)]
    for i, lay in enumerate(layouts[1:], start=1):
        out.append(procrustes_align(check_matrix(lay, f"layouts[{i}]"), out[-1], scale=scale))
    return out
