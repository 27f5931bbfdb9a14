"""Relative representations (Moschella et al. 2023) and zero-shot stitching.

r(x) = [cos(x, aⱼ)]ⱼ over anchors aⱼ — the anchors' encodings *in the same space*. Angles
survive rotations and rescaling of a latent space, so two models' relative representations can
be compared or exchanged where their absolute coordinates cannot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from explorer.analysis.alignment.cca import as_float64
from explorer.analysis.pooling import Pool
from explorer.device import as_numpy
from explorer.frames import tidy
from explorer.validation import (
    check_array,
    check_flag,
    check_labels,
    check_number,
    check_paired,
    check_seed,
)

__all__ = ["relative_representation", "zero_shot_stitching"]


def _unit(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} has all-zero rows: cosine to anchors is undefined for them")
    return x / norms


def relative_representation(
    x: Any, anchors: Any, *, centre: bool = False, pool: Pool = "mean"
) -> np.ndarray:
    """Cosine of each row of x (n, d) to each anchor (m, d) → (n, m) float64.

    ``centre=True`` subtracts the anchors' mean from both first (a translation-robust variant;
    the paper's default is plain cosine, not translation invariant).
    """
    z = as_float64(x, "x", pool=pool, min_rows=1)
    a = as_float64(anchors, "anchors", pool=pool, min_rows=1)
    if z.shape[1] != a.shape[1]:
        raise ValueError(
            f"x has {z.shape[1]} features but anchors have {a.shape[1]}: anchors must be encoded "
            "by the same model (same latent space) as x"
        )
    if centre:
        mu = a.mean(0)
        z, a = z - mu, a - mu
    return _unit(z, "x") @ _unit(a, "anchors").T


def zero_shot_stitching(
    latents_a: Any,
    latents_b: Any,
    labels: Any,
    *,
    anchors: Any = 64,
    train_fraction: float = 0.5,
    centre: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Stitch encoder A to a decoder trained on B, with absolute and with relative coordinates.

    latents_a, latents_b: (n, d_a), (n, d_b) encodings of the *same* n inputs by two models;
    labels: (n,) classes. A logistic-regression decoder is fitted on B's training split (on
    absolute latents, and on relative ones), then scored on B's and on A's test split.
    ``anchors``: indices of anchor samples (from the training split), or how many to draw.
    ``centre=True``: relative coordinates centred on each space's anchor mean (see
    :func:`relative_representation`), so a shift of one latent space does not change them.
    Returns a tidy frame: space ∈ {absolute, relative}, metric ∈ {acc_b_to_b, acc_a_to_b,
    stitching_score = acc_a_to_b / acc_b_to_b}. Absolute stitching needs d_a = d_b.
    """
    za = as_float64(latents_a, "latents_a", min_rows=4)
    zb = as_float64(latents_b, "latents_b", min_rows=4)
    check_paired(za, zb, ("latents_a", "latents_b"))
    y = check_labels(labels, len(za))
    train_fraction = check_number(
        train_fraction, "train_fraction", low=0.0, high=1.0, low_open=True, high_open=True
    )
    centre = check_flag(centre, "centre")
    rng = np.random.default_rng(check_seed(seed))
    order = rng.permutation(len(y))
    n_train = int(round(train_fraction * len(y)))
    train, test = order[:n_train], order[n_train:]
    if isinstance(anchors, (int, np.integer)) and not isinstance(anchors, bool):
        if not 1 <= anchors <= n_train:
            raise ValueError(
                f"anchors={anchors} must be between 1 and the {n_train} training samples"
            )
        anchor_idx = rng.choice(train, size=int(anchors), replace=False)
    else:
        anchor_idx = as_numpy(check_array(anchors, "anchors", ndim=1))
        if anchor_idx.dtype.kind not in "iu" or anchor_idx.size == 0:
            raise TypeError(f"anchors must be a count or a list of sample indices, got {anchors!r}")
        if anchor_idx.min() < 0 or anchor_idx.max() >= len(y):
            raise ValueError(
                f"anchor indices must be in [0, {len(y)}) (one per sample), got "
                f"{anchor_idx.min()}…{anchor_idx.max()}"
            )
    spaces = {
        "relative": (
            relative_representation(za, za[anchor_idx], centre=centre),
            relative_representation(zb, zb[anchor_idx], centre=centre),
        )
    }
    if za.shape[1] == zb.shape[1]:
        spaces = {"absolute": (za, zb), **spaces}
    records = []
    for space, (ra, rb) in spaces.items():
        decoder = LogisticRegression(max_iter=2000).fit(rb[train], y[train])
        acc_bb = float(decoder.score(rb[test], y[test]))
        acc_ab = float(decoder.score(ra[test], y[test]))
        for metric, value in (
            ("acc_b_to_b", acc_bb),
            ("acc_a_to_b", acc_ab),
            ("stitching_score", acc_ab / acc_bb if acc_bb > 0 else float("nan")),
        ):
            records.append({"space": space, "metric": metric, "value": value})
    return tidy(records)
