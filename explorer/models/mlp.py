"""Multi-layer perceptron with choosable activation, input encoding, residuals and LayerNorm.

Hook points: ``hook_encoded`` (N, E) after the input encoding, ``layers.{i}.hook_pre`` and
``layers.{i}.hook_post`` (N, width) around each hidden activation, ``hook_out`` (N, out_dim).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from explorer.models.hooks import HookPoint
from explorer.models.layers import ACTIVATIONS, ENCODINGS, Activation, Encoding, siren_init_
from explorer.validation import check_flag, check_number, check_positive_int

__all__ = ["MLP", "MLPConfig"]


@dataclass
class MLPConfig:
    """Shape and flavour of an :class:`MLP`.

    ``depth`` counts hidden layers. ``omega0`` is SIREN's frequency (sine) or the Gabor/Gaussian
    frequency (gabor); ``act_scale`` the Gabor/Gaussian width. ``n_fourier`` is the number of
    Fourier features (output width 2·n_fourier) or of octaves for ``positional``.
    """

    kind: ClassVar[str] = "mlp"
    in_dim: int = 2
    out_dim: int = 2
    depth: int = 3
    width: int = 64
    activation: str = "relu"
    encoding: str = "raw"
    fourier_scale: float = 10.0
    n_fourier: int = 64
    omega0: float = 30.0
    act_scale: float = 10.0
    residual: bool = False
    layernorm: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim", "depth", "width", "n_fourier"):
            check_positive_int(getattr(self, name), f"MLPConfig.{name}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        for name in ("fourier_scale", "omega0", "act_scale"):
            check_number(getattr(self, name), f"MLPConfig.{name}", low=0, low_open=True)
        for name in ("residual", "layernorm"):
            check_flag(getattr(self, name), f"MLPConfig.{name}")
        check_positive_int(self.seed, "MLPConfig.seed", minimum=0)


class MLPLayer(nn.Module):
    """Linear → (LayerNorm) → activation, with an optional residual connection."""

    def __init__(self, d_in: int, d_out: int, cfg: MLPConfig, first: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out) if cfg.layernorm else nn.Identity()
        self.act = Activation(cfg.activation, cfg.omega0, cfg.act_scale)
        self.residual = cfg.residual and d_in == d_out
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()
        if cfg.activation == "sine":
            siren_init_(self.linear, cfg.omega0, first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.hook_pre(self.norm(self.linear(x)))  # (N, width)
        post = self.hook_post(self.act(pre))  # (N, width)
        return x + post if self.residual else post


class MLP(nn.Module):
    """(N, in_dim) → (N, out_dim). Deterministic initialisation from ``config.seed``."""

    def __init__(self, config: MLPConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = config or MLPConfig(**overrides)  # type: ignore[arg-type]
        self.config = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.encoding = Encoding(
                cfg.encoding, cfg.in_dim, cfg.n_fourier, cfg.fourier_scale, cfg.seed
            )
            self.hook_encoded = HookPoint()
            dims = [self.encoding.out_dim] + [cfg.width] * cfg.depth
            self.layers = nn.ModuleList(
                MLPLayer(dims[i], dims[i + 1], cfg, first=i == 0) for i in range(cfg.depth)
            )
            self.head = nn.Linear(cfg.width, cfg.out_dim)
            if cfg.activation == "sine":
                siren_init_(self.head, cfg.omega0, first=False)
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.config.in_dim:
            raise ValueError(
                f"MLP expects inputs with {self.config.in_dim} feature(s) in the last axis, got "
                f"shape {tuple(x.shape)}"
            )
        h = self.hook_encoded(self.encoding(x))
        for layer in self.layers:
            h = layer(h)
        return self.hook_out(self.head(h))
