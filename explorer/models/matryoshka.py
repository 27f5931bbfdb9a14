"""Matryoshka representations (Kusupati et al., *Matryoshka Representation Learning*, 2022).

:class:`Matryoshka` puts one linear classifier on each nested prefix z[:, :m] of an encoder's
embedding z and returns their logits stacked (B, P, C). Trained with cross-entropy on every
prefix (:func:`matryoshka_task` with ``nested=True``) the first coordinates carry the most
information; with ``nested=False`` only the full embedding is scored — standard training, the
control. :func:`adaptive_classify` is MRL's adaptive classification: each input uses the
smallest prefix whose classifier is confident enough.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from explorer.data.task import IGNORE_INDEX, Task
from explorer.models.hooks import HookPoint
from explorer.validation import check_positive_int

__all__ = ["Matryoshka", "adaptive_classify", "matryoshka_task"]


def _dims(dims: Sequence[int]) -> tuple[int, ...]:
    out = tuple(check_positive_int(d, "dims") for d in dims)
    if not out or list(out) != sorted(set(out)):
        raise ValueError(f"dims must be increasing prefix sizes, got {list(dims)!r}")
    return out


class Matryoshka(nn.Module):
    """``encoder`` (B, ...) → embedding (B, dims[-1]); one ``nn.Linear(m, n_classes)`` per prefix
    size m in ``dims``; output logits (B, len(dims), n_classes). Heads initialised from ``seed``.

    Hook point ``hook_embedding`` (B, dims[-1]).
    """

    def __init__(self, encoder: nn.Module, dims: Sequence[int], n_classes: int, seed: int = 0):
        super().__init__()
        self.dims = _dims(dims)
        check_positive_int(n_classes, "n_classes", minimum=2)
        self.encoder = encoder
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.heads = nn.ModuleList(nn.Linear(m, n_classes) for m in self.dims)
        self.hook_embedding = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.hook_embedding(self.encoder(x))  # (B, D)
        if z.ndim != 2 or z.shape[1] != self.dims[-1]:
            raise ValueError(
                f"the encoder must return (batch, {self.dims[-1]}) embeddings, got {tuple(z.shape)}"
            )
        return torch.stack([head(z[:, :m]) for head, m in zip(self.heads, self.dims)], dim=1)


def matryoshka_task(task: Task, n_prefixes: int, *, nested: bool = True) -> Task:
    """``task`` with its class labels repeated per prefix: y (N,) → (N, n_prefixes).

    ``nested=True`` scores every prefix (the MRL loss: the mean cross-entropy over prefixes);
    ``nested=False`` marks all but the full embedding ``IGNORE_INDEX`` (standard training).
    """
    check_positive_int(n_prefixes, "n_prefixes")
    if task.kind != "classification":
        raise ValueError(f"matryoshka_task needs a classification task, got {task.kind!r}")

    def repeat(y: torch.Tensor) -> torch.Tensor:
        out = y.long().reshape(-1, 1).repeat(1, n_prefixes)
        if not nested:
            out[:, :-1] = IGNORE_INDEX
        return out

    name = f"{task.name}_{'matryoshka' if nested else 'full_only'}"
    return Task(
        name, "classification", task.x_train, repeat(task.y_train), task.x_test,
        repeat(task.y_test), meta={**task.meta, "loss": "ce", "n_prefixes": n_prefixes},
    )  # fmt: skip


def adaptive_classify(
    logits: torch.Tensor, dims: Sequence[int], threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cascade over prefixes: labels (N,) and the prefix size each input used (N,).

    ``logits`` (N, P, C) from :class:`Matryoshka`; an input stops at the first prefix whose
    top softmax probability is ≥ ``threshold`` (the full embedding when none is).
    """
    sizes = torch.tensor(_dims(dims))
    if logits.ndim != 3 or logits.shape[1] != len(sizes):
        raise ValueError(
            f"logits must be (N, {len(sizes)} prefixes, classes), got {tuple(logits.shape)}"
        )
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1], got {threshold!r}")
    conf, labels = torch.softmax(logits.detach().float(), dim=-1).max(-1)  # (N, P)
    stop = conf >= threshold
    stop[:, -1] = True
    first = stop.float().argmax(1)  # first confident prefix
    rows = torch.arange(len(labels))
    return labels[rows, first], sizes[first]
