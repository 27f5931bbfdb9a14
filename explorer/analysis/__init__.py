"""Public analysis API: pure functions (and a few estimators) from arrays to arrays or tidy frames.

Lenses: ``attention``, ``spectra``, ``geometry``, ``alignment``. This package holds what they
share: the metric registry type :class:`Metric` and the pooling convention
:func:`pool_features` (``pool="mean"`` by default, wherever a function takes ``pool``).
"""

from explorer.analysis.metric import Metric
from explorer.analysis.pooling import POOLS, Pool, pool_features

__all__ = ["POOLS", "Metric", "Pool", "pool_features"]
