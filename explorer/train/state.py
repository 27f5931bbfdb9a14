"""The last good training state: model parameters, buffers and optimizer state, kept in
preallocated copies so saving it every step costs one fused copy, not an allocation."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GoodState", "TrainingDiverged", "all_finite"]


class TrainingDiverged(RuntimeError):
    """A step diverged (a NaN/inf or exploding loss or gradient) and training stopped.

    ``step`` is the update that failed, ``restored_step`` the step count afterwards,
    ``restored`` whether a saved good state was put back (False at step 0, where there is
    none, and when the weights were fine and kept), ``reason`` a sentence for the user.
    """

    def __init__(
        self, reason: str, step: int, restored_step: int, *, restored: bool = True
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step
        self.restored_step = restored_step
        self.restored = restored


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when every tensor holds only finite values (one reduction per tensor, one sync)."""
    if not tensors:
        return True
    norms = torch._foreach_norm(tensors, 1)
    return bool(torch.isfinite(torch.stack(norms)).all())


def _state_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [t for t in model.state_dict(keep_vars=True).values() if isinstance(t, torch.Tensor)]
    for group in optimizer.param_groups:
        for p in group["params"]:
            for value in optimizer.state.get(p, {}).values():
                if isinstance(value, torch.Tensor):
                    tensors.append(value)
    return tensors


class GoodState:
    """Copy of everything a step changes, taken when the step's loss was finite."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model = model
        self.optimizer = optimizer
        self.step = -1
        self._copies: list[torch.Tensor] = []
        self._layout: list[tuple[int, ...]] = []

    def save(self, step: int) -> None:
        live = _state_tensors(self.model, self.optimizer)
        layout = [tuple(t.shape) for t in live]
        with torch.no_grad():
            if layout != self._layout:
                self._copies = [t.detach().clone() for t in live]
                self._layout = layout
            else:
                torch._foreach_copy_(self._copies, [t.detach() for t in live])
        self.step = step

    def restore(self) -> int:
        """Write the saved copies back; returns the step they belong to."""
        if self.step < 0:
            raise RuntimeError("no good state has been saved yet")
        live = _state_tensors(self.model, self.optimizer)
        if [tuple(t.shape) for t in live] != self._layout:
            # the optimizer created its state after the save: drop it, keep the saved model
            self.optimizer.state.clear()
            live = _state_tensors(self.model, self.optimizer)
        with torch.no_grad():
            torch._foreach_copy_([t.detach() for t in live], self._copies[: len(live)])
        return self.step
