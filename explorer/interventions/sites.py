"""Sites: named places in a forward pass whose activation can be read or replaced.

A site name is a hook name. On explorer's models it is a :class:`~explorer.models.hooks.HookPoint`
(``blocks.1.attn.hook_z``); on Hugging Face models wrapped by
:class:`~explorer.models.hf.PretrainedTransformer` the same names map onto the real modules
(``blocks.1.attn.hook_z`` is the input of layer 1's attention output projection, with the heads
split out); any other ``nn.Module`` can be edited at the output of any named submodule.

Every site presents its activation in one layout, whatever the model: residual-stream sites
(B, T, d), head sites ``attn.hook_z|q|k|v`` (B, H, T, d_head), ``attn.hook_pattern``
(B, H, T, T), neuron sites ``mlp.hook_pre|hook_post`` (B, T, d_mlp).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from explorer.models.hooks import HookPoint

__all__ = ["SITE_TEMPLATES", "Site", "layer_sites", "match_sites", "resolve_site", "site_names"]

Edit = Callable[[torch.Tensor], torch.Tensor | None]

#: Short names of the per-layer sites used by patching sweeps (``"resid_pre"`` → layer × position).
SITE_TEMPLATES = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "z": "blocks.{layer}.attn.hook_z",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
}
_HEAD_SITE = re.compile(r"(^|\.)attn\.hook_(z|q|k|v|pattern)$")


@dataclass(frozen=True)
class Site:
    """One editable place: the output (or first input) of ``module``.

    ``heads``: for an input that holds the merged heads (B, T, H·d_head) of an output projection,
    the number of heads H; the activation is then presented as (B, H, T, d_head).
    """

    name: str
    module: nn.Module
    where: Literal["output", "input"] = "output"
    heads: int | None = None

    @property
    def head_axis(self) -> int | None:
        """Axis of heads in the presented activation (1), or None for a head-less site."""
        return 1 if (self.heads is not None or _HEAD_SITE.search(self.name)) else None

    def _present(self, x: torch.Tensor) -> torch.Tensor:
        if self.heads is None:
            return x
        b, t, width = x.shape
        return x.view(b, t, self.heads, width // self.heads).transpose(1, 2)  # (B, H, T, dh)

    def _restore(self, x: torch.Tensor) -> torch.Tensor:
        if self.heads is None:
            return x
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    def _apply(self, fn: Edit, x: torch.Tensor) -> torch.Tensor | None:
        new = fn(self._present(x))
        return None if new is None else self._restore(new)

    def attach(self, fn: Edit) -> RemovableHandle:
        """Register ``fn(activation) -> activation | None`` on the module; returns the handle.

        ``fn`` sees the activation in the site's layout; a returned tensor replaces it.
        """
        if self.where == "output":

            def out_hook(_m: nn.Module, _args: Any, output: Any) -> Any:
                if isinstance(output, torch.Tensor):
                    return self._apply(fn, output)
                if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
                    new = self._apply(fn, output[0])
                    return None if new is None else (new, *output[1:])
                raise TypeError(
                    f"site {self.name!r}: {type(self.module).__name__} returned "
                    f"{type(output).__name__}, not a tensor; pick a site whose output is one"
                )

            return self.module.register_forward_hook(out_hook)

        def in_hook(_m: nn.Module, args: tuple, kwargs: dict) -> Any:
            if args and isinstance(args[0], torch.Tensor):
                new = self._apply(fn, args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            if isinstance(kwargs.get("hidden_states"), torch.Tensor):
                new = self._apply(fn, kwargs["hidden_states"])
                return None if new is None else (args, {**kwargs, "hidden_states": new})
            raise TypeError(f"site {self.name!r}: no tensor input to edit")

        return self.module.register_forward_pre_hook(in_hook, with_kwargs=True)


def _mapped(model: nn.Module) -> dict[str, Site]:
    """Sites a wrapper maps onto real modules (``intervention_points()``), e.g. HF models."""
    points = getattr(model, "intervention_points", None)
    if points is None:
        return {}
    return {name: Site(name, *spec) for name, spec in points().items()}


def site_names(model: nn.Module) -> list[str]:
    """Names of the model's intervention sites: mapped sites, else its HookPoints."""
    mapped = _mapped(model)
    if mapped:
        return list(mapped)
    return [n for n, m in model.named_modules() if n and isinstance(m, HookPoint)]


def resolve_site(model: nn.Module, name: str) -> Site:
    """The :class:`Site` called ``name``; unknown names raise with the available ones."""
    if not isinstance(name, str):
        raise TypeError(f"a site name must be a string, got {name!r}")
    mapped = _mapped(model)
    if name in mapped:
        return mapped[name]
    modules = dict(model.named_modules())
    module = modules.get(name) if name else None
    observe_only = mapped and isinstance(module, HookPoint)
    if module is not None and not observe_only:
        return Site(name, module)
    available = site_names(model)
    near = [n for n in available if n.split(".")[-1] == name.split(".")[-1]][:6]
    reason = (
        f"{name!r} only observes {type(model).__name__}'s forward pass (use capture() to read "
        "it) and cannot be edited"
        if observe_only
        else f"{type(model).__name__} has no site {name!r}"
    )
    hint = f" Same kind: {near}." if near else ""
    raise ValueError(
        f"{reason}. Available sites ({len(available)}): {available[:12]}"
        f"{' ...' if len(available) > 12 else ''}.{hint} (see site_names(model))"
    )


def match_sites(model: nn.Module, pattern: str) -> list[Site]:
    """Sites whose name matches the glob ``pattern`` (an exact name resolves as-is)."""
    if not any(c in pattern for c in "*?["):
        return [resolve_site(model, pattern)]
    hits = fnmatch.filter(site_names(model), pattern)
    if not hits:
        resolve_site(model, pattern)  # raises with the available names
    return [resolve_site(model, n) for n in hits]


def layer_sites(model: nn.Module, site: str) -> dict[int, Site]:
    """``{layer: Site}`` for a short name (``"resid_pre"``, ``"z"``, …) or a template with
    ``{layer}``, over every layer the model has it at."""
    template = SITE_TEMPLATES.get(site, site)
    if "{layer}" not in template:
        raise ValueError(
            f"site {site!r} is neither a short name {sorted(SITE_TEMPLATES)} nor a template "
            "with '{layer}' (e.g. 'blocks.{layer}.hook_resid_pre')"
        )
    names = set(site_names(model)) | {n for n, _ in model.named_modules()}
    found: dict[int, Site] = {}
    layer = 0
    while template.format(layer=layer) in names:
        found[layer] = resolve_site(model, template.format(layer=layer))
        layer += 1
    if not found:
        resolve_site(model, template.format(layer=0))  # raises with the available names
    return found
