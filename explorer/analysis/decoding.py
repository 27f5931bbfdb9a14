"""How strongly a representation carries a labelled feature: the share of its variance the
feature explains, and how well a linear classifier (a "probe") reads it out.

A probe is fitted on training rows and scored on held-out rows, with scikit-learn's classifiers:

- ``"lda"`` — linear discriminant analysis after standardising each feature on the training rows
  (closed form, nothing to tune; shared covariance, so its boundaries are linear). It is
  invariant to the scale of each feature, so it reads out even tiny consistent differences.
- ``"centroid"`` — the nearest class mean in the features as given (Euclidean). It sees class
  differences only in proportion to their size next to the spread of the features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.neighbors import NearestCentroid

from explorer.device import as_numpy
from explorer.validation import check_matrix, check_paired

__all__ = ["explained_variance", "probe_accuracy"]


def probe_accuracy(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, kind: str = "lda"
) -> float:
    """Held-out accuracy of a probe (``kind`` "lda" or "centroid", see above) fitted on the
    train rows. ``x_*`` (n, d) representations, ``y_*`` (n,) labels, ≥ 2 classes in training.
    """
    if kind not in ("lda", "centroid"):
        raise ValueError(f"kind must be 'lda' or 'centroid', got {kind!r}")
    xtr = as_numpy(check_matrix(x_train, "x_train", min_rows=2), dtype=np.float64)
    xte = as_numpy(check_matrix(x_test, "x_test"), dtype=np.float64)
    ytr, yte = as_numpy(y_train).ravel(), as_numpy(y_test).ravel()
    check_paired(xtr, ytr, ("x_train", "y_train"))
    check_paired(xte, yte, ("x_test", "y_test"))
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"x_train has {xtr.shape[1]} features but x_test has {xte.shape[1]}")
    if len(np.unique(ytr)) < 2:
        raise ValueError("y_train needs at least two classes to fit a probe")
    if kind == "centroid":
        return float(NearestCentroid().fit(xtr, ytr).score(xte, yte))
    mean, std = xtr.mean(0), xtr.std(0)
    std = np.where(std > 0, std, 1.0)
    probe = LinearDiscriminantAnalysis().fit((xtr - mean) / std, ytr)
    return float(probe.score((xte - mean) / std, yte))


def explained_variance(x: Any, labels: Any) -> float:
    """Share of the variance of ``x`` (n, d) explained by ``labels`` (n,): between-class over total.

    η² = Σ_c n_c ‖μ_c − μ‖² / Σ_i ‖x_i − μ‖² — the R² of regressing x on the one-hot labels. 1 when
    the representation varies only with the label, 0 when the class means coincide.
    """
    h = as_numpy(check_matrix(x, "x", min_rows=2), dtype=np.float64)
    y = as_numpy(labels).ravel()
    check_paired(h, y, ("x", "labels"))
    centred = h - h.mean(0)
    total = float((centred**2).sum())
    if total <= 0:
        raise ValueError("x is constant: there is no variance to explain")
    _, codes = np.unique(y, return_inverse=True)
    counts = np.bincount(codes)
    means = np.zeros((len(counts), h.shape[1]))
    np.add.at(means, codes, centred)
    means /= counts[:, None]
    return float((counts[:, None] * means**2).sum() / total)
