"""Your own data as a :class:`Task`: arrays or tensors ``(x, y)``, a pandas DataFrame with
named feature and target columns, or a CSV file.

::

    task = user_task((x, y))                                    # kind from y's dtype
    task = user_task(df, features=["a", "b"], target="label")   # strings become classes
    task = user_task("measurements.csv", target="yield", kind="regression")

Integer, boolean or string targets make a classification task (strings are numbered in
sorted order, their names kept in ``meta["classes"]``); float targets a regression task.
``kind=`` overrides the guess. Integer labels are used as they are: class ``k`` is output
``k`` of the model. Whether a model fits a task (feature count, output width vs classes,
regression output shape) is checked by the :class:`explorer.train.Trainer` before its first
step (:func:`explorer.validation.check_model_outputs`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.data.task import Task, check_fraction, rng, split_rows

__all__ = ["user_task"]


def _frame_xy(
    df: Any, features: Sequence[str] | None, target: str | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if target is None:
        raise ValueError(
            f"name the target column: target=... (columns: {list(map(str, df.columns))[:20]})"
        )
    missing = [c for c in [target, *(features or [])] if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the data; columns: {list(df.columns)[:20]}")
    names = list(features) if features is not None else [c for c in df.columns if c != target]
    if not names:
        raise ValueError("no feature columns: give features=[...] besides the target")
    if target in names:
        raise ValueError(f"the target {target!r} is also listed as a feature")
    from pandas.api.types import is_numeric_dtype

    bad = [c for c in names if not is_numeric_dtype(df[c].dtype)]
    if bad:
        raise TypeError(
            f"feature column(s) {bad} are not numeric ({[str(df[c].dtype) for c in bad]}); "
            "encode them as numbers or leave them out with features=[...]"
        )
    return df[names].to_numpy(dtype=np.float32), df[target].to_numpy(), [str(c) for c in names]


def _labels(y: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    """Class ids (int64) and, for string labels, the class names."""
    if y.dtype.kind in "OUS":
        classes = sorted({str(v) for v in y})
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[str(v)] for v in y], dtype=np.int64), classes
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.array_equal(y, np.round(y)):
            raise ValueError(
                "classification labels must be whole numbers (class ids); got fractional or "
                "non-finite values — use kind='regression' for a continuous target"
            )
    ids = y.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"class ids must be >= 0, got {int(ids.min())}")
    return ids, None


def user_task(
    data: Any,
    *,
    features: Sequence[str] | None = None,
    target: str | None = None,
    kind: str = "auto",
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str = "data",
) -> Task:
    """A :class:`Task` from ``data`` (see the module docstring), split into train/test rows
    by a seeded shuffle (``test_fraction`` of the rows are held out)."""
    import pandas as pd

    if kind not in ("auto", "classification", "regression"):
        raise ValueError(f"kind must be 'auto', 'classification' or 'regression', got {kind!r}")
    check_fraction(test_fraction, "test_fraction", allow_zero=True)
    feature_names: list[str] | None = None
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"no data file at {path}")
        if path.suffix.lower() != ".csv":
            raise ValueError(f"data files must be .csv, got {path.name!r}; load others with pandas")
        data = pd.read_csv(path)
        name = name if name != "data" else path.stem
    if isinstance(data, pd.DataFrame):
        x, y, feature_names = _frame_xy(data, features, target)
    elif isinstance(data, tuple) and len(data) == 2:
        if features is not None or target is not None:
            raise ValueError("features=/target= name DataFrame columns; (x, y) arrays need neither")
        x = np.asarray(data[0].detach().cpu() if isinstance(data[0], torch.Tensor) else data[0])
        y = np.asarray(data[1].detach().cpu() if isinstance(data[1], torch.Tensor) else data[1])
    else:
        raise TypeError(
            f"data must be (x, y) arrays, a pandas DataFrame or a .csv path, got "
            f"{type(data).__name__}"
        )
    if x.dtype.kind not in "fiub":
        raise TypeError(f"inputs x must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if x.ndim < 2:
        raise ValueError(f"inputs x must be (n, features) or (n, ...), got shape {x.shape}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 samples, got {len(x)}")
    if not np.all(np.isfinite(x)):
        rows = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))
        raise ValueError(f"x holds NaN or inf in {len(rows)} row(s), e.g. rows {rows[:5].tolist()}")
    if kind == "auto":
        kind = "regression" if y.dtype.kind == "f" else "classification"
    meta: dict[str, Any] = {"seed": seed, "source": "user data"}
    if feature_names is not None:
        meta["features"] = feature_names
    if x.ndim == 2:
        meta["in_dim"] = int(x.shape[1])
    if kind == "classification":
        y, classes = _labels(y)
        if y.ndim != 1:
            raise ValueError(f"classification labels must be (n,), got shape {y.shape}")
        meta.update(loss="ce", n_classes=int(y.max()) + 1)
        if classes is not None:
            meta["classes"] = classes
    else:
        if y.dtype.kind not in "fiub":
            raise TypeError(f"regression targets must be numeric, got dtype {y.dtype}")
        y = y.astype(np.float32)
        if not np.all(np.isfinite(y)):
            raise ValueError("the regression target holds NaN or inf")
        if y.ndim == 1:
            y = y[:, None]
        meta.update(loss="mse", out_dim=int(y.shape[1]))
    parts = split_rows(x, y, test_fraction, rng(seed))
    return Task(name, kind, *parts, meta=meta)
