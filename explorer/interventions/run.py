"""Run a model with edits at named sites (``run_with_hooks`` in the spirit of TransformerLens).

    with hooked(model, [Ablation("blocks.1.attn.hook_z", head=0)]):
        logits = model(tokens)
    run = run_with_hooks(model, tokens, [("blocks.0.hook_resid_post", fn)], cache="blocks.*")
    run.output, run["blocks.1.hook_resid_post"]

A hook is an :class:`Intervention` (ablation, patch, steering) or a pair ``(site or glob,
fn(activation, name) -> activation | None)``. Every hook is removed in ``finally``, also when the
forward pass raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from explorer.errors import ExplorerWarning
from explorer.interventions.sites import Edit, Site, match_sites, resolve_site, site_names
from explorer.models.hf import display_token
from explorer.models.hooks import ActivationCache, _call

__all__ = [
    "HookFn",
    "Intervention",
    "batch_size",
    "hooked",
    "prepare_inputs",
    "repeat_batch",
    "run_with_hooks",
    "seq_len",
    "token_strings",
]

HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]
Index = int | Sequence[int] | None


class Intervention:
    """An edit of the activation at ``site``, restricted to heads, positions and/or neurons.

    ``head``: head index(es) on head sites (axis 1 of (B, H, T, d_head)); ``position``: token
    position(s), negative counts from the end; ``neurons``: indices on the last axis. ``None``
    means all. Subclasses implement :meth:`edit`.
    """

    def __init__(
        self, site: str, *, head: Index = None, position: Index = None, neurons: Index = None
    ) -> None:
        if not isinstance(site, str):
            raise TypeError(f"site must be a hook name (str), got {site!r}")
        self.site, self.head, self.position, self.neurons = site, head, position, neurons

    @property
    def is_partial(self) -> bool:
        """True when only part of the site's activation is edited."""
        return any(v is not None for v in (self.head, self.position, self.neurons))

    def bind(self, site: Site) -> Edit:
        """Check this edit fits ``site`` and return the function its hook calls."""
        if self.head is not None and site.head_axis is None:
            raise ValueError(
                f"head={self.head!r} was given but {site.name!r} has no head axis; use a head "
                "site such as 'blocks.0.attn.hook_z'"
            )
        return self.edit

    @property
    def removes_site(self) -> bool:
        """True when the edit wipes the whole activation of its site (a full ablation)."""
        return False

    def edit(self, act: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mask(self, act: torch.Tensor) -> torch.Tensor:
        """Bool tensor broadcastable to ``act``: True where this edit applies."""
        heads = act.ndim == 4 and self.head is not None
        pos_axis = 2 if act.ndim == 4 else 1
        m = torch.ones([1] * act.ndim, dtype=torch.bool, device=act.device)
        for axis, index, what in (
            (1, self.head if heads else None, "head"),
            (pos_axis, self.position, "position"),
            (act.ndim - 1, self.neurons, "neuron"),
        ):
            if index is None:
                continue
            n = act.shape[axis]
            idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
            if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
                raise IndexError(
                    f"{self.site}: {what} index {index!r} is out of range for {n} {what}s "
                    f"(activation shape {tuple(act.shape)})"
                )
            vec = torch.zeros(n, dtype=torch.bool, device=act.device)
            vec[idx % n] = True
            shape = [1] * act.ndim
            shape[axis] = n
            m = m & vec.view(shape)
        return m

    def __call__(self, act: torch.Tensor, name: str = "") -> torch.Tensor:
        return self.edit(act)

    def _where(self) -> str:
        parts = [f"{k}={v!r}" for k, v in (("head", self.head), ("position", self.position),
                                           ("neurons", self.neurons)) if v is not None]  # fmt: skip
        return ", ".join([repr(self.site), *parts])


Hook = tuple[str, HookFn] | Intervention


# ---------------------------------------------------------------------------------- inputs
def prepare_inputs(model: nn.Module, inputs: Any) -> Any:
    """Text → the model's token dict (models with ``encode``); tensors and dicts pass through."""
    if isinstance(inputs, str) or (
        isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs)
    ):
        encode = getattr(model, "encode", None)
        if encode is None:
            raise TypeError(
                f"{type(model).__name__} takes no text; pass token ids (B, T) or a tensor batch"
            )
        return encode(inputs)
    if isinstance(inputs, Mapping):
        return dict(inputs)
    if isinstance(inputs, torch.Tensor):
        return inputs
    raise TypeError(
        f"inputs must be a tensor, a dict of tensors (tokenizer output) or text, got "
        f"{type(inputs).__name__}"
    )


def token_strings(
    model: nn.Module, ids: Iterable[int], vocab: Sequence[str] | None = None
) -> list[str]:
    """Display text of token ids: from ``vocab``, else the model's tokenizer, else the id."""
    ids = [int(i) for i in ids]
    if vocab is not None:
        return [str(vocab[i]) for i in ids]
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        return [display_token(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    return [str(i) for i in ids]


def _main_tensor(inputs: Any) -> torch.Tensor:
    if isinstance(inputs, Mapping):
        for key in ("input_ids", "inputs_embeds", "pixel_values"):
            if isinstance(inputs.get(key), torch.Tensor):
                return inputs[key]
        return next(v for v in inputs.values() if isinstance(v, torch.Tensor))
    return inputs


def batch_size(inputs: Any) -> int:
    """Rows in a prepared batch."""
    return int(_main_tensor(inputs).shape[0])


def seq_len(inputs: Any) -> int:
    """Tokens per row of a prepared token batch."""
    t = _main_tensor(inputs)
    if t.ndim < 2:
        raise ValueError(f"expected a (batch, tokens) input, got shape {tuple(t.shape)}")
    return int(t.shape[1])


def map_batch(inputs: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to the tensor (or every tensor of a dict) of a prepared batch."""
    if isinstance(inputs, Mapping):
        return {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    return fn(inputs)


def repeat_batch(inputs: Any, k: int) -> Any:
    """k copies of a prepared batch stacked copy after copy (variant-major), (k·B, ...)."""
    return map_batch(inputs, lambda x: x.repeat(k, *[1] * (x.ndim - 1)))


# ---------------------------------------------------------------------------------- hooks
def _attach(model: nn.Module, hooks: Sequence[Hook]) -> list[tuple[Site, Edit]]:
    """Resolve and check every hook before any is registered."""
    plan: list[tuple[Site, Edit]] = []
    for hook in hooks:
        if isinstance(hook, Intervention):
            site = resolve_site(model, hook.site)
            plan.append((site, hook.bind(site)))
        elif isinstance(hook, tuple) and len(hook) == 2 and callable(hook[1]):
            pattern, fn = hook
            plan += [(site, _named(fn, site.name)) for site in match_sites(model, pattern)]
        else:
            raise TypeError(
                f"a hook is an Intervention or a (site, fn) pair, got {type(hook).__name__}"
            )
    _say_whole_model(model, [h for h in hooks if isinstance(h, Intervention)])
    return plan


def _named(fn: HookFn, name: str) -> Edit:
    return lambda act: fn(act, name)


@contextmanager
def hooked(model: nn.Module, hooks: Sequence[Hook]) -> Iterator[nn.Module]:
    """Apply ``hooks`` to every forward pass of ``model`` inside the block; removed on exit."""
    plan = _attach(model, list(hooks))
    handles: list[RemovableHandle] = []
    try:
        for site, fn in plan:
            handles.append(site.attach(fn))
        yield model
    finally:
        for h in handles:
            h.remove()


def run_with_hooks(
    model: nn.Module,
    inputs: Any,
    hooks: Sequence[Hook] = (),
    *,
    cache: str | Sequence[str] | None = None,
    detach: bool = True,
) -> ActivationCache:
    """Run ``model(inputs)`` once with ``hooks``; returns an :class:`ActivationCache` whose
    ``output`` is the model's output and whose entries are the (edited) activations at the
    sites named by ``cache`` (names or globs; ``None`` caches nothing).

    ``inputs``: token ids, a tensor batch, a tokenizer dict, or text for models with
    ``encode``. Without ``detach=False`` the run keeps no autograd graph.
    """
    batch = prepare_inputs(model, inputs)
    names = [cache] if isinstance(cache, str) else list(cache or [])
    cache_sites = [s for pattern in names for s in match_sites(model, pattern)]
    store: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Edit:
        def fn(act: torch.Tensor) -> None:
            store[name] = act.detach() if detach else act

        return fn

    handles: list[RemovableHandle] = []
    with hooked(model, list(hooks)):
        try:
            for site in cache_sites:
                handles.append(site.attach(keep(site.name)))
            with torch.set_grad_enabled(not detach and torch.is_grad_enabled()):
                output = _call(model, batch)
        finally:
            for h in handles:
                h.remove()
    ordered = {s.name: store[s.name] for s in cache_sites if s.name in store}
    return ActivationCache(ordered, output=output)


# ---------------------------------------------------------------------------------- notices
_RESIDUAL = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_resid_final",
             "hook_embed")  # fmt: skip


def _say_whole_model(model: nn.Module, interventions: Sequence[Intervention]) -> None:
    """Warn (allowed, but said) when ablations leave no input-dependent path through the model."""
    full = [iv.site for iv in interventions if iv.removes_site]
    stream = [s for s in full if s.endswith(_RESIDUAL)]
    if stream:
        warnings.warn(
            f"ablating the whole residual stream at {stream[0]!r}: everything after it no longer "
            "depends on the input (allowed; restrict head/position/neurons/direction to ablate "
            "part of it)",
            ExplorerWarning,
            stacklevel=4,
        )
        return
    n_layers = sum(1 for _ in _layers(model))
    if not n_layers:
        return
    attn = {s.split(".")[1] for s in full if s.endswith(("attn.hook_z", "hook_attn_out"))}
    mlp = {s.split(".")[1] for s in full if s.endswith(("hook_mlp_out", "mlp.hook_post"))}
    if len(attn) == n_layers and len(mlp) == n_layers:
        warnings.warn(
            f"every attention head and MLP of all {n_layers} layers is ablated: only the "
            "embedding → unembedding path is left (allowed)",
            ExplorerWarning,
            stacklevel=4,
        )


def _layers(model: nn.Module) -> Iterator[int]:
    names = set(site_names(model))
    layer = 0
    while f"blocks.{layer}.hook_resid_post" in names:
        yield layer
        layer += 1
