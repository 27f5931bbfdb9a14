"""Exact full-dataset linear CKA from batches, and the (different) minibatch CKA estimator.

:class:`StreamingCKA` accumulates float64 sufficient statistics — n, Σz, ZᵀZ, Zᵀq, QᵀQ, Σq with
q = row norms² — batch by batch: O((Σd)²) memory whatever the number of rows, and the result
equals in-memory :func:`~explorer.analysis.alignment.cka.linear_cka` (biased and debiased) to
rounding. It also keeps Σ_b HSIC_u per batch for minibatch CKA (Nguyen et al. 2021), which is a
*different estimator*: it depends on the batch size and is not the full-data CKA.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from explorer.analysis.alignment._hsic import (
    FeatureMoments,
    cka_from_hsic,
    column_means,
    feature_moments,
    hsic_matrix,
    shift,
)
from explorer.analysis.alignment._prep import prepare
from explorer.analysis.pooling import Pool
from explorer.device import ArrayLike, DeviceLike
from explorer.errors import ExplorerWarning
from explorer.validation import (
    check_magnitude,
    check_paired,
    check_positive_int,
    check_seed,
    rescale,
)

__all__ = ["StreamingCKA", "minibatch_cka"]


class StreamingCKA:
    """Linear CKA between m representations, fed batch by batch.

    >>> s = StreamingCKA()
    >>> for xb, yb in batches:      # any number of rows per batch
    ...     s.update(xb, yb)        # or s.update({"layer1": h1, "layer2": h2, ...})
    >>> s.cka(), s.cka(debiased=True), s.matrix(), s.minibatch_cka()

    Each update takes m arrays (n_b, d_a) (numpy or torch; CUDA batches are multiplied on the
    GPU) with the same m and widths every time. Products run in the batch's precision, every
    accumulator is float64. Fitted attributes: ``labels_``, ``n_samples_``, ``n_batches_``.
    """

    def __init__(self, *, device: DeviceLike = "auto", pool: Pool = "mean") -> None:
        self.device = device
        self.pool = pool

    def _reset(self, labels: list[str], shapes: list[int]) -> None:
        self.labels_ = labels
        self.widths_ = shapes
        self.n_samples_ = 0
        self.n_batches_ = 0
        self._moments: FeatureMoments | None = None
        self._shift: list[ArrayLike] = []
        self._exponents: list[int] = []
        self._minibatch_hsic = np.zeros((len(labels), len(labels)))
        self._minibatch_used = 0

    def update(self, *reps: Any) -> StreamingCKA:
        """Add one batch: ``update(x, y, ...)`` or ``update({name: array, ...})``."""
        if len(reps) == 1 and isinstance(reps[0], Mapping):
            labels, arrays = [str(k) for k in reps[0]], list(reps[0].values())
        else:
            labels, arrays = [str(i) for i in range(len(reps))], list(reps)
        if len(arrays) < 2:
            raise ValueError("update() needs at least two representations of the same batch")
        xs = [
            prepare(
                a,
                f"batch[{lab!r}]",
                min_rows=1,
                device=self.device,
                pool=self.pool,
                scale_free=False,
            )
            for lab, a in zip(labels, arrays)
        ]
        for lab, x in zip(labels[1:], xs[1:]):
            check_paired(xs[0], x, (f"batch[{labels[0]!r}]", f"batch[{lab!r}]"))
        widths = [int(x.shape[1]) for x in xs]
        first = not hasattr(self, "labels_")
        if not first and (labels != self.labels_ or widths != self.widths_):
            raise ValueError(
                f"every batch must have the same representations: first batch had {self.labels_} "
                f"with widths {self.widths_}, this one {labels} with {widths}"
            )
        # one exact power-of-two scale per representation, from the first batch: CKA is
        # scale-free, and the float64 sums of every later batch must not overflow either
        exponents = [rescale(x)[1] for x in xs] if first else self._exponents
        xs = [rescale(x, e)[0] for x, e in zip(xs, exponents)]
        for lab, x in zip(labels, xs):
            check_magnitude(x, f"batch[{lab!r}] (at the first batch's scale)")
        if first:
            self._reset(labels, widths)
            self._exponents = exponents
            self._shift = column_means(xs)  # near the mean: well-conditioned float64 sums
        shifted = shift(xs, self._shift, transposed=True)
        try:
            batch = feature_moments(shifted)
        finally:
            shifted.release()
        if batch.n >= 4:
            self._minibatch_hsic += hsic_matrix(batch.centred_stats(), debiased=True)
            self._minibatch_used += 1
        if self._moments is None:
            self._moments = batch
        else:
            self._moments.add(batch)
        self.n_samples_ += batch.n
        self.n_batches_ += 1
        return self

    def _check_fitted(self, min_rows: int) -> FeatureMoments:
        if getattr(self, "_moments", None) is None:
            raise RuntimeError("no batches yet: call update(...) first")
        assert self._moments is not None
        if self.n_samples_ < min_rows:
            raise ValueError(
                f"{self.n_samples_} samples seen; this estimator needs at least {min_rows}"
            )
        return self._moments

    def matrix(self, *, debiased: bool = False) -> np.ndarray:
        """(m, m) exact linear CKA over every row seen so far."""
        stats = self._check_fitted(4 if debiased else 2).centred_stats()
        for lab, t in zip(self.labels_, stats.trace):
            if t <= 0:
                raise ValueError(f"representation {lab!r} is constant across all samples seen")
        return cka_from_hsic(hsic_matrix(stats, debiased=debiased))

    def cka(self, *, debiased: bool = False) -> float:
        """Exact linear CKA between the two representations (m = 2)."""
        self._check_fitted(4 if debiased else 2)
        if len(self.labels_) != 2:
            raise ValueError("cka() is for two representations; use matrix() for more")
        return float(self.matrix(debiased=debiased)[0, 1])

    def minibatch_matrix(self) -> np.ndarray:
        """(m, m) minibatch CKA: Σ_b HSIC_u(K_b, L_b) / √(Σ_b HSIC_u(K_b, K_b) Σ_b HSIC_u(L_b, L_b))."""
        self._check_fitted(4)
        skipped = self.n_batches_ - self._minibatch_used
        if self._minibatch_used == 0:
            raise ValueError("minibatch CKA needs batches of at least 4 rows (unbiased HSIC)")
        if skipped:
            warnings.warn(
                f"{skipped} batch(es) with fewer than 4 rows were left out of minibatch CKA",
                ExplorerWarning,
                stacklevel=2,
            )
        return cka_from_hsic(self._minibatch_hsic)

    def minibatch_cka(self) -> float:
        """Minibatch CKA between the two representations (m = 2)."""
        if len(self.labels_) != 2:
            raise ValueError("minibatch_cka() is for two representations; use minibatch_matrix()")
        return float(self.minibatch_matrix()[0, 1])


def minibatch_cka(
    x: Any,
    y: Any,
    *,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int | None = 0,
    device: DeviceLike = "auto",
) -> float:
    """Minibatch CKA (average of per-batch unbiased HSIC; Nguyen et al. 2021) of x and y (n, d).

    Rows are shuffled with ``seed`` (``None``: unseeded) unless ``shuffle=False``, then split
    into batches of ``batch_size`` ≥ 4; a final batch under 4 rows is dropped. Not the
    full-data CKA: use :func:`linear_cka` or :class:`StreamingCKA` for that.
    """
    batch_size = check_positive_int(batch_size, "batch_size", minimum=4)
    if seed is None and shuffle:
        warnings.warn(
            "minibatch_cka(seed=None) now shuffles without a seed (it kept the row order before "
            "this release); pass shuffle=False to keep the order",
            FutureWarning,
            stacklevel=2,
        )
    seed = check_seed(seed)
    x = prepare(x, "X", min_rows=4, device=device)
    y = prepare(y, "Y", min_rows=4, device=device)
    check_paired(x, y)
    n = int(x.shape[0])
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    acc = StreamingCKA(device=device)
    for start in range(0, n - 3, batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 4:
            break
        sel = torch.as_tensor(idx, device=x.device) if isinstance(x, torch.Tensor) else idx
        acc.update(x[sel], y[sel])
    return acc.minibatch_cka()
