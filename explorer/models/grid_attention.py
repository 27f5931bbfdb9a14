"""Self-attention over an image grid whose scores depend on relative position only.

Cordonnier, Loukas & Jaggi (*On the Relationship between Self-Attention and Convolutional
Layers*, 2020) and Li et al. (*Can Vision Transformers Perform Convolution?*) show that multi-head
self-attention with relative positional encoding can express any K×K convolution with K² heads:
head h attends to the pixel at offset δ_h and its value/output projection carries the kernel's
taps at δ_h. :class:`GridAttention` is that layer — one learnable score per head and per 2-D
offset (wrap-around, so it matches a circularly padded convolution) — and
:meth:`GridAttention.from_conv` builds the construction with the quadratic encoding
score_h(δ) = −β‖δ − δ_h‖².

Shapes: input (B, C_in, H, W) → output (B, C_out, H, W); ``hook_pattern`` (heads, T, T) with
T = H·W tokens in raster order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from explorer.models.hooks import HookPoint
from explorer.validation import check_positive_int

__all__ = ["GridAttention", "circular_conv", "grid_offsets"]


def grid_offsets(height: int, width: int) -> torch.Tensor:
    """Signed wrap-around offset key − query for every pair of grid tokens: (T, T, 2) int64,
    each coordinate in [−size // 2, (size − 1) // 2]."""
    q = torch.arange(height * width)
    qy, qx = q // width, q % width
    dy = (qy[None, :] - qy[:, None] + height // 2) % height - height // 2
    dx = (qx[None, :] - qx[:, None] + width // 2) % width - width // 2
    return torch.stack([dy, dx], dim=-1)


class GridAttention(nn.Module):
    """Multi-head attention on an H×W grid with content-free relative-position scores.

    Head h's pattern is A_h[q, k] = softmax_k(score_h[offset(q, k)]) with one learnable score per
    offset (``scores`` (heads, H·W), indexed by the wrapped offset); the output is
    Σ_h A_h X M_hᵀ + b with one mixing matrix M_h (C_out, C_in) per head (value and output
    projection in one). Deterministic initialisation from ``seed``: scores 0 (uniform attention),
    mixing N(0, 1/(C_in·heads)).
    """

    def __init__(
        self,
        n_heads: int,
        grid: tuple[int, int],
        in_channels: int,
        out_channels: int,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_heads = check_positive_int(n_heads, "n_heads")
        h, w = (check_positive_int(s, "grid") for s in grid)
        self.grid = (h, w)
        c_in = check_positive_int(in_channels, "in_channels")
        c_out = check_positive_int(out_channels, "out_channels")
        g = torch.Generator().manual_seed(seed)
        self.scores = nn.Parameter(torch.zeros(self.n_heads, h * w))
        self.mix = nn.Parameter(torch.randn(self.n_heads, c_out, c_in, generator=g))
        with torch.no_grad():
            self.mix.mul_((c_in * self.n_heads) ** -0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))
        offsets = grid_offsets(h, w)
        self.offset_index: torch.Tensor  # (T, T): which score a (query, key) pair reads
        self.register_buffer("offset_index", (offsets[..., 0] % h) * w + offsets[..., 1] % w)
        self.hook_pattern = HookPoint()

    def pattern(self) -> torch.Tensor:
        """Attention of every head: (heads, T, T), rows sum to 1."""
        return torch.softmax(self.scores[:, self.offset_index], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mix.shape[2] or tuple(x.shape[-2:]) != self.grid:
            raise ValueError(
                f"GridAttention expects images (batch, {self.mix.shape[2]}, {self.grid[0]}, "
                f"{self.grid[1]}), got {tuple(x.shape)}"
            )
        b, _, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, T, C_in)
        a = self.hook_pattern(self.pattern())  # (heads, T, T)
        z = torch.einsum("hqk,bkc->bhqc", a, tokens)  # (B, heads, T, C_in)
        y = torch.einsum("bhqc,hoc->bqo", z, self.mix) + self.bias  # (B, T, C_out)
        return y.transpose(1, 2).reshape(b, -1, h, w)

    @classmethod
    def from_conv(
        cls,
        weight: torch.Tensor,
        grid: tuple[int, int],
        beta: float,
        bias: torch.Tensor | None = None,
    ) -> GridAttention:
        """The K²-head layer that approximates ``conv2d(circular_pad(x), weight, bias)``.

        ``weight`` (C_out, C_in, K, K) with K odd. Head h ↔ offset δ_h in {−K//2 … K//2}²: its
        scores are −β‖δ − δ_h‖² and its mixing matrix is ``weight[:, :, δ_h]``. The error against
        the convolution falls like e^{−β} as β grows; at β = 0 every head attends uniformly.
        """
        if weight.ndim != 4 or weight.shape[-1] != weight.shape[-2] or weight.shape[-1] % 2 == 0:
            raise ValueError(
                f"weight must be (out, in, K, K) with K odd, got {tuple(weight.shape)}"
            )
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        c_out, c_in, k, _ = weight.shape
        r = k // 2
        if min(grid) < k:
            raise ValueError(f"the grid {grid} must be at least the kernel size {k} per side")
        layer = cls(k * k, grid, c_in, c_out)
        offsets = grid_offsets(*grid)[0].to(torch.float64)  # (T, 2): offsets from token 0
        taps = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        with torch.no_grad():
            for h, (dy, dx) in enumerate(taps):
                target = torch.tensor([dy, dx], dtype=torch.float64)
                layer.scores[h] = (-beta * ((offsets - target) ** 2).sum(-1)).float()
                layer.mix[h] = weight[:, :, dy + r, dx + r]
            layer.bias.copy_(bias if bias is not None else torch.zeros(c_out))
        return layer


def circular_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv2d`` with circular padding that keeps the size (the convolution GridAttention matches)."""
    r = weight.shape[-1] // 2
    return F.conv2d(F.pad(x, (r, r, r, r), mode="circular"), weight, bias)
