"""Tidy (long-format) results: one row per measured value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

__all__ = ["tidy"]

_LEADING = ("model_a", "layer_a", "model_b", "layer_b", "model", "layer", "head", "seed", "step")


def tidy(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records → long DataFrame with identifier columns first, then ``metric``, ``value``."""
    df = pd.DataFrame.from_records(list(records))
    ids = [c for c in _LEADING if c in df.columns]
    rest = [c for c in df.columns if c not in ids and c not in ("metric", "value")]
    tail = [c for c in ("metric", "value") if c in df.columns]
    return df[ids + rest + tail]
