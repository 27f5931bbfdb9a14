"""Algorithmic sequence tasks for tiny transformers, in one next-token format.

Each example is a token sequence s (L,); the task stores x = s[:-1] and y = s[1:] (both (N, L-1)
int64) with y set to ``IGNORE_INDEX`` (-100) except where the answer is scored, so one causal
transformer with cross-entropy (``ignore_index=-100``) trains on all of them. Answers are tokens
of the same vocabulary; ``meta["vocab"]`` holds display strings, ``meta["answer_start"]`` the
index in y of the first scored position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from explorer.data.task import IGNORE_INDEX, Task, check_fraction, rng, split_rows
from explorer.validation import check_positive_int

__all__ = [
    "associative_recall",
    "copy",
    "hierarchical",
    "induction",
    "majority",
    "modular_addition",
    "parentheses",
    "repeated_segment",
    "reverse",
    "sort",
]


def next_token_pairs(seqs: np.ndarray, answer_start: int) -> tuple[np.ndarray, np.ndarray]:
    """Full sequences (N, L) → inputs s[:, :-1] and targets s[:, 1:], unscored before the answer."""
    seqs = np.asarray(seqs, dtype=np.int64)
    x, y = seqs[:, :-1].copy(), seqs[:, 1:].copy()
    y[:, : answer_start - 1] = IGNORE_INDEX
    return x, y


def sequence_meta(vocab: Sequence[str], seq_len: int, answer_start: int, **meta: object) -> dict:
    """The metadata every sequence task carries (``answer_start`` indexes y)."""
    return {
        "loss": "ce", "vocab": list(vocab), "vocab_size": len(vocab), "seq_len": seq_len,
        "ignore_index": IGNORE_INDEX, "answer_start": answer_start - 1, **meta,
    }  # fmt: skip


def sequence_task(
    name: str,
    seqs: np.ndarray,
    answer_start: int,
    vocab: Sequence[str],
    *,
    test_fraction: float,
    gen: np.random.Generator,
    **meta: object,
) -> Task:
    """Wrap full sequences (N, L) into a next-token task scored from ``answer_start`` on."""
    x, y = next_token_pairs(seqs, answer_start)
    info = sequence_meta(vocab, x.shape[1], answer_start, **meta)
    return Task(name, "sequence", *split_rows(x, y, test_fraction, gen), meta=info)


def _symbols(n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [letters[i] if n <= 26 else f"t{i}" for i in range(n)]


def modular_addition(p: int = 53, *, train_fraction: float = 0.4, seed: int = 0) -> Task:
    """All p² pairs ``a b =`` → (a + b) mod p; a random ``train_fraction`` of the table trains.

    Tokens 0..p-1 are the residues, token p is ``=``; ``x`` is (p², 3) and only the last position
    of ``y`` is scored (y[:, 2] = answer; y[:, :2] = -100).
    """
    check_positive_int(p, "p", minimum=2)
    check_fraction(train_fraction, "train_fraction")
    grid_a, grid_b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    a, b = grid_a.reshape(-1), grid_b.reshape(-1)
    seqs = np.stack([a, b, np.full_like(a, p), (a + b) % p], axis=1)
    vocab = [str(i) for i in range(p)] + ["="]
    return sequence_task(
        "modular_addition", seqs, 3, vocab, test_fraction=1.0 - train_fraction, gen=rng(seed),
        p=p, train_fraction=train_fraction, seed=seed, n_classes=p,
    )  # fmt: skip


def _separated(
    name: str, n: int, length: int, n_symbols: int, test_fraction: float, seed: int, fn: str
) -> Task:
    check_positive_int(n, "n")
    check_positive_int(length, "length")
    check_positive_int(n_symbols, "n_symbols", minimum=2)
    gen = rng(seed)
    src = gen.integers(0, n_symbols, (n, length))
    out = {"copy": src, "reverse": src[:, ::-1], "sort": np.sort(src, axis=1)}[fn]
    sep = np.full((n, 1), n_symbols)
    seqs = np.concatenate([src, sep, out], axis=1)
    vocab = [*_symbols(n_symbols), "|"]
    return sequence_task(
        name, seqs, length + 1, vocab, test_fraction=test_fraction, gen=gen,
        length=length, seed=seed,
    )  # fmt: skip


def copy(
    n: int = 2000, *, length: int = 8, n_symbols: int = 8, test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:  # fmt: skip
    """``s | s``: reproduce a random string after the separator."""
    return _separated("copy", n, length, n_symbols, test_fraction, seed, "copy")


def reverse(
    n: int = 2000, *, length: int = 8, n_symbols: int = 8, test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:  # fmt: skip
    """``s | reversed(s)``."""
    return _separated("reverse", n, length, n_symbols, test_fraction, seed, "reverse")


def sort(
    n: int = 2000, *, length: int = 8, n_symbols: int = 8, test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:  # fmt: skip
    """``s | sorted(s)``."""
    return _separated("sort", n, length, n_symbols, test_fraction, seed, "sort")


def induction(
    n: int = 2000, *, length: int = 12, n_symbols: int = 16, test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:  # fmt: skip
    """A random string repeated twice, ``A A``: the second copy is predictable only by finding
    the previous occurrence of the current token and copying its successor (induction heads).
    Scored on the second copy from its second token on."""
    check_positive_int(n, "n")
    check_positive_int(length, "length", minimum=2)
    check_positive_int(n_symbols, "n_symbols", minimum=2)
    gen = rng(seed)
    a = gen.integers(0, n_symbols, (n, length))
    seqs = np.concatenate([a, a], axis=1)
    return sequence_task(
        "induction", seqs, length + 1, _symbols(n_symbols), test_fraction=test_fraction,
        gen=gen, length=length, seed=seed,
    )  # fmt: skip


def repeated_segment(
    n: int = 2000, *, seq_len: int = 13, min_length: int = 3, max_length: int = 6,
    n_symbols: int = 10, test_fraction: float = 0.2, seed: int = 0,
) -> Task:  # fmt: skip
    """One segment of distinct tokens repeated right after itself, at a random start and of a
    random length in [``min_length``, ``max_length``], in filler drawn from the other tokens;
    scored on the repeat from its second token on.

    Unlike :func:`induction` (a fixed period, which a head can solve by attending a fixed
    distance back), the distance to the earlier occurrence varies, so only matching content —
    a previous-token head feeding an induction head — predicts the repeat. ``x`` and ``y`` are
    (n, seq_len); ``meta["chance"]`` = 1 / n_symbols is the accuracy of guessing.
    """
    check_positive_int(n, "n")
    check_positive_int(min_length, "min_length", minimum=2)
    check_positive_int(max_length, "max_length", minimum=min_length)
    check_positive_int(n_symbols, "n_symbols", minimum=max_length + 1)
    if seq_len + 1 < 2 * max_length:
        raise ValueError(
            f"seq_len={seq_len} is too short for two copies of a {max_length}-token segment; "
            f"use seq_len >= {2 * max_length - 1}"
        )
    gen = rng(seed)
    seqs = np.empty((n, seq_len + 1), dtype=np.int64)
    lengths = gen.integers(min_length, max_length + 1, n)
    starts = (gen.random(n) * (seq_len + 2 - 2 * lengths)).astype(np.int64)
    y = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    for i, (p, k) in enumerate(zip(starts, lengths)):
        order = gen.permutation(n_symbols)
        segment, others = order[:k], order[k:]  # filler never repeats a segment token
        seqs[i] = gen.choice(others, seq_len + 1)
        seqs[i, p : p + k] = seqs[i, p + k : p + 2 * k] = segment
        y[i, p + k : p + 2 * k - 1] = segment[1:]
    info = sequence_meta(
        _symbols(n_symbols), seq_len, min_length + 1, min_length=min_length,
        max_length=max_length, seed=seed, chance=1.0 / n_symbols,
    )  # fmt: skip
    return Task("repeated_segment", "sequence", *split_rows(seqs[:, :-1], y, test_fraction, gen),
                meta=info)  # fmt: skip


def associative_recall(
    n: int = 2000, *, n_pairs: int = 4, n_keys: int = 8, n_values: int = 8,
    test_fraction: float = 0.2, seed: int = 0,
) -> Task:  # fmt: skip
    """``k₁ v₁ … kₙ vₙ ? k`` → the value stored with key k (distinct keys per sequence)."""
    check_positive_int(n, "n")
    check_positive_int(n_pairs, "n_pairs")
    if n_keys < n_pairs:
        raise ValueError(f"n_keys={n_keys} must be >= n_pairs={n_pairs} (keys are distinct)")
    check_positive_int(n_values, "n_values", minimum=2)
    gen = rng(seed)
    keys = np.argsort(gen.random((n, n_keys)), axis=1)[:, :n_pairs]
    values = gen.integers(0, n_values, (n, n_pairs)) + n_keys
    which = gen.integers(0, n_pairs, n)
    rows = np.arange(n)
    q = n_keys + n_values
    seqs = np.concatenate(
        [
            np.stack([keys, values], axis=2).reshape(n, -1),
            np.full((n, 1), q),
            keys[rows, which][:, None],
            values[rows, which][:, None],
        ],
        axis=1,
    )
    vocab = [f"k{i}" for i in range(n_keys)] + [f"v{i}" for i in range(n_values)] + ["?"]
    return sequence_task(
        "associative_recall", seqs, seqs.shape[1] - 1, vocab, test_fraction=test_fraction,
        gen=gen, n_pairs=n_pairs, seed=seed,
    )  # fmt: skip


def majority(n: int = 2000, *, length: int = 9, test_fraction: float = 0.2, seed: int = 0) -> Task:
    """A bit string, ``=``, then its majority bit (``length`` odd, so no ties)."""
    check_positive_int(n, "n")
    if length < 1 or length % 2 == 0:
        raise ValueError(f"length must be odd and >= 1 (no ties), got {length!r}")
    gen = rng(seed)
    bits = gen.integers(0, 2, (n, length))
    label = (bits.sum(1) * 2 > length).astype(np.int64)
    seqs = np.concatenate([bits, np.full((n, 1), 2), label[:, None]], axis=1)
    return sequence_task(
        "majority", seqs, length + 1, ["0", "1", "="], test_fraction=test_fraction, gen=gen,
        length=length, seed=seed,
    )  # fmt: skip


def _balanced(s: np.ndarray) -> bool:
    depth = np.cumsum(np.where(s == 0, 1, -1))
    return bool(depth[-1] == 0 and depth.min() >= 0)


def _dyck(length: int, gen: np.random.Generator) -> np.ndarray:
    """A random balanced string of 0 = '(' and 1 = ')' of even ``length``."""
    out, depth, opens_left = [], 0, length // 2
    for i in range(length):
        remaining = length - i
        can_open, can_close = opens_left > 0, depth > 0
        if can_open and (not can_close or (depth < remaining - 1 and gen.random() < 0.5)):
            out.append(0)
            depth, opens_left = depth + 1, opens_left - 1
        else:
            out.append(1)
            depth -= 1
    return np.array(out)


def parentheses(
    n: int = 2000, *, length: int = 10, test_fraction: float = 0.2, seed: int = 0
) -> Task:
    """A string of ``(`` and ``)``, ``=``, then ``yes`` if balanced else ``no`` (half each).

    Negatives are shuffles of balanced strings (equal counts, wrong order) or random strings,
    so counting alone does not solve the task.
    """
    check_positive_int(n, "n")
    if length < 2 or length % 2:
        raise ValueError(f"length must be even and >= 2, got {length!r}")
    gen = rng(seed)
    rows, labels = [], []
    for i in range(n):
        s = _dyck(length, gen)
        if i % 2:
            while _balanced(s):
                s = gen.permutation(s) if gen.random() < 0.5 else gen.integers(0, 2, length)
        rows.append(s)
        labels.append(int(_balanced(s)))
    body = np.stack(rows)
    ans = np.array(labels)[:, None] + 3
    seqs = np.concatenate([body, np.full((n, 1), 2), ans], axis=1)
    return sequence_task(
        "parentheses", seqs, length + 1, ["(", ")", "=", "no", "yes"],
        test_fraction=test_fraction, gen=gen, length=length, seed=seed,
    )  # fmt: skip


def hierarchical(
    n: int = 2000, *, n_symbols: int = 4, depth: int = 3, n_rules: int = 2,
    test_fraction: float = 0.2, seed: int = 0, grammar_seed: int = 0,
) -> Task:  # fmt: skip
    """Leaves of a random binary tree grammar, ``=``, then the root symbol.

    A root symbol is drawn uniformly; each symbol rewrites into one of ``n_rules`` fixed child
    pairs (drawn once from ``grammar_seed``, distinct across symbols so the root is identifiable);
    after ``depth`` levels the 2^depth leaves form the sequence. Inferring the root needs the
    correlations between leaves at every scale (Garnier-Brun et al., hierarchical filtering).
    """
    check_positive_int(n, "n")
    check_positive_int(depth, "depth")
    check_positive_int(n_symbols, "n_symbols", minimum=2)
    check_positive_int(n_rules, "n_rules")
    if n_symbols * n_rules > n_symbols**2:
        raise ValueError(
            f"n_symbols*n_rules={n_symbols * n_rules} exceeds the {n_symbols**2} child pairs"
        )
    g = rng(grammar_seed)
    pairs = g.permutation(n_symbols**2)[: n_symbols * n_rules].reshape(n_symbols, n_rules)
    rules = np.stack([pairs // n_symbols, pairs % n_symbols], axis=-1)  # (q, rules, 2)
    gen = rng(seed)
    roots = gen.integers(0, n_symbols, n)
    level = roots[:, None]
    for _ in range(depth):
        pick = gen.integers(0, n_rules, level.shape)
        level = rules[level, pick].reshape(n, -1)  # (n, 2·width)
    seqs = np.concatenate([level, np.full((n, 1), n_symbols), roots[:, None]], axis=1)
    vocab = [f"s{i}" for i in range(n_symbols)] + ["="]
    return sequence_task(
        "hierarchical", seqs, level.shape[1] + 1, vocab, test_fraction=test_fraction, gen=gen,
        depth=depth, n_rules=n_rules, grammar_seed=grammar_seed, seed=seed,
        rules=rules.tolist(),
    )  # fmt: skip
