"""Attention variants as pure functions on (B, H, T, d_head) tensors.

Every variant mixes values with an explicit row-stochastic matrix A (B, H, T, T), z = A @ v:

- ``softmax``: softmax(q·kᵀ / (√d·temperature) + bias) over the allowed keys.
- ``sliding``: softmax restricted to |i - j| < window.
- ``strided``: fixed sparse pattern (Sparse Transformer): |i - j| < stride or stride | (i - j).
- ``topk``: softmax over each query's k highest scores.
- ``linear``: φ(q)·φ(k)ᵀ normalised per row with φ = elu + 1 (Katharopoulos et al.).
- ``performer``: the same with positive random features (FAVOR+, Choromanski et al.), whose
  inner product estimates exp(q·k / (√d·temperature)).
- ``none``: the identity (no mixing between positions), a baseline.

:func:`pattern` materialises A; :func:`attend_fast` computes z without it (fused SDPA for the
softmax family, linear-time sums for the kernel variants). Both agree within float tolerance.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

__all__ = [
    "KERNEL_VARIANTS",
    "SCORE_VARIANTS",
    "VARIANTS",
    "AttentionParams",
    "allowed_mask",
    "attend_fast",
    "kernel_features",
    "orthogonal_features",
    "pattern",
]

SCORE_VARIANTS = ("softmax", "sliding", "strided", "topk")
KERNEL_VARIANTS = ("linear", "performer")
VARIANTS = (*SCORE_VARIANTS, *KERNEL_VARIANTS, "none")


class AttentionParams:
    """Fixed settings of one attention layer (variant, causality and the variant's knobs)."""

    def __init__(
        self,
        variant: str,
        causal: bool,
        temperature: float = 1.0,
        window: int = 4,
        stride: int = 4,
        topk: int = 4,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"attention variant must be one of {VARIANTS}, got {variant!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
        for name, value in (("window", window), ("stride", stride), ("topk", topk)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.variant, self.causal, self.temperature = variant, causal, float(temperature)
        self.window, self.stride, self.topk = int(window), int(stride), int(topk)


def allowed_mask(p: AttentionParams, t: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bool mask of keys each query may attend to (the diagonal is always allowed)."""
    i = torch.arange(t, device=device)
    diff = i[:, None] - i[None, :]  # query - key
    if p.variant == "sliding":
        ok = diff.abs() < p.window
    elif p.variant == "strided":
        ok = (diff.abs() < p.stride) | (diff % p.stride == 0)
    else:
        ok = torch.ones(t, t, dtype=torch.bool, device=device)
    return ok & (diff >= 0) if p.causal else ok


def _scale(p: AttentionParams, d: int) -> float:
    return 1.0 / (math.sqrt(d) * p.temperature)


def _masked_scores(
    p: AttentionParams, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    scores = (q @ k.transpose(-2, -1)) * _scale(p, q.shape[-1])  # (B, H, T, T)
    if bias is not None:
        scores = scores + bias
    ok = allowed_mask(p, q.shape[-2], q.device)
    if p.variant == "topk":
        kth = min(p.topk, q.shape[-2])
        masked = scores.masked_fill(~ok, float("-inf"))
        idx = masked.topk(kth, dim=-1).indices
        ok = ok & torch.zeros_like(scores, dtype=torch.bool).scatter(-1, idx, True)
    return scores.masked_fill(~ok, float("-inf"))


def orthogonal_features(n_features: int, d_head: int, seed: int) -> torch.Tensor:
    """(n_features, d_head) Gaussian-norm orthogonal random projections for FAVOR+."""
    g = torch.Generator().manual_seed(seed)
    n_blocks = math.ceil(n_features / d_head)
    qmat, r = torch.linalg.qr(torch.randn(n_blocks, d_head, d_head, generator=g))
    qmat = qmat * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]  # Haar-uniform
    w = qmat.transpose(-2, -1).reshape(-1, d_head)[:n_features]  # orthonormal rows per block
    norms = torch.randn(n_features, d_head, generator=g).norm(dim=1, keepdim=True)
    return w * norms


def kernel_features(
    p: AttentionParams, x: torch.Tensor, projection: torch.Tensor | None, is_query: bool
) -> torch.Tensor:
    """Feature map φ: (B, H, T, d) → (B, H, T, F) with φ ≥ 0 (elu+1 or FAVOR+)."""
    if p.variant == "linear":
        return F.elu(x) + 1.0
    if projection is None:
        raise ValueError("performer attention needs its random projection matrix")
    x = x * math.sqrt(_scale(p, x.shape[-1]))  # so that φ(q)·φ(k) ≈ exp(q·k·scale)
    proj = x @ projection.T  # (B, H, T, F)
    logits = proj - (x * x).sum(-1, keepdim=True) / 2
    # Constant shifts cancel in the row normalisation: per query row, or global over keys.
    shift = logits.amax(-1, keepdim=True) if is_query else logits.amax((-2, -1), keepdim=True)
    return torch.exp(logits - shift.detach()) / math.sqrt(projection.shape[0])


def pattern(
    p: AttentionParams,
    q: torch.Tensor,
    k: torch.Tensor,
    bias: torch.Tensor | None = None,
    projection: torch.Tensor | None = None,
) -> torch.Tensor:
    """Explicit mixing matrix A (B, H, T, T); rows sum to 1. ``bias`` (H, T, T) is additive."""
    t = q.shape[-2]
    if p.variant == "none":
        eye = torch.eye(t, dtype=q.dtype, device=q.device)
        return eye.expand(*q.shape[:-2], t, t)
    if p.variant in SCORE_VARIANTS:
        return torch.softmax(_masked_scores(p, q, k, bias), dim=-1)
    fq = kernel_features(p, q, projection, is_query=True)
    fk = kernel_features(p, k, projection, is_query=False)
    a = fq @ fk.transpose(-2, -1)  # (B, H, T, T)
    if p.causal:
        a = a.masked_fill(~allowed_mask(p, t, q.device), 0.0)
    return a / a.sum(-1, keepdim=True).clamp_min(1e-30)


def attend_fast(
    p: AttentionParams,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
    projection: torch.Tensor | None = None,
) -> torch.Tensor:
    """z = A @ v (B, H, T, d_v) without materialising A where the variant allows it."""
    t = q.shape[-2]
    if p.variant == "none":
        return v
    if p.variant == "topk":
        return pattern(p, q, k, bias) @ v  # the mask needs the scores anyway
    if p.variant in SCORE_VARIANTS:
        scale = _scale(p, q.shape[-1])
        if p.variant == "softmax" and bias is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=p.causal, scale=scale)
        ok = allowed_mask(p, t, q.device)
        mask = ok if bias is None else bias.masked_fill(~ok, float("-inf")).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    fq = kernel_features(p, q, projection, is_query=True)  # (B, H, T, F)
    fk = kernel_features(p, k, projection, is_query=False)
    if p.causal:
        return _causal_kernel_attend(fq, fk, v)
    num = fq @ (fk.transpose(-2, -1) @ v)
    den = fq @ fk.sum(dim=2, keepdim=True).transpose(-2, -1)
    return num / den.clamp_min(1e-30)


def _causal_kernel_attend(
    fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, chunk: int = 64
) -> torch.Tensor:
    """Causal Σ_{j≤i} φ(q_i)·φ(k_j) v_j / Σ_{j≤i} φ(q_i)·φ(k_j), chunk by chunk: masked
    (C, C) blocks inside a chunk plus a running state Σ φ(k)⊗v (F, d_v) from earlier chunks.
    O(T·(C + F)·d) time and O(C² + F·d) extra memory per head, instead of O(T²)."""
    t = fq.shape[-2]
    state = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], v.shape[-1])  # (B, H, F, d_v)
    norm = fq.new_zeros(*fq.shape[:-2], fq.shape[-1], 1)  # (B, H, F, 1)
    tril = torch.ones(chunk, chunk, dtype=torch.bool, device=fq.device).tril()
    out = []
    for s in range(0, t, chunk):
        q, k, vv = fq[..., s : s + chunk, :], fk[..., s : s + chunk, :], v[..., s : s + chunk, :]
        c = q.shape[-2]
        a = (q @ k.transpose(-2, -1)).masked_fill(~tril[:c, :c], 0.0)  # (B, H, c, c)
        num = a @ vv + q @ state
        den = a.sum(-1, keepdim=True) + q @ norm
        out.append(num / den.clamp_min(1e-30))
        state = state + k.transpose(-2, -1) @ vv
        norm = norm + k.sum(-2).unsqueeze(-1)
    return torch.cat(out, dim=-2)
