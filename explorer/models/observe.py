"""What to look at in a model, in one place: the default layers (one observable per layer, in
forward order), their short display names, and a model holding a snapshot's weights.

Every lens that turns a model into per-layer data (alignment's representations, geometry's
point clouds, the labs' layer menus) picks layers and names them here, so the same layer has
the same name everywhere::

    names = default_layers(model)          # ['hook_encoded', 'layers.0.hook_post', ...]
    short_names(names)                     # ['input', 'L0', ...]
    clone = model_at(model, snapshot.params)
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from explorer.models.hooks import hook_names

__all__ = ["LAYER_PATTERNS", "default_layers", "model_at", "short_name", "short_names"]

# One observable per layer, in model order: the residual stream for transformers (ViT too),
# each block's output for MLPs and CNNs.
LAYER_PATTERNS = (
    "hook_encoded",
    "layers.*.hook_post",
    "blocks.0.hook_resid_pre",
    "blocks.*.hook_resid_post",
    "blocks.*.hook_out",
    "hook_features",
)
_SPECIAL = {
    "blocks.0.hook_resid_pre": "embed",
    "hook_encoded": "input",
    "hook_features": "features",
}


def default_layers(model: nn.Module) -> list[str]:
    """The hook names of :data:`LAYER_PATTERNS` present in ``model``, in forward order
    (the embedding first for transformers). A model without explorer's hook points (your
    own ``nn.Module``) gives the outputs of its activation modules (ReLU, GELU, Tanh, …) and
    of its last top-level child — the hidden layers and the output."""
    names = hook_names(model)
    picked = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in LAYER_PATTERNS)]
    if not picked and not names:
        return _plain_layers(model)
    if not picked:
        raise ValueError(
            f"{type(model).__name__} has none of the default layer hook points {LAYER_PATTERNS}; "
            f"pass layers=[...] from hook_names(model): {names[:10]}"
        )
    if "blocks.0.hook_resid_pre" in picked:
        picked.remove("blocks.0.hook_resid_pre")
        picked.insert(0, "blocks.0.hook_resid_pre")
    return picked


_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.ELU, nn.LeakyReLU,
                nn.Softplus, nn.Mish, nn.Hardtanh)  # fmt: skip


def _plain_layers(model: nn.Module) -> list[str]:
    acts = [n for n, m in model.named_modules() if n and isinstance(m, _ACTIVATIONS)]
    children = [n for n, _ in model.named_children()]
    picked = acts + [n for n in children[-1:] if n not in acts]
    if not picked:
        raise ValueError(
            f"{type(model).__name__} has no submodules to observe; pass layers=[...] with the "
            "names of modules whose outputs to capture"
        )
    return picked


def short_name(name: str) -> str:
    """Compact layer label: 'blocks.3.hook_resid_post' → 'L3', 'layers.1.hook_post' → 'L1',
    'blocks.0.hook_resid_pre' → 'embed', 'hook_encoded' → 'input', 'hook_features' →
    'features'; other names are returned unchanged."""
    if name in _SPECIAL:
        return _SPECIAL[name]
    parts = name.split(".")
    if len(parts) >= 3 and parts[1].isdigit():
        return f"L{parts[1]}"
    return name


def short_names(names: Sequence[str]) -> list[str]:
    """:func:`short_name` of each name, or the names unchanged when shortening would make two
    of them equal (e.g. several hooks of the same block)."""
    short = [short_name(n) for n in names]
    return short if len(set(short)) == len(short) else list(names)


def model_at(model: nn.Module, params: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` holding ``params`` (e.g. a training snapshot's parameters); the
    original is untouched. Every parameter of the model must be in ``params``."""
    missing = set(dict(model.named_parameters())) - set(params)
    if missing:
        raise ValueError(
            f"params lack {len(missing)} of the model's parameters, e.g. {sorted(missing)[:3]}"
        )
    clone = copy.deepcopy(model)
    clone.load_state_dict(dict(params), strict=False)
    return clone
