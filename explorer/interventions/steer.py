"""Steering: add a vector to the activation at a site, e.g. the mean difference between the
activations of two sets of inputs.

    v = steering_vector(model, happy_texts, sad_texts, "blocks.3.hook_resid_post")
    out = steer(model, texts, "blocks.3.hook_resid_post", v, scale=4.0)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from explorer.interventions.run import Index, Intervention, run_with_hooks
from explorer.validation import check_array, check_number

__all__ = ["Steering", "steer", "steering_vector"]


class Steering(Intervention):
    """Add ``scale · vector`` along the last axis of the activation at ``site`` (at the
    selected heads/positions; every position by default)."""

    def __init__(
        self,
        site: str,
        vector: torch.Tensor,
        scale: float = 1.0,
        *,
        head: Index = None,
        position: Index = None,
    ) -> None:
        super().__init__(site, head=head, position=position)
        vector = torch.as_tensor(check_array(vector, "vector", finite=False)).detach()
        if vector.ndim != 1 or not torch.isfinite(vector).all():
            raise ValueError(f"vector must be a finite 1-D tensor, got shape {tuple(vector.shape)}")
        self.vector, self.scale = vector, check_number(scale, "scale")

    def edit(self, act: torch.Tensor) -> torch.Tensor:
        if self.vector.shape[0] != act.shape[-1]:
            raise ValueError(
                f"steering vector has {self.vector.shape[0]} dims but {self.site!r} has "
                f"{act.shape[-1]} features (activation {tuple(act.shape)})"
            )
        return act + self.mask(act) * (self.scale * self.vector.to(act))

    def __repr__(self) -> str:
        return f"Steering({self._where()}, scale={self.scale})"


def steering_vector(
    model: nn.Module,
    inputs_a: Any,
    inputs_b: Any,
    site: str,
    *,
    position: Index = None,
    head: int | None = None,
) -> torch.Tensor:
    """Mean activation at ``site`` over ``inputs_a`` minus the mean over ``inputs_b`` (d,),
    averaged over rows and positions (or at ``position``); on a head site (B, H, T, d_head),
    of head ``head`` (d_head,) — steer with ``Steering(site, v, head=head)``."""

    def mean(inputs: Any) -> torch.Tensor:
        act = run_with_hooks(model, inputs, cache=site)[site]
        if head is not None:
            if act.ndim != 4:
                raise ValueError(
                    f"head={head} needs a head site (B, H, T, d_head); {site!r} is not"
                )
            act = act[:, head]
        if act.ndim < 3:
            return act.mean(0)
        if position is not None:
            axis = act.ndim - 2
            index = torch.as_tensor(position).reshape(-1) % act.shape[axis]
            act = act.index_select(axis, index)
        return act.reshape(-1, act.shape[-1]).mean(0)

    return mean(inputs_a) - mean(inputs_b)


def steer(
    model: nn.Module,
    inputs: Any,
    site: str,
    vector: torch.Tensor,
    scale: float = 1.0,
    *,
    head: Index = None,
    position: Index = None,
) -> Any:
    """The model's output on ``inputs`` with ``scale · vector`` added at ``site``."""
    edit = Steering(site, vector, scale, head=head, position=position)
    return run_with_hooks(model, inputs, [edit]).output
