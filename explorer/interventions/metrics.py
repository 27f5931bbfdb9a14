"""Scalar read-outs of a model's output, one value per sequence (for patching and ablation).

``metric`` is a keyword or a callable ``output -> (N,)``:

- ``"logit_diff"``: logit of ``answer`` minus logit of ``wrong`` at ``position``;
- ``"probability"``: softmax probability of ``answer`` at ``position``;
- ``"loss"``: cross-entropy of ``targets`` (B, T) (``-100`` = not scored) averaged over the scored
  positions of each row, or of ``answer`` at ``position``;
- ``"accuracy"``: the same positions scored by argmax.

``answer``/``wrong``: one token id, or one per row (B,); ``position``: one index (negative
counts from the end) or one per row. When the model runs on N = k·B rows (k variants of a
batch of B, variant-major), per-row arguments are tiled to N.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["METRICS", "logits_of", "metric_fn"]

METRICS = ("logit_diff", "probability", "loss", "accuracy")
IGNORE = -100
Metric = Callable[[Any], torch.Tensor]


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a model output: a tensor itself, or ``output.logits`` (Hugging Face)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(
        f"the model returned {type(output).__name__} without logits; pass metric= a callable "
        "output -> (N,) values (e.g. a similarity of pooled hidden states)"
    )


def _tiled(value: Any, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value).reshape(-1)
    if t.numel() == 1:
        return t.expand(n)
    if n % t.numel():
        raise ValueError(f"{name} has {t.numel()} entries, which does not divide {n} rows")
    return t.repeat(n // t.numel())


def _at_position(logits: torch.Tensor, position: Any) -> torch.Tensor:
    """(N, T, V) → (N, V) at one position per row; 2-D logits (N, V) pass through."""
    if logits.ndim == 2:
        return logits
    n, t = logits.shape[:2]
    pos = _tiled(position, n, "position").to(logits.device)
    if int(pos.min()) < -t or int(pos.max()) >= t:
        raise IndexError(f"position {position!r} is out of range for {t} tokens")
    return logits[torch.arange(n, device=logits.device), pos % t]


def metric_fn(
    metric: str | Metric,
    *,
    answer: Any = None,
    wrong: Any = None,
    targets: Any = None,
    position: Any = -1,
) -> Metric:
    """The read-out ``output -> (N,)`` named by ``metric`` (or ``metric`` itself if callable)."""
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS} or a callable, got {metric!r}")
    need = {"logit_diff": ("answer", "wrong"), "probability": ("answer",)}.get(metric, ())
    given = {"answer": answer, "wrong": wrong}
    missing = [k for k in need if given[k] is None]
    if metric in ("loss", "accuracy") and targets is None and answer is None:
        missing = ["targets (B, T) or answer"]
    if missing:
        raise ValueError(f"metric={metric!r} needs {' and '.join(missing)}")

    def token_logit(logits: torch.Tensor, token: Any, name: str) -> torch.Tensor:
        at = _at_position(logits, position)
        ids = _tiled(token, at.shape[0], name).to(at.device)
        return at.gather(1, ids[:, None])[:, 0]

    def read(output: Any) -> torch.Tensor:
        logits = logits_of(output).float()
        if metric == "logit_diff":
            return token_logit(logits, answer, "answer") - token_logit(logits, wrong, "wrong")
        if metric == "probability":
            return token_logit(logits.softmax(-1), answer, "answer")
        if targets is not None:
            y = torch.as_tensor(targets).to(logits.device)
            y = y.repeat(logits.shape[0] // y.shape[0], *[1] * (y.ndim - 1))
            if y.shape != logits.shape[:-1]:
                raise ValueError(
                    f"targets have shape {tuple(y.shape)} but the logits {tuple(logits.shape)}"
                )
        else:
            at = _at_position(logits, position)
            logits = at[:, None]
            y = _tiled(answer, at.shape[0], "answer").to(at.device)[:, None]
        scored = y != IGNORE
        if metric == "loss":
            ce = F.cross_entropy(logits.transpose(1, -1), y.clamp_min(0), reduction="none")
            per = (ce * scored).sum(-1)
        else:
            per = ((logits.argmax(-1) == y) & scored).sum(-1).to(logits.dtype)
        return per / scored.sum(-1).clamp_min(1)

    return read
