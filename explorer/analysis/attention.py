"""Attention analysis: head statistics, rollout, attention flow, ViT maps, token mixing.

Input is any of: an activation cache (mapping with ``blocks.{i}.attn.hook_pattern`` entries),
a sequence of per-layer tensors (Hugging Face ``outputs.attentions``: L × (B, H, T, T)), or one
array (L, H, T, T) / (L, B, H, T, T) / (H, T, T) / (T, T). :func:`as_patterns` turns it into
:class:`AttentionPatterns` (validated, rows = queries summing to 1); every function here accepts
either. CPU work runs numba kernels (numpy BLAS for rollout's matrix products); CUDA tensors
stay on the GPU with torch, except max-flow, which is sequential and runs on the CPU kernel.

References: attention rollout and flow, Abnar & Zuidema 2020 ("Quantifying Attention Flow in
Transformers"); induction score as in Olsson et al. 2022 on repeated tokens.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from explorer.analysis.metric import Metric
from explorer.device import ArrayLike, DeviceLike, as_numpy, as_torch, backend_for, resolve_device
from explorer.frames import tidy
from explorer.kernels._numba import threads as numba_threads
from explorer.kernels.attention import N_HEAD_STATS, attention_flow_kernel, head_stats_kernel
from explorer.validation import check_array, check_finite, check_number, check_positive_int

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "AttentionPatterns",
    "as_patterns",
    "attention_flow",
    "attention_rollout",
    "head_statistics",
    "head_statistics_over_steps",
    "induction_targets",
    "mixing_matrices",
    "patch_positions",
    "pool_maps",
    "token_mixing",
    "vit_attention_map",
]

#: Metrics computed by the head-statistics kernel, in kernel order.
DEFAULT_METRICS = (
    "entropy",
    "distance",
    "max_weight",
    "diagonal",
    "previous_token",
    "first_token",
    "induction",
)
#: Every metric :func:`head_statistics` knows (computed together, so ``fn`` is None);
#: ``effective_rank`` costs one SVD per head. Bounds are for colour scales (None: data range).
METRICS: dict[str, Metric] = {
    "entropy": Metric("entropy (nats)"),
    "distance": Metric("mean attended distance (tokens)"),
    "max_weight": Metric("max weight", bounds=(0.0, 1.0)),
    "diagonal": Metric("self-attention weight", bounds=(0.0, 1.0)),
    "previous_token": Metric("previous-token weight", bounds=(0.0, 1.0)),
    "first_token": Metric("first-token (sink) weight", bounds=(0.0, 1.0)),
    "induction": Metric("induction score", bounds=(0.0, 1.0)),
    "effective_rank": Metric("effective rank (σ)"),
}
_HOOK = re.compile(r"^blocks\.(\d+)\.attn\.hook_pattern$")
HeadReduce = Literal["mean", "max", "min"]


@dataclass(frozen=True)
class AttentionPatterns:
    """Validated attention: ``patterns`` (L, H, T, T), rows = queries summing to 1; T tokens.

    ``patterns`` keeps the caller's array type and device (numpy or torch).
    """

    patterns: ArrayLike
    tokens: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_layers, n_heads, n_tokens)."""
        n_layers, n_heads, t, _ = self.patterns.shape
        return int(n_layers), int(n_heads), int(t)

    def numpy(self) -> np.ndarray:
        """The patterns as a numpy array on the CPU (float32 or float64 as given)."""
        return as_numpy(self.patterns)


def _from_mapping(cache: Mapping[str, Any]) -> list[Any]:
    found = sorted((int(m.group(1)), k) for k in cache if (m := _HOOK.match(str(k))))
    if not found:
        keys = ", ".join(list(map(str, cache))[:6])
        raise ValueError(
            "no 'blocks.{i}.attn.hook_pattern' entries in this cache (it has: "
            f"{keys or 'nothing'}); capture them with names=['blocks.*.attn.hook_pattern']."
        )
    return [cache[k] for _, k in found]


def _index(value: Any, name: str) -> int:
    """An integer index (Python style: negative counts from the end), not a bool or float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer index, got {value!r}")
    return int(value)


def _take_batch(x: ArrayLike, batch_index: int, what: str) -> ArrayLike:
    n = x.shape[0]
    if not -n <= batch_index < n:
        raise ValueError(
            f"batch_index={batch_index} is out of range for {what} with batch size {n}"
        )
    return x[batch_index]


def _stack(source: Any, batch_index: int) -> ArrayLike:
    if isinstance(source, AttentionPatterns):
        return source.patterns
    if isinstance(source, Mapping):
        source = _from_mapping(source)
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("got an empty sequence of attention layers")
        layers = []
        for i, layer in enumerate(source):
            t = layer if isinstance(layer, (np.ndarray, torch.Tensor)) else np.asarray(layer)
            if t.ndim == 4:
                t = _take_batch(t, batch_index, f"layer {i}")
            if t.ndim != 3:
                raise ValueError(
                    f"layer {i} of the attention must be (B, H, T, T) or (H, T, T), got shape "
                    f"{tuple(t.shape)}"
                )
            layers.append(t)
        shapes = {tuple(t.shape) for t in layers}
        if len(shapes) > 1:
            raise ValueError(f"attention layers have different shapes: {sorted(shapes)}")
        if isinstance(layers[0], torch.Tensor):
            return torch.stack([as_torch(t, device=layers[0].device) for t in layers])
        return np.stack([as_numpy(t) for t in layers])
    x = source if isinstance(source, (np.ndarray, torch.Tensor)) else np.asarray(source)
    if x.ndim == 5:
        return _take_batch(
            x.transpose(0, 1) if isinstance(x, torch.Tensor) else x.swapaxes(0, 1),
            batch_index,
            "the (L, B, H, T, T) attention",
        )
    if x.ndim == 3:
        return x[None]
    if x.ndim == 2:
        return x[None, None]
    if x.ndim != 4:
        raise ValueError(
            "attention must be (L, H, T, T), (L, B, H, T, T), (H, T, T) or (T, T); got shape "
            f"{tuple(x.shape)}"
        )
    return x


def as_patterns(
    source: Any,
    tokens: Sequence[Any] | None = None,
    *,
    batch_index: int = 0,
    atol: float = 1e-3,
) -> AttentionPatterns:
    """Validate attention from a cache, a list of layers or an array → :class:`AttentionPatterns`.

    Raises ValueError for a wrong rank, non-square maps, NaN/inf, negative weights, rows that do
    not sum to 1 within ``atol`` (scores instead of probabilities), or a token list whose length
    is not T. ``tokens`` default to "0", "1", …; each token is converted with ``str``.
    """
    if isinstance(source, AttentionPatterns) and tokens is None:
        return source
    batch_index = _index(batch_index, "batch_index")
    atol = check_number(atol, "atol", low=0.0)
    x = check_array(_stack(source, batch_index), "attention", finite=False)
    if isinstance(x, torch.Tensor) and not x.is_cuda:
        x = as_numpy(x)  # CPU tensors: zero-copy numpy view, the CPU path is numpy/numba
    if isinstance(x, np.ndarray) and not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if isinstance(x, torch.Tensor) and not x.is_floating_point():
        x = x.double()
    t, t2 = x.shape[-2:]
    if t != t2 or t == 0:
        raise ValueError(
            f"attention maps must be square (queries × keys) and non-empty, got (T, T') = ({t}, {t2})"
        )
    # Row sums in the input precision: float32 error (≈ T·6e-8) stays far below atol.
    sums = x.sum(-1)
    total = float(sums.sum())
    if not math.isfinite(total):
        check_finite(x, "attention")  # raises with the location of the first NaN/inf
    low = float(x.min())
    if low < -atol:
        raise ValueError(
            f"attention has negative weights (min {low:.3g}); pass probabilities (after softmax)"
        )
    err = as_numpy(abs(sums - 1.0))
    if float(err.max()) > atol:
        lay, head, q = np.unravel_index(int(err.argmax()), err.shape)
        raise ValueError(
            f"attention rows must sum to 1 (queries × keys, after softmax); layer {lay} head {head} "
            f"query {q} sums to {float(as_numpy(sums)[lay, head, q]):.4g}. Pass probabilities, "
            "not scores, with queries along the second-to-last axis."
        )
    if tokens is None:
        toks = tuple(str(i) for i in range(t))
    else:
        toks = tuple(str(s) for s in tokens)
        if len(toks) != t:
            raise ValueError(f"got {len(toks)} tokens for attention over T={t} positions")
    return AttentionPatterns(x, toks)


# ---------------------------------------------------------------- head statistics


def induction_targets(tokens: Sequence[Any]) -> np.ndarray:
    """(T, T) bool: key j is an induction target of query i when tokens[j-1] == tokens[i], j ≤ i.

    On a repeated random sequence this is the key one after the previous occurrence of the
    query's token (offset −(period − 1)), as in Olsson et al.
    """
    _, ids = np.unique(np.asarray([str(s) for s in tokens], dtype=object), return_inverse=True)
    t = len(ids)
    out = np.zeros((t, t), dtype=bool)
    if t > 1:
        out[:, 1:] = ids[:, None] == ids[None, :-1]
        out &= np.tri(t, dtype=bool)
    return out


def patch_positions(grid: tuple[int, int], n_prefix: int = 1) -> np.ndarray:
    """(n_prefix + gh·gw, 2) patch centres (row, col) in patch units; prefix tokens (CLS) get NaN."""
    gh, gw = (check_positive_int(g, "grid size") for g in grid)
    n_prefix = check_positive_int(n_prefix, "n_prefix", minimum=0)
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    pos = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)
    return np.concatenate([np.full((n_prefix, 2), np.nan), pos])


def _distances(t: int, positions: Any) -> np.ndarray:
    if positions is None:
        i = np.arange(t, dtype=np.float64)
        return np.abs(i[:, None] - i[None, :])
    pos = as_numpy(positions, dtype=np.float64)
    if pos.ndim == 1:
        pos = pos[:, None]
    if pos.ndim != 2 or pos.shape[0] != t:
        raise ValueError(f"positions must be (T,) or (T, k) with T={t}, got shape {pos.shape}")
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    return np.nan_to_num(d, nan=0.0)  # tokens without a position (CLS) are at distance 0


def _stats_torch(p: torch.Tensor, dist: torch.Tensor, induction: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`head_stats_kernel` → (L, H, 7) float64 (any device)."""
    p = p.double()
    plogp = torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1.0)), 0.0)
    has = induction.any(-1)
    n_ind = has.sum()
    ind = (
        (p * induction).sum(-1)[..., has].sum(-1) / n_ind if n_ind > 0 else p[..., 0, 0] * torch.nan
    )
    stats = [
        -plogp.sum(-1).mean(-1),
        (p * dist).sum(-1).mean(-1),
        p.amax(-1).mean(-1),
        torch.diagonal(p, dim1=-2, dim2=-1).mean(-1),
        torch.diagonal(p, offset=-1, dim1=-2, dim2=-1).mean(-1),
        p[..., 1:, 0].mean(-1),
        ind,
    ]
    return torch.stack(stats, dim=-1)


def _effective_rank(p: ArrayLike) -> np.ndarray:
    """exp(entropy of σ/Σσ) per (layer, head): the σ (not σ²) variant."""
    s = (
        torch.linalg.svdvals(as_torch(p).double())
        if isinstance(p, torch.Tensor)
        else (torch.from_numpy(np.linalg.svd(np.asarray(p, dtype=np.float64), compute_uv=False)))
    )
    q = s / s.sum(-1, keepdim=True)
    ent = -torch.where(q > 0, q * torch.log(torch.where(q > 0, q, 1.0)), 0.0).sum(-1)
    return as_numpy(torch.exp(ent))


def head_statistics(
    attention: Any,
    tokens: Sequence[Any] | None = None,
    *,
    metrics: Sequence[str] | None = None,
    positions: Any = None,
    step: int | None = None,
    device: DeviceLike = "auto",
) -> pd.DataFrame:
    """Per-head statistics as a tidy frame: ``layer, head[, step], metric, value``.

    Metrics (averaged over queries; weights p[i, j], query i, key j):

    - ``entropy``: −Σⱼ p log p in nats (0 = one key; log T = uniform);
    - ``distance``: Σⱼ p·d(i, j), with d = |i − j| or the Euclidean distance of ``positions``
      (T,) or (T, k) (e.g. :func:`patch_positions`; tokens without a position count as 0);
    - ``max_weight``: maxⱼ p; ``diagonal``: p[i, i];
    - ``previous_token``: p[i, i − 1] and ``first_token`` (sink) p[i, 0], over queries i ≥ 1,
      so a pure previous-token head scores exactly 1;
    - ``induction``: Σ p over :func:`induction_targets`, over queries that have one; only
      reported when the tokens repeat;
    - ``effective_rank`` (opt-in): exp of the entropy of σ/Σσ of each map.
    """
    if step is not None:
        step = check_positive_int(step, "step", minimum=0)
    pat = as_patterns(attention, tokens)
    chosen = tuple(DEFAULT_METRICS if metrics is None else metrics)
    unknown = sorted(set(chosen) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    n_layers, n_heads, t = pat.shape
    dist = _distances(t, positions)
    ind_mask = induction_targets(pat.tokens)
    p = pat.patterns
    if backend_for(device, p) == "torch":
        dev = resolve_device(device, p)
        stats = as_numpy(
            _stats_torch(
                as_torch(p, device=dev),
                torch.from_numpy(dist).to(dev),
                torch.from_numpy(ind_mask).to(dev),
            )
        )
    else:
        stats = np.empty((n_layers, n_heads, N_HEAD_STATS), dtype=np.float64)
        head_stats_kernel(np.ascontiguousarray(as_numpy(p)), dist, ind_mask.astype(np.uint8), stats)
    extra = {"effective_rank": _effective_rank(p)} if "effective_rank" in chosen else {}
    records = []
    for lay in range(n_layers):
        for h in range(n_heads):
            for name in chosen:
                if name in extra:
                    value = float(extra[name][lay, h])
                else:
                    value = float(stats[lay, h, DEFAULT_METRICS.index(name)])
                    if name == "induction" and not ind_mask.any():
                        continue
                row = {"layer": lay, "head": h, "metric": name, "value": value}
                if step is not None:
                    row["step"] = int(step)
                records.append(row)
    return tidy(records)


def head_statistics_over_steps(
    snapshots: Iterable[tuple[int, Any]],
    tokens: Sequence[Any] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Head statistics for each ``(step, attention)`` pair, concatenated with a ``step`` column.

    ``kwargs`` go to :func:`head_statistics`. Use it to watch heads form during training.
    """
    frames = [head_statistics(a, tokens, step=int(s), **kwargs) for s, a in snapshots]
    if not frames:
        raise ValueError("no snapshots given: pass an iterable of (step, attention) pairs")
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- rollout and flow


def _check_residual(residual: float) -> float:
    return check_number(residual, "residual", low=0.0, high=1.0)


def mixing_matrices(
    attention: Any,
    *,
    residual: float = 0.5,
    head_reduce: HeadReduce = "mean",
    device: DeviceLike = "auto",
) -> np.ndarray:
    """(L, T, T) float64 per-layer mixing: residual·I + (1 − residual)·reduce_h(A), rows renormalised.

    ``residual=0.5`` is Abnar & Zuidema's identity mix for the skip connection; ``head_reduce``
    is ``mean`` (theirs), ``max`` or ``min``. Numpy, like every analysis result.
    """
    return as_numpy(_mixing(attention, residual, head_reduce, device))


def _mixing(
    attention: Any, residual: float, head_reduce: HeadReduce, device: DeviceLike
) -> torch.Tensor:
    """:func:`mixing_matrices` as a float64 tensor on the compute device."""
    pat = as_patterns(attention)
    r = _check_residual(residual)
    dev = resolve_device(device, pat.patterns)
    a = as_torch(pat.patterns, device=dev).double()
    if head_reduce == "mean":
        m = a.mean(1)
    elif head_reduce == "max":
        m = a.amax(1)
    elif head_reduce == "min":
        m = a.amin(1)
    else:
        raise ValueError(f"head_reduce must be 'mean', 'max' or 'min', got {head_reduce!r}")
    t = m.shape[-1]
    m = r * torch.eye(t, dtype=m.dtype, device=dev) + (1.0 - r) * m
    return m / m.sum(-1, keepdim=True)


def attention_rollout(
    attention: Any,
    *,
    residual: float = 0.5,
    head_reduce: HeadReduce = "mean",
    device: DeviceLike = "auto",
) -> np.ndarray:
    """(L, T, T) cumulative rollout R_l = Ã_l ··· Ã_1 (row i: how much of each input token
    reaches token i after layer l). Rows sum to 1. Float64; numpy BLAS on CPU, torch on CUDA.
    """
    mix = _mixing(attention, residual, head_reduce, device)
    if mix.device.type == "cuda":
        out = torch.empty_like(mix)
        acc = mix[0]
        out[0] = acc
        for lay in range(1, mix.shape[0]):
            acc = mix[lay] @ acc
            out[lay] = acc
        return as_numpy(out)
    m = mix.numpy()
    res = np.empty_like(m)
    res[0] = m[0]
    for lay in range(1, m.shape[0]):
        np.matmul(m[lay], res[lay - 1], out=res[lay])
    return res


def attention_flow(
    attention: Any,
    *,
    queries: Sequence[int] | int | None = None,
    layer: int = -1,
    residual: float = 0.5,
    head_reduce: HeadReduce = "mean",
    threads: int | None = None,
    eps: float = 1e-12,
) -> np.ndarray:
    """Attention flow (Abnar & Zuidema): max-flow from each input token to output tokens.

    The graph has one node per (layer boundary, token); the edge from token j below layer l to
    token i above it has capacity Ã_l[i, j] (:func:`mixing_matrices`). Returns (Q, T) float64:
    row q holds the maximum flow from every input token to token ``queries[q]`` after ``layer``
    (default: all T tokens, i.e. T² max-flow problems; one query of 12 layers × 128 tokens takes
    ~0.15 s on one core). Runs the numba Dinic kernel on the CPU for every device (max-flow is
    sequential; the (L, T, T) capacities are small to move). ``eps``: residuals treated as zero.
    """
    eps = check_number(eps, "eps", low=0.0)
    layer = _index(layer, "layer")
    if threads is not None:
        threads = check_positive_int(threads, "threads")
    mix = _mixing(attention, residual, head_reduce, "cpu")
    n_layers, t, _ = mix.shape
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer={layer} is out of range for {n_layers} layers")
    cap = mix[: (layer % n_layers) + 1].numpy()
    if queries is None:
        q = np.arange(t, dtype=np.int64)
    else:
        q = np.atleast_1d(check_array(queries, "queries"))
        if q.dtype.kind not in "iu":
            raise TypeError(f"queries must be token indices (integers), got {queries!r}")
        if q.ndim != 1 or q.size == 0 or q.min() < -t or q.max() >= t:
            raise ValueError(f"queries must be token indices in [0, {t}), got {queries!r}")
        q = q % t
    out = np.zeros((q.size, t), dtype=np.float64)
    cap_t = np.ascontiguousarray(cap.transpose(0, 2, 1))
    with numba_threads(threads) as n:
        attention_flow_kernel(cap_t, q, out, max(1, min(n * 4, q.size * t)), float(eps))
    return out


# ---------------------------------------------------------------- display helpers


def pool_maps(maps: Any, size: int) -> np.ndarray:
    """Block-mean pool the last two axes of ``maps`` (..., R, C) to at most (size, size), float32.

    Bins are as even as possible (edges ``linspace(0, R, size + 1)``); maps already small
    enough come back unchanged. float32 input is pooled in float32 (bins hold few values).
    Used to send thumbnails of long sequences.
    """
    size = check_positive_int(size, "size")
    x = as_numpy(check_array(maps, "maps"))
    if np.abs(x).max(initial=0.0) > np.finfo(np.float32).max:
        raise ValueError("maps exceed float32's range (thumbnails are float32): rescale them")
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise ValueError(f"maps must have at least 2 axes (..., rows, cols), got shape {x.shape}")
    for axis in (-2, -1):
        n = x.shape[axis]
        if n > size:
            edges = np.linspace(0, n, size + 1).round().astype(np.int64)
            sums = np.add.reduceat(x, edges[:-1], axis=axis)
            shape = [1] * x.ndim
            shape[axis] = size
            x = sums / np.diff(edges).reshape(shape)
    return x.astype(np.float32)


# ---------------------------------------------------------------- vision and mixing


def vit_attention_map(
    attention: Any,
    grid: tuple[int, int],
    *,
    query: int = 0,
    n_prefix: int = 1,
    method: Literal["raw", "rollout"] = "raw",
    layer: int = -1,
    head: int | None = None,
    image_size: tuple[int, int] | None = None,
    residual: float = 0.5,
) -> np.ndarray:
    """Attention of one query (CLS = 0, or a patch) over the patch grid → (gh, gw) or image size.

    ``method="raw"`` takes layer ``layer`` (``head`` or the head mean); ``"rollout"`` the
    cumulative rollout up to ``layer``. Keys are the T − ``n_prefix`` patch tokens in row-major
    order. With ``image_size=(H, W)`` the map is bilinearly resized to the image.
    """
    pat = as_patterns(attention)
    n_layers, n_heads, t = pat.shape
    gh, gw = (check_positive_int(g, "grid size") for g in grid)
    n_prefix = check_positive_int(n_prefix, "n_prefix", minimum=0)
    query, layer = _index(query, "query"), _index(layer, "layer")
    residual = _check_residual(residual)
    if head is not None:
        head = _index(head, "head")
    if n_prefix < 0 or n_prefix + gh * gw != t:
        raise ValueError(
            f"grid {gh}×{gw} plus n_prefix={n_prefix} gives {n_prefix + gh * gw} tokens, but the "
            f"attention has T={t}"
        )
    if not -t <= query < t:
        raise ValueError(f"query={query} is out of range for T={t}")
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer={layer} is out of range for {n_layers} layers")
    if method == "rollout":
        row = attention_rollout(pat, residual=residual)[layer, query]
    elif method == "raw":
        a = pat.numpy()[layer].astype(np.float64)
        if head is not None and not -n_heads <= head < n_heads:
            raise ValueError(f"head={head} is out of range for {n_heads} heads")
        row = (a.mean(0) if head is None else a[head])[query]
    else:
        raise ValueError(f"method must be 'raw' or 'rollout', got {method!r}")
    heat = row[n_prefix:].reshape(gh, gw)
    if image_size is None:
        return heat
    h, w = (check_positive_int(s, "image size") for s in image_size)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(heat)[None, None], size=(h, w), mode="bilinear", align_corners=False
    )
    return resized[0, 0].numpy()


def token_mixing(fn: Callable[[torch.Tensor], torch.Tensor], x: Any) -> np.ndarray:
    """(T, T) effective token mixing of any mixer y = fn(x), x (T, d) or (1, T, d).

    M[i, j] = ‖∂yᵢ/∂xⱼ‖_F, rows normalised to sum 1 (zero rows stay zero): comparable across
    attention variants and attention-free mixers. For a fixed linear mixer y = W x it is |W|
    row-normalised. Uses one Jacobian: keep T·d small (≤ ~4k).
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable mixer y = fn(x), got {type(fn).__name__}")
    xt = as_torch(check_array(x, "x")).detach()
    if not xt.is_floating_point():
        xt = xt.float()
    if xt.ndim == 3 and xt.shape[0] == 1:
        squeeze = True
    elif xt.ndim == 2:
        squeeze = False
        xt = xt[None]
    else:
        raise ValueError(f"x must be (T, d) or (1, T, d), got shape {tuple(xt.shape)}")
    check_finite(xt, "x")
    t = xt.shape[1]

    def call(z: torch.Tensor) -> torch.Tensor:
        y = fn(z if squeeze else z[0])
        y = y if y.ndim == 3 else y[None]
        if y.shape[:2] != (1, t):
            raise ValueError(
                f"fn must return (T, d') or (1, T, d') with T={t}, got {tuple(y.shape)}"
            )
        return y

    jac = torch.autograd.functional.jacobian(call, xt, vectorize=True)  # (1, T, d', 1, T, d)
    norms = jac[0, :, :, 0].double().pow(2).sum(dim=(1, 3)).sqrt()  # (T, T)
    sums = norms.sum(-1, keepdim=True)
    out = torch.where(sums > 0, norms / torch.where(sums > 0, sums, 1.0), 0.0)
    result = out.numpy()
    if not math.isfinite(float(result.sum())):
        raise ValueError("fn produced a non-finite Jacobian at x")
    return result
