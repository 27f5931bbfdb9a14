"""Character-level language modelling on text shipped in the repository's ``data/`` folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from explorer.data.sequences import next_token_pairs, sequence_meta
from explorer.data.task import Task, check_fraction, rng
from explorer.validation import check_positive_int

__all__ = ["char_text", "data_dir", "load_text"]

TEXTS = ("public_domain",)


def data_dir() -> Path:
    """The shipped data folder: ``$EXPLORER_DATA_DIR`` or ``data/`` next to the package."""
    env = os.environ.get("EXPLORER_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def load_text(name: str = "public_domain") -> str:
    """The text ``data/<name>.txt`` (see data/PROVENANCE.md for source and licence)."""
    if name not in TEXTS:
        raise ValueError(f"unknown text {name!r}; shipped texts: {TEXTS}")
    path = data_dir() / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing. It ships in the repository's data/ folder; run from a source "
            "checkout or set EXPLORER_DATA_DIR to a folder holding it."
        )
    return path.read_text(encoding="utf-8")


def char_text(
    name: str = "public_domain",
    *,
    seq_len: int = 64,
    n: int = 2000,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Task:
    """Random windows of ``seq_len + 1`` characters → next-character prediction at every position.

    Train windows come from the first (1 - test_fraction) of the text, test windows from the
    rest, so test text is unseen. ``meta["vocab"]`` lists the characters (sorted).
    """
    check_positive_int(seq_len, "seq_len", minimum=2)
    check_positive_int(n, "n")
    check_fraction(test_fraction, "test_fraction")
    text = load_text(name)
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text], dtype=np.int64)
    cut = int(len(ids) * (1 - test_fraction))
    if min(cut, len(ids) - cut) <= seq_len + 1:
        raise ValueError(
            f"seq_len={seq_len} is too long for the {len(ids) - cut}-character test part of "
            f"{name!r}; lower seq_len or test_fraction"
        )
    gen = rng(seed)
    n_test = max(1, int(round(n * test_fraction)))
    starts_train = gen.integers(0, cut - seq_len - 1, n - n_test)
    starts_test = gen.integers(cut, len(ids) - seq_len - 1, n_test)
    window = np.arange(seq_len + 1)
    train = ids[starts_train[:, None] + window]
    test = ids[starts_test[:, None] + window]
    (x_tr, y_tr), (x_te, y_te) = next_token_pairs(train, 1), next_token_pairs(test, 1)
    meta = sequence_meta(vocab, seq_len, 1, text=name, n_chars=len(ids), seed=seed)
    t = torch.from_numpy
    return Task("char_text", "sequence", t(x_tr), t(y_tr), t(x_te), t(y_te), meta=meta)
