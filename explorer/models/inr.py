"""Neural field (implicit neural representation): an :class:`MLP` on coordinates.

Same hook names as the MLP (``layers.{i}.hook_pre``, ``hook_out``, ...), plus :meth:`render`
to evaluate the field on a grid (the grid of :func:`explorer.data.coordinate_grid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from explorer.data.signals import coordinate_grid
from explorer.models.mlp import MLP, MLPConfig

__all__ = ["NeuralField"]


class NeuralField(MLP):
    """Coordinates (N, d) in [-1, 1)^d → values (N, C).

    Defaults suit a gray 2-D image with a sine (SIREN) network: ``NeuralField()`` or
    ``NeuralField(in_dim=1, encoding="fourier", activation="relu", fourier_scale=10)``.
    """

    def __init__(self, config: MLPConfig | None = None, **overrides: object) -> None:
        defaults = MLPConfig(in_dim=2, out_dim=1, depth=3, width=64, activation="sine", omega0=30.0)
        super().__init__(config or replace(defaults, **overrides))  # type: ignore[arg-type]

    @torch.no_grad()
    def render(self, shape: Sequence[int] | int, batch: int = 65536) -> torch.Tensor:
        """Evaluate on the grid ``shape``: (*shape) for one channel, else (*shape, C)."""
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if len(dims) != self.config.in_dim:
            raise ValueError(f"grid {dims} has {len(dims)} axes but in_dim={self.config.in_dim}")
        device = next(self.parameters()).device
        coords = coordinate_grid(dims).to(device)
        out = torch.cat([self(coords[i : i + batch]) for i in range(0, len(coords), batch)])
        c = self.config.out_dim
        return out.reshape(*dims) if c == 1 else out.reshape(*dims, c)
