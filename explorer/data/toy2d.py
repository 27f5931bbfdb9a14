"""2-D classification toys: spirals, moons, circles, XOR, Gaussian blobs, checkerboard.

All share the keywords ``n`` (total points), ``noise`` (Gaussian jitter, in units of the data's
scale), ``test_fraction``, ``imbalance`` (size of the smallest class relative to the largest,
1 = balanced; class sizes fall geometrically) and ``seed``. Inputs lie roughly in [-1, 1]².
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from explorer.data.task import Task, rng, split_rows
from explorer.validation import check_number, check_positive_int

__all__ = ["blobs", "checkerboard", "circles", "moons", "spirals", "xor"]

Sampler = Callable[[int, int, np.random.Generator], np.ndarray]


def class_counts(n: int, n_classes: int, imbalance: float) -> list[int]:
    """Sizes n_c ∝ imbalance^(c/(K-1)) summing to n, each at least 1."""
    if not (0.0 < imbalance <= 1.0):
        raise ValueError(
            f"imbalance must lie in (0, 1] (smallest/largest class size), got {imbalance!r}"
        )
    if n < n_classes:
        raise ValueError(f"n={n} points cannot cover {n_classes} classes")
    w = np.array([imbalance ** (c / max(n_classes - 1, 1)) for c in range(n_classes)])
    counts = np.maximum(1, np.floor(n * w / w.sum())).astype(int)
    counts[0] += n - counts.sum()
    return [int(c) for c in counts]


def _make(
    name: str,
    sampler: Sampler,
    n: int,
    n_classes: int,
    noise: float,
    test_fraction: float,
    imbalance: float,
    seed: int,
    **params: object,
) -> Task:
    check_positive_int(n, "n", minimum=2)
    check_positive_int(n_classes, "n_classes", minimum=2)
    check_number(noise, "noise", low=0)
    check_number(imbalance, "imbalance", low=0, low_open=True, high=1)
    gen = rng(seed)
    xs, ys = [], []
    for c, count in enumerate(class_counts(n, n_classes, imbalance)):
        pts = sampler(c, count, gen)
        xs.append(pts + noise * gen.standard_normal(pts.shape))
        ys.append(np.full(count, c, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    meta = {
        "loss": "ce", "n_classes": n_classes, "in_dim": 2, "noise": noise,
        "imbalance": imbalance, "seed": seed, **params,
    }  # fmt: skip
    return Task(name, "classification", *split_rows(x, y, test_fraction, gen), meta=meta)


def spirals(
    n: int = 1000,
    *,
    n_classes: int = 2,
    turns: float = 1.5,
    noise: float = 0.03,
    test_fraction: float = 0.25,
    imbalance: float = 1.0,
    seed: int = 0,
) -> Task:
    """Interleaved spiral arms, one per class, radius growing from 0 to 1 over ``turns``."""
    check_number(turns, "turns", low=0, low_open=True)

    def sample(c: int, m: int, gen: np.random.Generator) -> np.ndarray:
        t = np.sqrt(gen.uniform(0.02, 1.0, m))
        ang = 2 * np.pi * (turns * t + c / n_classes)
        return np.stack([t * np.cos(ang), t * np.sin(ang)], axis=1)

    return _make(
        "spirals", sample, n, n_classes, noise, test_fraction, imbalance, seed, turns=turns
    )


def moons(
    n: int = 1000,
    *,
    noise: float = 0.08,
    test_fraction: float = 0.25,
    imbalance: float = 1.0,
    seed: int = 0,
) -> Task:
    """Two interleaving half circles (as scikit-learn's make_moons), centred and scaled."""

    def sample(c: int, m: int, gen: np.random.Generator) -> np.ndarray:
        th = gen.uniform(0, np.pi, m)
        pts = (
            np.stack([np.cos(th), np.sin(th)], 1)
            if c == 0
            else np.stack([1 - np.cos(th), 0.5 - np.sin(th)], 1)
        )
        return (pts - [0.5, 0.25]) / 1.5

    return _make("moons", sample, n, 2, noise, test_fraction, imbalance, seed)


def circles(
    n: int = 1000,
    *,
    n_classes: int = 2,
    noise: float = 0.04,
    test_fraction: float = 0.25,
    imbalance: float = 1.0,
    seed: int = 0,
) -> Task:
    """Concentric rings, class c at radius (c + 1) / n_classes."""

    def sample(c: int, m: int, gen: np.random.Generator) -> np.ndarray:
        th = gen.uniform(0, 2 * np.pi, m)
        r = (c + 1) / n_classes
        return r * np.stack([np.cos(th), np.sin(th)], 1)

    return _make("circles", sample, n, n_classes, noise, test_fraction, imbalance, seed)


def xor(
    n: int = 1000,
    *,
    noise: float = 0.0,
    test_fraction: float = 0.25,
    imbalance: float = 1.0,
    seed: int = 0,
) -> Task:
    """Uniform points in [-1, 1]²; label = sign(x₀) XOR sign(x₁) (quadrants)."""

    def sample(c: int, m: int, gen: np.random.Generator) -> np.ndarray:
        pts = gen.uniform(0.02, 1.0, (m, 2))
        s0 = gen.choice([-1.0, 1.0], m)
        s1 = s0 if c == 0 else -s0
        return pts * np.stack([s0, s1], 1)

    return _make("xor", sample, n, 2, noise, test_fraction, imbalance, seed)


def blobs(
    n: int = 1000,
    *,
    n_classes: int = 3,
    spread: float = 0.15,
    noise: float = 0.0,
    test_fraction: float = 0.25,
    imbalance: float = 1.0,
    seed: int = 0,
) -> Task:
    """Isotropic Gaussian blobs (std ``spread``) with centres evenly placed on a circle of 0.7."""
    check_number(spread, "spread", low=0)

    def sample(c: int, m: int, gen: np.random.Generator) -> np.ndarray:
        ang = 2 * np.pi * c / n_classes
        centre = 0.7 * np.array([np.cos(ang), np.sin(ang)])
        return centre + spread * gen.standard_normal((m, 2))

    return _make(
        "blobs", sample, n, n_classes, noise, test_fraction, imbalance, seed, spread=spread
    )


def checkerboard(
    n: int = 2000,
    *,
    tiles: int = 4,
    noise: float = 0.0,
    test_fraction: float = 0.25,
    imbalance: float = 1.0,
    seed: int = 0,
) -> Task:
    """Uniform points in [-1, 1]² on a ``tiles``×``tiles`` board; label = tile colour."""
    check_positive_int(tiles, "tiles", minimum=2)

    def sample(c: int, m: int, gen: np.random.Generator) -> np.ndarray:
        cells = np.argwhere((np.add.outer(np.arange(tiles), np.arange(tiles)) % 2) == c)
        pick = cells[gen.integers(0, len(cells), m)]
        return (pick + gen.uniform(0, 1, (m, 2))) * (2 / tiles) - 1

    return _make("checkerboard", sample, n, 2, noise, test_fraction, imbalance, seed, tiles=tiles)
