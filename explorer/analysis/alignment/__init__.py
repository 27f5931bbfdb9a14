"""Representation alignment: CKA (linear biased/debiased, RBF, streaming exact, minibatch,
all-pairs), CCA/SVCCA/PWCCA, shape metrics (Procrustes, Bures, permutation), RSA, mutual kNN and
CKNNA, relative representations and stitching, linear predictivity.

Inputs are (n, d) arrays or tensors with rows = paired samples (numpy, or torch on any device);
conv maps (n, C, H, W) and token sequences (n, T, d) are reduced by an explicit ``pool``.
Every metric's variant is named in its docstring; see ``METRICS`` for the registry the lab uses.
``pool`` defaults to ``"mean"`` (see :func:`explorer.analysis.pool_features`).
"""

from typing import Any

from explorer.analysis.alignment._prep import layer_representations
from explorer.analysis.alignment.cca import canonical_correlations, cca_similarity, pwcca, svcca
from explorer.analysis.alignment.cka import cka_matrix, linear_cka, rbf_cka
from explorer.analysis.alignment.compare import METRICS, compare, similarity_matrix
from explorer.analysis.alignment.models import model_representations, text_representations
from explorer.analysis.alignment.neighbors import cknna, cosine_knn, mutual_knn
from explorer.analysis.alignment.predictivity import linear_predictivity, linearity_score
from explorer.analysis.alignment.relative import relative_representation, zero_shot_stitching
from explorer.analysis.alignment.rsa import rdm, rsa
from explorer.analysis.alignment.shape import (
    aligned_projection,
    bures_similarity,
    match_units,
    permutation_distance,
    procrustes_distance,
)
from explorer.analysis.alignment.streaming import StreamingCKA, minibatch_cka
from explorer.errors import moved_attribute

__all__ = [
    "METRICS",
    "StreamingCKA",
    "aligned_projection",
    "bures_similarity",
    "canonical_correlations",
    "cca_similarity",
    "cka_matrix",
    "cknna",
    "compare",
    "cosine_knn",
    "layer_representations",
    "linear_cka",
    "linear_predictivity",
    "linearity_score",
    "match_units",
    "minibatch_cka",
    "model_representations",
    "mutual_knn",
    "permutation_distance",
    "procrustes_distance",
    "pwcca",
    "rbf_cka",
    "rdm",
    "relative_representation",
    "rsa",
    "similarity_matrix",
    "svcca",
    "text_representations",
    "zero_shot_stitching",
]

_MOVED = {
    "Metric": "explorer.analysis.Metric",
    "pool_features": "explorer.analysis.pool_features",
    "seed_models": "explorer.train.seed_models",
}


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, _MOVED)
