"""Two features of one input, equally predictable but not equally simple (Lampinen et al.,
*Learned feature representations are biased by complexity, learning order, position, and more*).

Inputs are random ±1 bits; each target column is a ±1 feature of a disjoint group of bits:
``"majority"`` (the sign of their sum — linear) or ``"parity"`` (their product — XOR, not
linearly computable). A network trained to output both (MSE) learns both to 100 %, which makes
it possible to ask how strongly each is represented.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from explorer.data.task import Task, check_fraction, rng
from explorer.validation import check_positive_int

__all__ = ["FEATURES", "feature_pair"]

FEATURES = {"majority": 5, "parity": 3}  # feature → number of input bits it reads


def feature_pair(
    n: int = 4000,
    *,
    features: Sequence[str] = ("majority", "parity"),
    n_bits: int = 16,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Task:
    """x (n, n_bits) ±1 float32; y (n, len(features)) ±1 float32, column j = ``features[j]`` of its
    own group of bits (majority reads 5 bits, parity 3; groups taken in order from bit 0).
    ``meta["features"]`` names the columns, ``meta["bits"]`` lists the bits each one reads."""
    check_positive_int(n, "n", minimum=4)
    check_fraction(test_fraction, "test_fraction")
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise ValueError(f"features must be names from {sorted(FEATURES)}, got {list(features)!r}")
    needed = sum(FEATURES[f] for f in features)
    check_positive_int(n_bits, "n_bits", minimum=needed)
    gen = rng(seed)
    x = gen.choice(np.array([-1.0, 1.0]), size=(n, n_bits))
    columns, bits, start = [], [], 0
    for name in features:
        group = list(range(start, start + FEATURES[name]))
        part = x[:, group]
        columns.append(np.sign(part.sum(1)) if name == "majority" else part.prod(1))
        bits.append(group)
        start += len(group)
    y = np.stack(columns, 1)
    k = n - int(round(test_fraction * n))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    meta = {"loss": "mse", "features": list(features), "bits": bits, "seed": seed}
    return Task("feature_pair", "regression", t(x[:k]), t(y[:k]), t(x[k:]), t(y[k:]), meta=meta)
