"""Building blocks for coordinate MLPs: activations (incl. periodic and wavelet) and encodings.

Activations: ``relu``, ``gelu``, ``tanh``, ``silu``, ``sine`` (SIREN, sin(ω₀x) with the SIREN
initialisation), ``gabor`` (real Gabor wavelet cos(ω₀x)·exp(-(s₀x)²), as in WIRE) and
``gaussian`` (exp(-(s₀x)²)). Encodings of an input x ∈ R^d: ``raw``; ``fourier``
[cos 2πBx, sin 2πBx] with fixed B ~ N(0, σ²) (Tancik et al.); ``learned_fourier`` (same with
B trainable); ``positional`` (NeRF: axis-aligned frequencies 2^k π, k < n_frequencies).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "ENCODINGS", "Activation", "Encoding", "siren_init_"]

ACTIVATIONS = ("relu", "gelu", "tanh", "silu", "sine", "gabor", "gaussian")
ENCODINGS = ("raw", "fourier", "learned_fourier", "positional")


class Activation(nn.Module):
    """Elementwise activation by name; ``omega0`` and ``scale`` parametrise the periodic ones."""

    def __init__(self, name: str, omega0: float = 30.0, scale: float = 10.0) -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
        self.name, self.omega0, self.scale = name, float(omega0), float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "relu":
            return torch.relu(x)
        if self.name == "gelu":
            return nn.functional.gelu(x)
        if self.name == "tanh":
            return torch.tanh(x)
        if self.name == "silu":
            return nn.functional.silu(x)
        if self.name == "sine":
            return torch.sin(self.omega0 * x)
        if self.name == "gabor":
            return torch.cos(self.omega0 * x) * torch.exp(-((self.scale * x) ** 2))
        return torch.exp(-((self.scale * x) ** 2))  # gaussian

    def extra_repr(self) -> str:
        return f"{self.name}, omega0={self.omega0:g}, scale={self.scale:g}"


@torch.no_grad()
def siren_init_(linear: nn.Linear, omega0: float, first: bool) -> None:
    """SIREN initialisation (Sitzmann et al. 2020): U(±1/n) first, U(±√(6/n)/ω₀) after."""
    n = linear.in_features
    bound = 1.0 / n if first else math.sqrt(6.0 / n) / omega0
    linear.weight.uniform_(-bound, bound)
    if linear.bias is not None:
        linear.bias.uniform_(-1.0 / math.sqrt(n), 1.0 / math.sqrt(n))


class Encoding(nn.Module):
    """Input encoding (N, in_dim) → (N, out_dim); see the module docstring for the variants."""

    def __init__(
        self,
        kind: str,
        in_dim: int,
        n_features: int = 128,
        scale: float = 10.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if kind not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {kind!r}")
        if scale <= 0 or not math.isfinite(scale):
            raise ValueError(f"fourier_scale must be a positive finite number, got {scale!r}")
        self.kind, self.in_dim = kind, in_dim
        self.B: torch.Tensor
        self.freqs: torch.Tensor
        if kind in ("fourier", "learned_fourier"):
            g = torch.Generator().manual_seed(seed)
            b = torch.randn(n_features, in_dim, generator=g) * scale  # (F, d)
            if kind == "fourier":
                self.register_buffer("B", b)
            else:
                self.B = nn.Parameter(b)
            self.out_dim = 2 * n_features
        elif kind == "positional":
            freqs = (2.0 ** torch.arange(n_features)) * math.pi  # (F,)
            self.register_buffer("freqs", freqs)
            self.out_dim = in_dim * (1 + 2 * n_features)
        else:
            self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "raw":
            return x
        if self.kind == "positional":
            ang = x[..., :, None] * self.freqs  # (N, d, F)
            feats = torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1).flatten(-2)
            return torch.cat([x, feats], dim=-1)
        proj = 2 * math.pi * x @ self.B.T  # (N, F)
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)
