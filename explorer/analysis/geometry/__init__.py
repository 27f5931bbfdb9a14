"""Latent geometry of representations: neighbours, projections, intrinsic dimension, spectra,
neural collapse, curvature, position/context decomposition; per layer and over training.

Inputs are (n, d) arrays or tensors (rows are samples); CUDA tensors run in torch, everything
else in numba/LAPACK. Definitions follow ``shared/science/metrics.md`` and are restated in each
function's docstring, with the variant named.
"""

from typing import Any

from explorer.analysis.geometry import profile, spectrum
from explorer.analysis.geometry.collapse import class_means, neural_collapse
from explorer.analysis.geometry.curvature import Curvature, graph_curvature, ollivier_ricci
from explorer.analysis.geometry.decomposition import PositionContext, position_context
from explorer.analysis.geometry.dimension import local_id, local_pca_id, mle_id, twonn
from explorer.analysis.geometry.neighbors import Neighbors, knn, knn_graph
from explorer.analysis.geometry.profile import METRICS, geometry_over_training, geometry_profile
from explorer.analysis.geometry.projections import PCA, align_snapshots, procrustes_align, project
from explorer.analysis.geometry.smoothing import propagate
from explorer.analysis.geometry.sources import model_points, token_states
from explorer.analysis.geometry.spectrum import (
    coding_rate,
    effective_rank,
    eigen_decay,
    participation_ratio,
    rank_me,
    rate_reduction,
    stable_rank,
    von_neumann_entropy,
)

__all__ = [
    "METRICS",
    "PCA",
    "Curvature",
    "Neighbors",
    "PositionContext",
    "align_snapshots",
    "class_means",
    "coding_rate",
    "effective_rank",
    "eigen_decay",
    "geometry_over_training",
    "geometry_profile",
    "graph_curvature",
    "knn",
    "knn_graph",
    "local_id",
    "local_pca_id",
    "mle_id",
    "model_points",
    "neural_collapse",
    "ollivier_ricci",
    "participation_ratio",
    "position_context",
    "procrustes_align",
    "project",
    "propagate",
    "rank_me",
    "rate_reduction",
    "stable_rank",
    "token_states",
    "twonn",
    "von_neumann_entropy",
]

# Deprecated names: they still work for one release and warn when called.
_DEPRECATED = {"as_points": profile.as_points, "singular_values": spectrum.singular_values}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        return _DEPRECATED[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
