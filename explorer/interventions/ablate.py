"""Ablation: remove what a head, an MLP, a residual direction or a set of neurons contributes.

    out = ablate(model, tokens, "blocks.1.attn.hook_z", head=0, method="mean")
    out = ablate(model, tokens, "blocks.0.hook_mlp_out")                       # the whole MLP
    out = ablate(model, tokens, "blocks.0.mlp.hook_post", neurons=[3, 17])
    out = ablate(model, tokens, "blocks.1.hook_resid_pre", direction=v, method="mean")

Methods: ``zero`` (replace by 0), ``mean`` (by the per-position mean over reference inputs) and
``resample`` (by the activation of a random reference input, drawn with ``seed``). A direction
ablation edits only the component of the activation along ``direction``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from explorer.interventions.run import Index, Intervention, run_with_hooks
from explorer.interventions.sites import Site
from explorer.validation import check_array, check_positive_int

__all__ = ["ABLATIONS", "Ablation", "ablate"]

ABLATIONS = ("zero", "mean", "resample")


class Ablation(Intervention):
    """Ablate (part of) the activation at ``site`` by ``method``; see the module docstring.

    ``mean``/``resample`` need reference activations: :meth:`fit` runs the model on reference
    inputs and keeps ``reference_`` (B_ref, ...) and ``mean_`` (...) at the site.
    """

    def __init__(
        self,
        site: str,
        method: str = "zero",
        *,
        head: Index = None,
        position: Index = None,
        neurons: Index = None,
        direction: torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(site, head=head, position=position, neurons=neurons)
        if method not in ABLATIONS:
            raise ValueError(f"method must be one of {ABLATIONS}, got {method!r}")
        seed = check_positive_int(seed, "seed", minimum=0)
        if direction is not None:
            direction = torch.as_tensor(check_array(direction, "direction", finite=False)).detach()
            if direction.ndim != 1 or not torch.isfinite(direction).all():
                raise ValueError("direction must be a finite 1-D vector (d,)")
            norm = float(direction.norm())
            if norm == 0:
                raise ValueError("direction must not be the zero vector")
            direction = direction / norm
            if neurons is not None:
                raise ValueError("give either neurons or a direction, not both")
        self.method, self.direction, self.seed = method, direction, seed
        self.reference_: torch.Tensor | None = None
        self.mean_: torch.Tensor | None = None

    @property
    def removes_site(self) -> bool:
        return not self.is_partial and self.direction is None

    def fit(self, model: nn.Module, reference: Any) -> Ablation:
        """Record the site's activations on ``reference`` inputs (for mean/resample)."""
        act = run_with_hooks(model, reference, cache=self.site)[self.site]
        self.reference_, self.mean_ = act, act.mean(0)
        return self

    def bind(self, site: Site) -> Any:
        if self.method != "zero" and self.reference_ is None:
            raise ValueError(
                f"Ablation(method={self.method!r}) at {self.site!r} needs reference "
                "activations: call .fit(model, reference_inputs) first, or use "
                "ablate(model, inputs, ..., reference=reference_inputs)"
            )
        return super().bind(site)

    def _replacement(self, act: torch.Tensor) -> torch.Tensor:
        """What the ablated entries become, broadcastable to ``act``."""
        if self.method == "zero":
            return torch.zeros((), dtype=act.dtype, device=act.device)
        ref = self.reference_
        assert ref is not None and self.mean_ is not None
        if ref.shape[1:] != act.shape[1:]:
            raise ValueError(
                f"{self.method} ablation at {self.site!r} is per position: the reference "
                f"activations have shape {tuple(ref.shape[1:])} per row but this run has "
                f"{tuple(act.shape[1:])}; fit on inputs of the same length"
            )
        if self.method == "mean":
            return self.mean_.to(act)
        g = torch.Generator().manual_seed(self.seed)
        rows = torch.randint(0, ref.shape[0], (act.shape[0],), generator=g)
        return ref[rows].to(act)

    def edit(self, act: torch.Tensor) -> torch.Tensor:
        mask = self.mask(act)
        new = self._replacement(act)
        if self.direction is None:
            return torch.where(mask, new, act)
        u = self.direction.to(act)
        if u.shape[0] != act.shape[-1]:
            raise ValueError(
                f"direction has {u.shape[0]} dims but {self.site!r} has {act.shape[-1]} features"
            )
        proj = act @ u  # (B, ..., T)
        target = torch.zeros_like(proj) if self.method == "zero" else new @ u
        shift = torch.where(mask.squeeze(-1), target - proj, torch.zeros_like(proj))
        return act + shift.unsqueeze(-1) * u

    def __repr__(self) -> str:
        extra = ", direction=..." if self.direction is not None else ""
        return f"Ablation({self._where()}, method={self.method!r}{extra})"


def ablate(
    model: nn.Module,
    inputs: Any,
    site: str,
    *,
    method: str = "zero",
    head: Index = None,
    position: Index = None,
    neurons: Index = None,
    direction: torch.Tensor | None = None,
    reference: Any = None,
    seed: int = 0,
) -> Any:
    """The model's output on ``inputs`` with the site ablated (see :class:`Ablation`).

    ``reference``: inputs whose activations define mean/resample values (default: ``inputs``).
    """
    ablation = Ablation(
        site, method, head=head, position=position, neurons=neurons, direction=direction,
        seed=seed,
    )  # fmt: skip
    if method != "zero":
        ablation.fit(model, inputs if reference is None else reference)
    return run_with_hooks(model, inputs, [ablation]).output
