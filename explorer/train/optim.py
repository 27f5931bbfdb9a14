"""Optimizers, learning-rate schedules and gradient clipping, shared by single- and multi-seed
training."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from explorer.train.config import TrainConfig

__all__ = ["build_optimizer", "lr_at", "set_lr"]


def build_optimizer(params: Sequence[torch.Tensor], config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with ``momentum``), Adam or AdamW over ``params`` as ``config`` says.

    ``foreach`` stays on: every update is elementwise, so stacked (multi-seed) parameters get
    exactly the update each seed would get alone.
    """
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for update number ``step`` (0-based) under ``config.schedule``."""
    base = config.lr
    if config.warmup_steps and step < config.warmup_steps:
        return base * (step + 1) / config.warmup_steps
    span = max(config.total_steps - config.warmup_steps, 1)
    t = min(max(step - config.warmup_steps, 0) / span, 1.0)
    if config.schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * t))
    if config.schedule == "linear":
        return base * (1.0 - t)
    if config.schedule == "step":
        return base * (0.1 if t >= 0.5 else 1.0) * (0.1 if t >= 0.75 else 1.0)
    return base


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
