"""An attention head as an associative memory: store N key → value pairs, read one back by its key.

Keys are random unit vectors in d_k dimensions, values random ±1 vectors; the query is a stored
key. Two read-outs of the same stored pairs:

- ``"hebbian"`` — linear attention, v̂ = Σᵢ vᵢ (kᵢ·q): the outer-product (Hebbian) memory
  M = Σᵢ vᵢ kᵢᵀ read as M q. Every other pair adds crosstalk of variance 1/d_k, so a value bit is
  read correctly with probability Φ(√(d_k / (N − 1))): interference depends on N / d_k and the
  memory holds O(d_k) pairs (*Understanding Transformers through the Lens of Pavlovian
  Conditioning*).
- ``"softmax"`` — softmax attention with inverse temperature β, v̂ = Σᵢ vᵢ softmax(β K q)ᵢ: one
  update of a modern Hopfield network (*Hopfield Networks is All You Need*), whose capacity grows
  exponentially with d_k for large β.

Accuracy is the fraction of value bits whose sign is read back correctly.
"""

from __future__ import annotations

import numpy as np

from explorer.validation import check_positive_int

__all__ = ["RULES", "memory_capacity", "recall_accuracy"]

RULES = ("hebbian", "softmax")


def _check(rule: str, beta: float) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite inverse temperature >= 0, got {beta!r}")


def recall_accuracy(
    n_pairs: int,
    d_key: int,
    *,
    rule: str = "softmax",
    beta: float = 1.0,
    d_value: int = 64,
    n_queries: int = 128,
    seed: int = 0,
) -> float:
    """Bit accuracy of reading back ``min(n_queries, n_pairs)`` stored values from their keys."""
    n = check_positive_int(n_pairs, "n_pairs")
    d = check_positive_int(d_key, "d_key")
    dv = check_positive_int(d_value, "d_value")
    nq = min(check_positive_int(n_queries, "n_queries"), n)
    _check(rule, beta)
    gen = np.random.default_rng(seed)
    keys = gen.standard_normal((n, d))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    values = gen.choice(np.array([-1.0, 1.0]), size=(n, dv))
    asked = gen.choice(n, size=nq, replace=False)
    scores = keys[asked] @ keys.T  # (nq, n)
    if rule == "hebbian":
        weights = scores
    else:
        weights = np.exp(beta * (scores - scores.max(1, keepdims=True)))
        weights /= weights.sum(1, keepdims=True)
    read = weights @ values  # (nq, d_value)
    return float((np.sign(read) == values[asked]).mean())


def memory_capacity(
    d_key: int,
    *,
    rule: str = "softmax",
    beta: float = 1.0,
    level: float = 0.9,
    max_pairs: int = 2**15,
    seed: int = 0,
    **kwargs: int,
) -> int:
    """The smallest number of stored pairs at which :func:`recall_accuracy` falls below ``level``.

    Doubling from 2 pairs, then bisection (each count is evaluated with the same ``seed``).
    Returns ``max_pairs + 1`` when the accuracy stays at or above ``level`` up to ``max_pairs``.
    """
    if not 0.5 < level < 1:
        raise ValueError(f"level must lie in (0.5, 1) (0.5 is chance), got {level!r}")
    check_positive_int(max_pairs, "max_pairs", minimum=2)

    def ok(n: int) -> bool:
        acc = recall_accuracy(n, d_key, rule=rule, beta=beta, seed=seed, **kwargs)
        return acc >= level

    lo = 1
    while ok(min(2 * lo, max_pairs)):
        if 2 * lo >= max_pairs:
            return max_pairs + 1
        lo *= 2
    hi = min(2 * lo, max_pairs)  # ok(lo) holds (one pair is always read back), ok(hi) fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return hi
