"""Activation patching: run clean and corrupted inputs, copy one site from one run into the other.

    out = patch(model, clean, corrupted, "blocks.0.attn.hook_z", head=1)   # one site
    effect = patching_sweep(model, clean, corrupted, "resid_pre", metric="logit_diff",
                            answer=a, wrong=b)                              # layer × position
    effect = patching_sweep(model, clean, corrupted, "z", ...)             # layer × head

:func:`patching_sweep` patches every site of a layer in one batched forward pass: the corrupted
batch is repeated once per site (variant-major) and the hook writes the clean activation into a
different site of each copy. Its frame has one row per site: ``value`` (the metric of the patched
run) and ``restored`` = (value − corrupted) / (clean − corrupted), 1 where the patch restores
the clean behaviour fully, 0 where it changes nothing.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from explorer.interventions.metrics import Metric, metric_fn
from explorer.interventions.run import (
    Index,
    Intervention,
    batch_size,
    hooked,
    map_batch,
    prepare_inputs,
    repeat_batch,
    run_with_hooks,
    seq_len,
)
from explorer.interventions.sites import Site, layer_sites
from explorer.models.hooks import _call

__all__ = ["ALIGN", "Patch", "align_pair", "patch", "patching_sweep"]

ALIGN = ("left", "right")
_BY = ("position", "head", "head_position")


class Patch(Intervention):
    """Write ``source`` (the site's activation from another run, (B or 1, ...)) into the
    selected heads/positions/neurons of the site."""

    def __init__(
        self,
        site: str,
        source: torch.Tensor,
        *,
        head: Index = None,
        position: Index = None,
        neurons: Index = None,
    ) -> None:
        super().__init__(site, head=head, position=position, neurons=neurons)
        self.source = torch.as_tensor(source).detach()

    def edit(self, act: torch.Tensor) -> torch.Tensor:
        src = self.source
        if src.shape[1:] != act.shape[1:] or src.shape[0] not in (1, act.shape[0]):
            raise ValueError(
                f"patch source at {self.site!r} has shape {tuple(src.shape)} but the run's "
                f"activation is {tuple(act.shape)}; patch between runs of the same shape"
            )
        return torch.where(self.mask(act), src.to(act), act)

    def __repr__(self) -> str:
        return f"Patch({self._where()})"


def align_pair(model: nn.Module, clean: Any, corrupted: Any, align: str | None) -> tuple[Any, Any]:
    """Prepare both inputs and check they pair up row by row and token by token.

    ``align="left"`` keeps the first min(T) tokens of each, ``"right"`` the last min(T) (the
    positions just before the answer line up).
    """
    clean, corrupted = prepare_inputs(model, clean), prepare_inputs(model, corrupted)
    if batch_size(clean) != batch_size(corrupted):
        raise ValueError(
            f"clean has {batch_size(clean)} rows but corrupted {batch_size(corrupted)}; "
            "patching pairs rows one to one"
        )
    tc, tr = seq_len(clean), seq_len(corrupted)
    if tc == tr:
        return clean, corrupted
    if align is None:
        raise ValueError(
            f"clean has {tc} tokens but corrupted {tr}: patching pairs positions one to one. "
            "Make them the same length, or pass align='left' (keep the first min(T) tokens) or "
            "align='right' (keep the last min(T) tokens)"
        )
    if align not in ALIGN:
        raise ValueError(f"align must be one of {ALIGN} or None, got {align!r}")
    t = min(tc, tr)

    def cut(x: torch.Tensor) -> torch.Tensor:
        return x[:, :t] if align == "left" else x[:, x.shape[1] - t :]

    return map_batch(clean, cut), map_batch(corrupted, cut)


def patch(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    site: str,
    *,
    head: Index = None,
    position: Index = None,
    neurons: Index = None,
    align: str | None = None,
) -> Any:
    """The model's output on ``corrupted`` with ``site`` (or part of it) taken from ``clean``."""
    clean, corrupted = align_pair(model, clean, corrupted, align)
    source = run_with_hooks(model, clean, cache=site)[site]
    edit = Patch(site, source, head=head, position=position, neurons=neurons)
    return run_with_hooks(model, corrupted, [edit]).output


def _variants(site: Site, act: torch.Tensor, by: str) -> tuple[torch.Tensor, list[dict[str, int]]]:
    """One bool mask per patched site (n, 1, *act.shape[1:]) and its labels."""
    shape = act.shape[1:]
    if by != "position" and site.head_axis is None:
        raise ValueError(f"by={by!r} needs a head site (e.g. 'z'); {site.name!r} has no heads")
    if by == "position":
        t = shape[1] if site.head_axis else shape[0]
        masks = torch.eye(t, dtype=torch.bool)
        view = (t, 1, 1, t, 1) if site.head_axis else (t, 1, t, *[1] * (len(shape) - 1))
        return masks.view(view), [{"position": p} for p in range(t)]
    h, t = shape[0], shape[1]
    if by == "head":
        masks = torch.eye(h, dtype=torch.bool).view(h, 1, h, 1, 1)
        return masks, [{"head": i} for i in range(h)]
    masks = torch.eye(h * t, dtype=torch.bool).view(h * t, 1, h, t, 1)
    return masks, [{"head": i, "position": p} for i in range(h) for p in range(t)]


def _writer(source: torch.Tensor, masks: torch.Tensor) -> Any:
    """Hook writing ``source`` (B, ...) into copy i of a (k·B, ...) batch where masks[i]."""

    def write(act: torch.Tensor, _name: str) -> torch.Tensor:
        k = masks.shape[0]
        act = act.view(k, -1, *act.shape[1:])
        return torch.where(masks, source.unsqueeze(0).to(act), act).flatten(0, 1)

    return write


def patching_sweep(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    site: str = "resid_pre",
    *,
    metric: str | Metric = "logit_diff",
    by: str | None = None,
    align: str | None = None,
    max_rows: int = 8192,
    answer: Any = None,
    wrong: Any = None,
    targets: Any = None,
    position: Any = -1,
) -> pd.DataFrame:
    """Patch every site of ``site`` (a short name from ``SITE_TEMPLATES`` or a template with
    ``{layer}``) from ``clean`` into ``corrupted``, one site at a time, and read ``metric``.

    ``by``: ``"position"`` (default for stream sites: layer × position), ``"head"`` (default for
    ``"z"``: layer × head, all positions) or ``"head_position"``. One batched forward pass per
    layer (more when a layer's variants exceed ``max_rows`` rows). Metric keywords and their
    arguments as in :func:`~explorer.interventions.metrics.metric_fn`, evaluated per row and
    averaged over the batch. Returns the tidy frame described in the module docstring; its
    ``attrs`` hold ``clean``, ``corrupted`` (metric values) and ``forwards`` (passes run).
    """
    read = metric_fn(metric, answer=answer, wrong=wrong, targets=targets, position=position)
    clean, corrupted = align_pair(model, clean, corrupted, align)
    sites = layer_sites(model, site)
    first = next(iter(sites.values()))
    by = by or ("head" if first.head_axis else "position")
    if by not in _BY:
        raise ValueError(f"by must be one of {_BY}, got {by!r}")
    if not (isinstance(max_rows, int) and max_rows >= 1):
        raise ValueError(f"max_rows must be an integer >= 1, got {max_rows!r}")
    b = batch_size(corrupted)
    names = [s.name for s in sites.values()]
    clean_run = run_with_hooks(model, clean, cache=names)
    with torch.no_grad():
        clean_value = float(read(clean_run.output).mean())
        corrupted_value = float(read(_call(model, corrupted)).mean())
    forwards = 2
    rows: list[dict[str, Any]] = []
    for layer, s in sites.items():
        source = clean_run[s.name]  # (B, ...)
        masks, labels = _variants(s, source, by)
        per_chunk = max(1, max_rows // b)
        for start in range(0, len(labels), per_chunk):
            m = masks[start : start + per_chunk].to(source.device)
            k = m.shape[0]
            with torch.no_grad(), hooked(model, [(s.name, _writer(source, m))]):
                values = read(_call(model, repeat_batch(corrupted, k))).view(k, b).mean(1)
            forwards += 1
            for label, v in zip(labels[start : start + k], values.tolist()):
                rows.append({"layer": layer, **label, "site": s.name, "value": v})
    frame = pd.DataFrame(rows)
    span = clean_value - corrupted_value
    frame["metric"] = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    frame["restored"] = (frame["value"] - corrupted_value) / span if span else float("nan")
    frame.attrs.update(clean=clean_value, corrupted=corrupted_value, forwards=forwards, by=by)
    ids = [c for c in ("layer", "head", "position") if c in frame]
    return frame[[*ids, "site", "metric", "value", "restored"]]
