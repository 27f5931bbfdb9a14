"""Loss and accuracy for the task kinds: cross-entropy over classes or tokens, MSE otherwise.

Token targets equal to ``IGNORE`` (-100) are left out of loss and accuracy (e.g. the prompt half
of a copy task).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from explorer.train.config import TaskLike

__all__ = ["IGNORE", "batch_loss", "per_seed_loss", "resolve_loss"]

IGNORE = -100
_CE_KINDS = ("classification", "sequence")


def resolve_loss(task: TaskLike, loss: str | None) -> str:
    """``loss`` if given, else ``task.meta["loss"]``, else by ``task.kind``."""
    if loss is not None:
        return loss
    meta = getattr(task, "meta", None) or {}
    if meta.get("loss") in ("ce", "mse"):
        return str(meta["loss"])
    return "ce" if getattr(task, "kind", "") in _CE_KINDS else "mse"


def _ce_terms(
    out: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-target CE, correctness and validity, flattened over samples and positions."""
    if out.shape[:-1] != y.shape:
        raise ValueError(
            f"cross-entropy needs logits of shape targets.shape + (n_classes,), got logits "
            f"{tuple(out.shape)} for targets {tuple(y.shape)}"
        )
    logits = out.reshape(-1, out.shape[-1])
    target = y.reshape(-1)
    valid = target != IGNORE
    ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none")
    correct = (logits.argmax(-1) == target) & valid
    return ce, correct, valid


def _match(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if out.shape != y.shape and out.numel() == y.numel():
        out = out.reshape(y.shape)
    if out.shape != y.shape:
        raise ValueError(
            f"MSE needs the model output to match the targets' shape, got {tuple(out.shape)} "
            f"for targets {tuple(y.shape)}"
        )
    return out


def batch_loss(
    out: torch.Tensor, y: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean loss over the batch, and the accuracy (``None`` for MSE) as a 0-d tensor."""
    if loss == "ce":
        ce, correct, valid = _ce_terms(out, y)
        n = valid.sum().clamp_min(1)
        return ce.sum() / n, correct.sum() / n
    return F.mse_loss(_match(out, y).float(), y.float()), None


def per_seed_loss(
    out: torch.Tensor, y: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Like :func:`batch_loss` for stacked outputs (S, B, ...) and targets (S, B, ...) → (S,)."""
    s = out.shape[0]
    if loss == "ce":
        ce, correct, valid = _ce_terms(out, y)
        ce, correct, valid = ce.view(s, -1), correct.view(s, -1), valid.view(s, -1)
        n = valid.sum(1).clamp_min(1)
        return ce.sum(1) / n, correct.sum(1) / n
    diff = (_match(out, y).float() - y.float()).reshape(s, -1)
    return diff.pow(2).mean(1), None
