"""Many representations at once: a named metric registry, similarity matrices, tidy frames.

``similarity_matrix(reps_a, reps_b, metric)`` is what a heatmap shows; ``compare(...)`` returns
the same numbers as a long DataFrame (model_a, layer_a, model_b, layer_b, metric, value[, step]).
Linear CKA (biased and debiased) takes the one-pass all-pairs route; other metrics loop over
pairs (the upper triangle only when a metric is symmetric and reps_b is None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from explorer.analysis.alignment._prep import prepare_many
from explorer.analysis.alignment.cca import cca_similarity, pwcca, svcca
from explorer.analysis.alignment.cka import cka_matrix, rbf_cka
from explorer.analysis.alignment.neighbors import cknna, mutual_knn
from explorer.analysis.alignment.predictivity import linear_predictivity, linearity_score
from explorer.analysis.alignment.rsa import rsa
from explorer.analysis.alignment.shape import bures_similarity, procrustes_distance
from explorer.analysis.metric import Metric
from explorer.analysis.pooling import Pool
from explorer.device import DeviceLike, resolve_device
from explorer.frames import tidy
from explorer.validation import check_positive_int

__all__ = ["METRICS", "compare", "similarity_matrix"]


def _cka(debiased: bool) -> Callable[..., float]:
    def fn(x: Any, y: Any, **kw: Any) -> float:
        return float(cka_matrix([x], [y], debiased=debiased, **kw)[0, 0])

    return fn


METRICS: dict[str, Metric] = {
    "cka": Metric("linear CKA (biased)", _cka(False), bounds=(0.0, 1.0)),
    "cka_debiased": Metric("linear CKA (debiased)", _cka(True), bounds=(-0.1, 1.0)),
    "rbf_cka": Metric("RBF CKA (σ = 0.5 × median distance)", rbf_cka, bounds=(0.0, 1.0)),
    "cca": Metric("mean CCA ρ", cca_similarity, bounds=(0.0, 1.0)),
    "svcca": Metric("SVCCA (99% variance)", svcca, bounds=(0.0, 1.0)),
    "pwcca": Metric("PWCCA (weights from row model)", pwcca, bounds=(0.0, 1.0), symmetric=False),
    "bures": Metric("normalized Bures similarity", bures_similarity, bounds=(0.0, 1.0)),
    "procrustes": Metric(
        "angular Procrustes distance (rad)",
        procrustes_distance,
        bounds=(0.0, np.pi / 2),
        similarity=False,
    ),
    "rsa": Metric("RSA (Spearman of correlation RDMs)", rsa, bounds=(-1.0, 1.0)),
    "mutual_knn": Metric("mutual kNN (k = 10)", mutual_knn, bounds=(0.0, 1.0)),
    "cknna": Metric("CKNNA (k = 10)", cknna, bounds=(-0.1, 1.0)),
    "linear_predictivity": Metric(
        "ridge R² (row → column, 5-fold)",
        linear_predictivity,
        bounds=(-1.0, 1.0),
        symmetric=False,
    ),
    "linearity": Metric(
        "linearity score (row → column)", linearity_score, bounds=(0.0, 1.0), symmetric=False
    ),
}


def _metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}") from None


def _call(spec: Metric, x: Any, y: Any, options: dict[str, Any]) -> float:
    assert spec.fn is not None  # every alignment metric computes one value
    return float(spec.fn(x, y, **options))


def similarity_matrix(
    reps_a: Any,
    reps_b: Any = None,
    *,
    metric: str = "cka",
    device: DeviceLike = "auto",
    pool: Pool = "mean",
    **options: Any,
) -> np.ndarray:
    """(m_a, m_b) matrix of ``metric`` between representations (sequences or name → array
    mappings of (n, d_i) arrays over the same n samples); (m_a, m_a) when ``reps_b`` is None.
    Entry [i, j] compares reps_a[i] (row) with reps_b[j] (column); ``options`` go to the metric.
    """
    spec = _metric(metric)
    resolve_device(device)  # a bad device fails here, whichever route the metric takes
    if metric in ("cka", "cka_debiased"):
        return cka_matrix(
            reps_a, reps_b, debiased=metric == "cka_debiased", device=device, pool=pool, **options
        )
    _, xs_a = prepare_many(reps_a, "reps_a", device="cpu", pool=pool)
    xs_b = xs_a if reps_b is None else prepare_many(reps_b, "reps_b", device="cpu", pool=pool)[1]
    out = np.full((len(xs_a), len(xs_b)), np.nan)
    for i, x in enumerate(xs_a):
        for j, y in enumerate(xs_b):
            if reps_b is None and spec.symmetric and j < i:
                out[i, j] = out[j, i]
            else:
                out[i, j] = _call(spec, x, y, options)
    return out


def _labelled(reps: Any) -> tuple[list[str], Any]:
    if isinstance(reps, dict):
        return [str(k) for k in reps], reps
    seq = list(reps)
    return [str(i) for i in range(len(seq))], seq


def compare(
    reps_a: Any,
    reps_b: Any = None,
    *,
    metrics: Sequence[str] = ("cka",),
    model_a: str = "A",
    model_b: str | None = None,
    step: int | None = None,
    device: DeviceLike = "auto",
    pool: Pool = "mean",
) -> pd.DataFrame:
    """Tidy frame of every metric between every layer pair: columns model_a, layer_a, model_b,
    layer_b[, step], metric, value. Layers are the mapping keys (or positions)."""
    if step is not None:
        step = check_positive_int(step, "step", minimum=0)
    labels_a, _ = _labelled(reps_a)
    labels_b, _ = _labelled(reps_a if reps_b is None else reps_b)
    name_b = model_b if model_b is not None else (model_a if reps_b is None else "B")
    records = []
    for metric in metrics:
        mat = similarity_matrix(reps_a, reps_b, metric=metric, device=device, pool=pool)
        for i, la in enumerate(labels_a):
            for j, lb in enumerate(labels_b):
                rec: dict[str, Any] = {
                    "model_a": model_a,
                    "layer_a": la,
                    "model_b": name_b,
                    "layer_b": lb,
                    "metric": metric,
                    "value": float(mat[i, j]),
                }
                if step is not None:
                    rec["step"] = step
                records.append(rec)
    return tidy(records)
