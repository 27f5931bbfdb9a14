"""Tiny pre-LayerNorm transformer (encoder or causal decoder) with per-layer attention variants.

Hook points (TransformerLens names): ``hook_embed``, ``hook_pos_embed`` (B, T, d) when the
positional encoding is added to the stream; per block i: ``blocks.{i}.hook_resid_pre``,
``blocks.{i}.attn.hook_q|hook_k|hook_v`` (B, H, T, d_head) after RoPE,
``blocks.{i}.attn.hook_pattern`` (B, H, T, T), the mixing matrix of every variant,
``blocks.{i}.attn.hook_z`` (B, H, T, d_head) = pattern @ v, ``blocks.{i}.hook_attn_out``,
``blocks.{i}.hook_resid_mid``, ``blocks.{i}.mlp.hook_pre|hook_post`` (B, T, d_mlp),
``blocks.{i}.hook_mlp_out``, ``blocks.{i}.hook_resid_post`` (B, T, d); ``hook_resid_final``.

Attention is computed with fused kernels (SDPA / linear-time sums) unless a hook observes
``hook_pattern``; then the pattern is materialised, passed through the hook, and used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from explorer.models.attention import (
    KERNEL_VARIANTS,
    VARIANTS,
    AttentionParams,
    attend_fast,
    orthogonal_features,
    pattern,
)
from explorer.models.hooks import HookPoint
from explorer.models.layers import ACTIVATIONS, Activation
from explorer.models.positional import POSITIONAL, alibi_bias, apply_rope, sinusoidal_table
from explorer.validation import check_flag, check_number, check_positive_int

__all__ = ["Block", "Transformer", "TransformerConfig"]


@dataclass
class TransformerConfig:
    """Shape of a :class:`Transformer`; ``attention`` is one variant name or one per layer.

    ``d_mlp`` 0 means 4·d_model. ``window``/``stride``/``topk`` parametrise the sliding,
    strided and top-k variants; ``performer_features`` the random features of ``performer``.
    """

    kind: ClassVar[str] = "transformer"
    vocab_size: int = 16
    n_ctx: int = 32
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 0
    causal: bool = True
    pos: str = "learned"
    attention: str | list[str] = "softmax"
    temperature: float = 1.0
    window: int = 4
    stride: int = 4
    topk: int = 4
    performer_features: int = 64
    activation: str = "gelu"
    layernorm: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_ctx", "d_model", "n_layers", "n_heads", "window", "stride",
                     "topk", "performer_features"):  # fmt: skip
            check_positive_int(getattr(self, name), f"TransformerConfig.{name}")
        check_positive_int(self.d_mlp, "TransformerConfig.d_mlp", minimum=0)
        check_positive_int(self.seed, "TransformerConfig.seed", minimum=0)
        check_number(self.temperature, "TransformerConfig.temperature", low=0, low_open=True)
        for name in ("causal", "layernorm"):
            check_flag(getattr(self, name), f"TransformerConfig.{name}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.pos not in POSITIONAL:
            raise ValueError(f"pos must be one of {POSITIONAL}, got {self.pos!r}")
        if self.pos == "rope" and self.d_head % 2:
            raise ValueError(f"pos='rope' needs an even d_head, got {self.d_head}")
        names = self.variants
        if len(names) != self.n_layers:
            raise ValueError(
                f"attention lists {len(names)} variant(s) but n_layers={self.n_layers}; give one "
                "name for all layers or exactly one per layer"
            )
        for name in names:
            if name not in VARIANTS:
                raise ValueError(f"attention variant must be one of {VARIANTS}, got {name!r}")
            if self.pos == "alibi" and name in KERNEL_VARIANTS:
                raise ValueError(
                    f"pos='alibi' adds a bias to attention scores; {name!r} attention has none. "
                    "Use pos='rope' or 'learned' with kernel attention."
                )
        AttentionParams(
            names[0], self.causal, self.temperature, self.window, self.stride, self.topk
        )

    @property
    def variants(self) -> list[str]:
        """The attention variant of each layer."""
        if isinstance(self.attention, str):
            return [self.attention] * self.n_layers
        return list(self.attention)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_width(self) -> int:
        return self.d_mlp or 4 * self.d_model


class Attention(nn.Module):
    """Multi-head attention whose mixing rule is ``variant``; (B, T, d) → (B, T, d)."""

    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.n_heads, self.d_head, self.pos = cfg.n_heads, cfg.d_head, cfg.pos
        self.params = AttentionParams(
            cfg.variants[layer], cfg.causal, cfg.temperature, cfg.window, cfg.stride, cfg.topk
        )
        self.W_qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.W_o = nn.Linear(cfg.d_model, cfg.d_model)
        self.projection: torch.Tensor | None
        if self.params.variant == "performer":
            feats = orthogonal_features(cfg.performer_features, cfg.d_head, cfg.seed + layer)
            self.register_buffer("projection", feats)
        else:
            self.projection = None
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern, self.hook_z = HookPoint(), HookPoint()

    @property
    def variant(self) -> str:
        return self.params.variant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.W_qkv(x).view(b, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, T, d_head)
        if self.pos == "rope":
            positions = torch.arange(t, device=x.device)
            q, k = apply_rope(q, positions), apply_rope(k, positions)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        bias = alibi_bias(self.n_heads, t, x.device).to(x.dtype) if self.pos == "alibi" else None
        if self.hook_pattern.is_observed:
            a = self.hook_pattern(pattern(self.params, q, k, bias, self.projection))  # (B,H,T,T)
            z = a @ v
        else:
            z = attend_fast(self.params, q, k, v, bias, self.projection)
        z = self.hook_z(z)  # (B, H, T, d_head)
        return self.W_o(z.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    """d_model → d_mlp → d_model with hook points around the activation."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.W_in = nn.Linear(cfg.d_model, cfg.mlp_width)
        self.act = Activation(cfg.activation)
        self.W_out = nn.Linear(cfg.mlp_width, cfg.d_model)
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W_out(self.hook_post(self.act(self.hook_pre(self.W_in(x)))))


class Block(nn.Module):
    """Pre-LN residual block: x + attn(ln(x)), then + mlp(ln(·))."""

    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        norm = nn.LayerNorm if cfg.layernorm else nn.Identity
        self.ln1, self.ln2 = norm(cfg.d_model), norm(cfg.d_model)
        self.attn = Attention(cfg, layer)
        self.mlp = FeedForward(cfg)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_resid_mid, self.hook_mlp_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.ln1(x))))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))


class Transformer(nn.Module):
    """Tokens (B, T) → logits (B, T, vocab_size). Deterministic init from ``config.seed``."""

    def __init__(self, config: TransformerConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = config or TransformerConfig(**overrides)  # type: ignore[arg-type]
        self.config = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
            if cfg.pos == "learned":
                self.pos_embed = nn.Parameter(torch.randn(cfg.n_ctx, cfg.d_model) * 0.02)
            elif cfg.pos == "sinusoidal":
                self.register_buffer("pos_embed", sinusoidal_table(cfg.n_ctx, cfg.d_model))
            self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
            self.ln_final = nn.LayerNorm(cfg.d_model) if cfg.layernorm else nn.Identity()
            self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.hook_resid_final = HookPoint()

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token (+ additive positional) embedding, (B, T) → (B, T, d)."""
        cfg = self.config
        if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"Transformer expects integer tokens of shape (batch, seq), got "
                f"{tuple(tokens.shape)} {tokens.dtype}"
            )
        t = tokens.shape[1]
        if t > cfg.n_ctx:
            raise ValueError(f"sequence length {t} exceeds n_ctx={cfg.n_ctx}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= cfg.vocab_size):
            raise ValueError(
                f"tokens must lie in [0, {cfg.vocab_size}), got range "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        x = self.hook_embed(self.embed(tokens))
        if cfg.pos in ("learned", "sinusoidal"):
            x = x + self.hook_pos_embed(self.pos_embed[:t].expand(tokens.shape[0], t, -1))
        return x

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Residual stream (B, T, d) through every block and the final LayerNorm."""
        for block in self.blocks:
            x = block(x)
        return self.hook_resid_final(self.ln_final(x))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.unembed(self.run_blocks(self.embed_tokens(tokens)))
