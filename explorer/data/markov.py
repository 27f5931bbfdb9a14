"""A sequence task whose next token depends on one local and one global cue.

Each sequence starts with a topic token (one of ``n_topics``); every later symbol is drawn from
the topic's ``branching`` allowed successors of the symbol ``lag`` positions before it. With the
default ``lag=2`` the token after position i depends on the token at i − 1, not on the one at i:
predicting it needs a head that looks one token back (a local cue) and one that finds the topic
at position 0 (a global cue) — a setup in which local heads can appear next to global ones
(*ConvBERT*: "some heads only need to learn local dependencies").
"""

from __future__ import annotations

import numpy as np

from explorer.data.sequences import sequence_task
from explorer.data.task import Task, rng
from explorer.validation import check_positive_int

__all__ = ["topic_markov"]


def topic_markov(
    n: int = 2000,
    *,
    length: int = 24,
    n_symbols: int = 12,
    n_topics: int = 4,
    branching: int = 2,
    lag: int = 2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:
    """Sequences ``topic s₁ … s_length`` with sᵢ drawn from the topic's successors of s_{i−lag}.

    Tokens 0 … n_symbols−1 are symbols, n_symbols … n_symbols+n_topics−1 the topics; s₁ … s_lag
    are uniform. Scored on every symbol after s_lag. ``meta["successors"]`` (n_topics, n_symbols, branching) holds
    the chains; ``meta["best_accuracy"]`` = 1 / branching is what a model that knows the topic
    and the current symbol can reach.
    """
    check_positive_int(n, "n")
    check_positive_int(length, "length", minimum=3)
    check_positive_int(n_symbols, "n_symbols", minimum=2)
    check_positive_int(n_topics, "n_topics", minimum=2)
    check_positive_int(branching, "branching")
    check_positive_int(lag, "lag")
    if lag + 2 > length:
        raise ValueError(f"lag={lag} leaves nothing to predict in sequences of length {length}")
    if branching >= n_symbols:
        raise ValueError(f"branching={branching} must be below n_symbols={n_symbols}")
    gen = rng(seed)
    successors = np.stack(
        [
            [gen.choice(n_symbols, branching, replace=False) for _ in range(n_symbols)]
            for _ in range(n_topics)
        ]
    )  # fmt: skip  (n_topics, n_symbols, branching)
    topics = gen.integers(0, n_topics, n)
    seqs = np.empty((n, length + 1), dtype=np.int64)
    seqs[:, 0] = n_symbols + topics
    seqs[:, 1 : lag + 1] = gen.integers(0, n_symbols, (n, lag))
    for i in range(lag + 1, length + 1):
        pick = gen.integers(0, branching, n)
        seqs[:, i] = successors[topics, seqs[:, i - lag], pick]
    vocab = [f"s{i}" for i in range(n_symbols)] + [f"T{k}" for k in range(n_topics)]
    return sequence_task(
        "topic_markov", seqs, lag + 1, vocab, test_fraction=test_fraction, gen=gen,
        successors=successors, best_accuracy=1.0 / branching, n_topics=n_topics, lag=lag,
        seed=seed,
    )  # fmt: skip
