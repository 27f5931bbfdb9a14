"""Search spaces: a grid (every combination) or random samples, expanded into plain configs.

Configs are dicts ``{name: value}`` of JSON scalars (bool, int, float, str, None), so they are
table columns and hash to a stable config id. Both backends run the configs expanded here, so
a sweep on Ray runs exactly the configs (and seeds) it runs locally.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.validation import check_positive_int

__all__ = [
    "Choice",
    "Distribution",
    "LogUniform",
    "RandInt",
    "Uniform",
    "config_id",
    "expand_grid",
    "sample_space",
]

Scalar = bool | int | float | str | None


def check_value(name: str, value: Any) -> Scalar:
    """A JSON scalar (numpy scalars unwrapped, finite floats), else a ValueError saying why."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name}: values must be finite, got {value!r}")
        return value
    raise TypeError(
        f"{name}: sweep values must be numbers, strings, booleans or None (one table column "
        f"each), got {type(value).__name__} {value!r}"
    )


def config_id(config: Mapping[str, Any]) -> str:
    """A stable 10-hex-digit id of a config: the same values give the same id in any order."""
    clean = {str(k): check_value(str(k), v) for k, v in config.items()}
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Scalar]]:
    """Every combination of ``grid``'s values, the first key varying slowest.

    >>> expand_grid({"width": [16, 32], "lr": [1e-3]})
    [{'width': 16, 'lr': 0.001}, {'width': 32, 'lr': 0.001}]
    """
    names, columns = [], []
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"grid[{name!r}] must be a list of values, got {values!r}")
        if not values:
            raise ValueError(f"grid[{name!r}] is empty; give at least one value")
        checked = [check_value(f"grid[{name!r}]", v) for v in values]
        if len({json.dumps(v) for v in checked}) != len(checked):
            raise ValueError(f"grid[{name!r}] repeats a value: {checked}")
        names.append(str(name))
        columns.append(checked)
    return [dict(zip(names, combo)) for combo in itertools.product(*columns)]


@dataclass(frozen=True)
class Distribution:
    """A random hyper-parameter; :meth:`sample` draws one value from a numpy Generator."""

    def sample(self, rng: np.random.Generator) -> Scalar:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Distribution):
    """A float uniform in [low, high)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"Uniform needs finite low < high, got {self.low}, {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform(Distribution):
    """A float whose logarithm is uniform: ``LogUniform(1e-4, 1e-1)`` for learning rates."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high and math.isfinite(self.high)):
            raise ValueError(f"LogUniform needs 0 < low < high, got {self.low}, {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class RandInt(Distribution):
    """An integer uniform in [low, high] (both included)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and self.low <= self.high):
            raise ValueError(f"RandInt needs integers low <= high, got {self.low}, {self.high}")

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class Choice(Distribution):
    """One of ``values``, uniformly."""

    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Choice needs at least one value")
        for v in self.values:
            check_value("Choice", v)

    def sample(self, rng: np.random.Generator) -> Scalar:
        return self.values[int(rng.integers(len(self.values)))]


def sample_space(
    space: Mapping[str, Distribution | Sequence[Any]], n: int, *, seed: int = 0
) -> list[dict[str, Scalar]]:
    """``n`` random configs from ``space`` (a list of values means :class:`Choice`).

    Deterministic given ``seed``; a config drawn twice is kept once (so fewer than ``n`` may
    come back from a small discrete space).
    """
    n = check_positive_int(n, "n_samples")
    dists: dict[str, Distribution] = {}
    for name, d in space.items():
        if isinstance(d, Distribution):
            dists[str(name)] = d
        elif isinstance(d, Sequence) and not isinstance(d, (str, bytes)):
            dists[str(name)] = Choice(tuple(d))
        else:
            raise TypeError(
                f"space[{name!r}] must be a Distribution (Uniform, LogUniform, RandInt, Choice) "
                f"or a list of values, got {d!r}"
            )
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Scalar]] = {}
    for _ in range(n):
        config = {name: d.sample(rng) for name, d in dists.items()}
        out.setdefault(config_id(config), config)
    return list(out.values())
