"""Disagreement between independently trained models, example by example.

``predictions`` (S, N) holds S models' predicted labels on N examples. Where models trained from
different seeds disagree, each of them is more likely to be wrong (Jiang et al., *Assessing
Generalization of SGD via Disagreement*; *On the Joint Interaction of Models, Data, and
Features*): :func:`held_out_auroc` scores each model's errors with the disagreement of the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from explorer.device import as_numpy

__all__ = ["disagreement", "held_out_auroc", "pairwise_disagreement"]


def _predictions(predictions: Any, min_models: int) -> np.ndarray:
    p = as_numpy(predictions)
    if p.ndim != 2 or p.shape[0] < min_models or p.shape[1] < 1:
        raise ValueError(
            f"predictions must be (models, examples) labels with at least {min_models} models, "
            f"got shape {p.shape}"
        )
    if not np.issubdtype(p.dtype, np.integer):
        raise TypeError(f"predictions must be integer labels, got dtype {p.dtype}")
    return p


def disagreement(predictions: Any) -> np.ndarray:
    """Per example, the share of models that do not vote for the most common label: (N,) in
    [0, 1 − 1/S]; 0 where all models agree."""
    p = _predictions(predictions, 1)
    counts = np.stack([(p == label).sum(0) for label in np.unique(p)])  # (labels, N)
    return 1.0 - counts.max(0) / p.shape[0]


def pairwise_disagreement(predictions: Any) -> float:
    """Mean over model pairs of the fraction of examples on which the two predict differently."""
    p = _predictions(predictions, 2)
    s = p.shape[0]
    return float(np.mean([(p[a] != p[b]).mean() for a in range(s) for b in range(a)]))


def held_out_auroc(
    predictions: Any, labels: Any, *, shuffle: bool = False, seed: int = 0
) -> np.ndarray:
    """For each model j: the AUROC with which the other models' :func:`disagreement` ranks the
    examples model j gets wrong above those it gets right (S,). 0.5 = no information; NaN when
    model j is always right or always wrong.

    ``shuffle=True`` permutes the disagreement scores across examples first (generator ``seed``,
    one permutation per model): the control, with the same scores and no link to the examples.
    """
    p = _predictions(predictions, 3)
    y = as_numpy(labels).ravel()
    if y.shape != (p.shape[1],):
        raise ValueError(f"labels must be ({p.shape[1]},), one per example, got {y.shape}")
    gen = np.random.default_rng(seed)
    out = np.full(p.shape[0], np.nan)
    for j in range(p.shape[0]):
        wrong = p[j] != y
        score = disagreement(np.delete(p, j, axis=0))
        if shuffle:
            score = gen.permutation(score)
        if wrong.any() and not wrong.all():
            out[j] = roc_auc_score(wrong, score)
    return out
