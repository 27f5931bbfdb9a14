"""Named hook points and selective activation capture for any ``torch.nn.Module``.

Built-in models place an identity :class:`HookPoint` at every observable (TransformerLens
naming: ``blocks.0.attn.hook_pattern``). :func:`capture` attaches forward hooks to the modules
whose names match glob patterns, runs the model once, and returns an :class:`ActivationCache`;
every hook is removed in ``finally``, even when the forward pass raises.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as _module_internals
from torch.utils.hooks import RemovableHandle

from explorer.device import DeviceLike, resolve_device
from explorer.validation import check_model_inputs

__all__ = ["ActivationCache", "HookPoint", "capture", "capture_stream", "hook_names"]

Names = str | Sequence[str] | None


class HookPoint(nn.Module):
    """Identity module marking an observable tensor; hooks attach here by module name."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def is_observed(self) -> bool:
        """True when any forward hook (local or global) would see this point's output.

        Models use this to take an explicit path (e.g. materialise the attention pattern
        instead of calling fused SDPA) only when someone is looking.
        """
        return bool(
            self._forward_hooks
            or self._forward_pre_hooks
            or _module_internals._global_forward_hooks
            or _module_internals._global_forward_pre_hooks
        )


class ActivationCache(Mapping[str, torch.Tensor]):
    """Read-only mapping ``hook name → tensor`` from one :func:`capture` call.

    ``output`` holds what the model returned (``None`` for streamed batches).
    """

    def __init__(self, tensors: dict[str, torch.Tensor], output: Any = None) -> None:
        self._tensors = tensors
        self.output = output

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            near = fnmatch.filter(self._tensors, f"*{name.split('.')[-1]}*")[:5]
            hint = f" Similar names: {near}." if near else ""
            raise KeyError(
                f"{name!r} was not captured. Captured: {len(self._tensors)} name(s).{hint} "
                "Pass it (or a glob matching it) in names=... to capture()."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    @property
    def nbytes(self) -> int:
        """Total bytes held by the cached tensors."""
        return sum(t.element_size() * t.nelement() for t in self._tensors.values())

    def stack(self, pattern: str) -> torch.Tensor:
        """Stack the tensors whose names match ``pattern`` (in capture order) on a new axis 0."""
        keys = fnmatch.filter(self._tensors, pattern)
        if not keys:
            raise KeyError(f"no captured name matches {pattern!r}; captured: {list(self)[:8]}...")
        return torch.stack([self._tensors[k] for k in keys])

    def __repr__(self) -> str:
        return f"ActivationCache({len(self)} tensors, {self.nbytes / 2**20:.2f} MiB)"


def hook_names(model: nn.Module, hook_points_only: bool = True) -> list[str]:
    """Names of the model's :class:`HookPoint` modules (or of all named submodules)."""
    return [
        name
        for name, mod in model.named_modules()
        if name and (isinstance(mod, HookPoint) or not hook_points_only)
    ]


def _resolve(model: nn.Module, names: Names) -> dict[str, nn.Module]:
    """Glob patterns → {module name: module}; ``None`` means every HookPoint."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if names is None:
        chosen: dict[str, nn.Module] = {
            n: m for n, m in modules.items() if isinstance(m, HookPoint)
        }
        if not chosen:
            raise ValueError(
                f"{type(model).__name__} has no HookPoint modules; pass names=[...] with module "
                f"names or globs, e.g. {list(modules)[:3]}"
            )
        return chosen
    patterns = [names] if isinstance(names, str) else list(names)
    if not patterns:
        raise ValueError("names must not be empty; pass None to capture every HookPoint")
    chosen = {}
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"names must be strings or glob patterns, got {pattern!r}")
        hits = [n for n in modules if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            available = hook_names(model) or list(modules)
            raise ValueError(
                f"no module of {type(model).__name__} matches {pattern!r}. "
                f"Available hook names include: {available[:10]} (see hook_names(model))"
            )
        chosen.update((n, modules[n]) for n in hits)
    return chosen


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _call(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _run_hooked(
    model: nn.Module,
    inputs: Any,
    modules: dict[str, nn.Module],
    store: Callable[[str, torch.Tensor], None],
    grad: bool,
) -> Any:
    handles: list[RemovableHandle] = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _args: Any, output: Any) -> None:
            t = _first_tensor(output)
            if t is not None:
                store(name, t)

        return hook

    try:
        for name, mod in modules.items():
            handles.append(mod.register_forward_hook(make_hook(name)))
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return _call(model, inputs)
    finally:
        for h in handles:
            h.remove()


def capture(
    model: nn.Module,
    inputs: Any,
    names: Names = None,
    *,
    device: DeviceLike | None = "cpu",
    dtype: torch.dtype | None = None,
    detach: bool = True,
) -> ActivationCache:
    """Run ``model(inputs)`` once and cache the outputs of the modules named by ``names``.

    ``inputs``: a tensor (or any single argument), a tuple of positional arguments, or a dict of
    keyword arguments. ``names``: module names or glob patterns (``"blocks.*.attn.hook_pattern"``);
    ``None`` captures every :class:`HookPoint`. Tensors are moved to ``device`` (``None`` keeps
    them where they are) and cast to ``dtype``; with ``detach=False`` gradients flow through the
    cached tensors. A module called several times keeps its last output. A numpy array or a
    float tensor is checked first (real and finite: TypeError/ValueError) and cast to the
    model's dtype; integer tensors (token ids) pass as they are.
    """
    modules = _resolve(model, names)
    target = None if device is None else resolve_device(device)
    cache: dict[str, torch.Tensor] = {}
    if isinstance(inputs, np.ndarray) or (
        isinstance(inputs, torch.Tensor)
        and not inputs.requires_grad  # attribution's inputs keep their graph
        and (inputs.is_floating_point() or inputs.is_complex() or inputs.dtype == torch.bool)
    ):  # real and finite, in the model's dtype (float64 data into a float32 model works)
        inputs = check_model_inputs(inputs, model)

    def store(name: str, t: torch.Tensor) -> None:
        t = t.detach() if detach else t
        cache[name] = t.to(device=target, dtype=dtype)

    output = _run_hooked(model, inputs, modules, store, grad=not detach)
    ordered = {n: cache[n] for n in modules if n in cache}
    return ActivationCache(ordered, output=output)


def capture_stream(
    model: nn.Module,
    batches: Iterable[Any],
    names: Names,
    callback: Callable[[int, ActivationCache], None],
    *,
    device: DeviceLike | None = "cpu",
    dtype: torch.dtype | None = None,
) -> int:
    """Run ``model`` over ``batches``; hand each batch's activations to ``callback(i, cache)``.

    Nothing is kept between batches, so analyses can accumulate statistics over data that does
    not fit in memory. Runs without gradients. Returns the number of batches processed.
    """
    modules = _resolve(model, names)
    n = 0
    with torch.no_grad():
        for i, batch in enumerate(batches):
            cache = capture(model, batch, list(modules), device=device, dtype=dtype)
            callback(i, cache)
            n = i + 1
    return n
