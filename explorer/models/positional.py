"""Positional encodings: sinusoidal table, rotary (RoPE) rotation and ALiBi distance bias."""

from __future__ import annotations

import torch

__all__ = ["POSITIONAL", "alibi_bias", "alibi_slopes", "apply_rope", "sinusoidal_table"]

POSITIONAL = ("none", "learned", "sinusoidal", "rope", "alibi")


def sinusoidal_table(n_ctx: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(n_ctx, d_model) table of Vaswani et al.: sin on even, cos on odd channels."""
    pos = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    inv = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: d_model // 2])
    return table.float()


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x (..., T, d_head) by angle pos·base^(-2i/d_head).

    Then ⟨rope(q, m), rope(k, n)⟩ depends on m - n only (RoFormer). ``d_head`` must be even.
    """
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head dimension, got d_head={d}")
    inv = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float64) / d)  # (d/2,)
    ang = positions.to(torch.float64)[:, None] * inv  # (T, d/2)
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., T, d/2, 2)
    return out.flatten(-2)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes 2^(-8h/H), h = 1..H (Press et al. 2022), shape (H,)."""
    return torch.tensor([2.0 ** (-8.0 * h / n_heads) for h in range(1, n_heads + 1)])


def alibi_bias(n_heads: int, t: int, device: torch.device | None = None) -> torch.Tensor:
    """(H, T, T) additive score bias -slope_h·|i - j|."""
    pos = torch.arange(t, device=device)
    dist = (pos[:, None] - pos[None, :]).abs().float()  # (T, T)
    return -alibi_slopes(n_heads).to(device)[:, None, None] * dist
