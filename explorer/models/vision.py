"""Small image models: a CNN classifier, a convolutional decoder (upsampling generator) and a ViT.

Hook points: CNN and decoder ``blocks.{i}.hook_out`` (B, C, H, W); CNN ``hook_features`` (B, C)
after global pooling. ViT uses the transformer names (``hook_embed`` = patch embeddings with the
CLS token at index 0, ``blocks.{i}.attn.hook_pattern`` (B, H, 1+P, 1+P), ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from explorer.models.hooks import HookPoint
from explorer.models.layers import ACTIVATIONS, Activation
from explorer.models.positional import sinusoidal_table
from explorer.models.transformer import Block, TransformerConfig
from explorer.validation import check_flag, check_positive_int

__all__ = ["CNN", "CNNConfig", "ConvDecoder", "ConvDecoderConfig", "ViT", "ViTConfig"]

PADDING_MODES = ("zeros", "reflect", "circular", "replicate")
UPSAMPLING = ("nearest", "bilinear", "transposed", "zero_insert")


def _channels(value: Any, name: str) -> tuple[int, ...]:
    chans = tuple(value)
    if not chans:
        raise ValueError(f"{name} must list at least one channel count")
    return tuple(check_positive_int(c, name) for c in chans)


def _check_conv(cfg: CNNConfig | ConvDecoderConfig) -> None:
    """The fields both convolutional configs share."""
    name = type(cfg).__name__
    check_positive_int(cfg.kernel_size, f"{name}.kernel_size")
    if cfg.kernel_size % 2 == 0:
        raise ValueError(f"{name}.kernel_size must be odd (same padding), got {cfg.kernel_size}")
    if cfg.padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {cfg.padding_mode!r}")
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {cfg.activation!r}")
    check_positive_int(cfg.seed, f"{name}.seed", minimum=0)


@dataclass
class CNNConfig:
    """Conv → activation → 2×2 pool per entry of ``channels``; global average pool; linear head."""

    kind: ClassVar[str] = "cnn"
    in_channels: int = 1
    n_classes: int = 10
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    padding_mode: str = "zeros"
    pool: bool = True
    activation: str = "relu"
    seed: int = 0

    def __post_init__(self) -> None:
        self.channels = _channels(self.channels, "CNNConfig.channels")
        check_positive_int(self.in_channels, "CNNConfig.in_channels")
        check_positive_int(self.n_classes, "CNNConfig.n_classes")
        check_flag(self.pool, "CNNConfig.pool")
        _check_conv(self)


class ConvBlock(nn.Module):
    """(Upsample ×2) → conv (same padding) → activation → (2×2 max pool); output hooked."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        padding_mode: str,
        activation: str,
        pool: bool = False,
        upsample: str | None = None,
    ) -> None:
        super().__init__()
        self.upsample, self.pool = upsample, pool
        if upsample == "transposed":
            self.up = nn.ConvTranspose2d(c_in, c_in, kernel_size=2, stride=2)
        self.conv = nn.Conv2d(
            c_in,
            c_out,
            kernel_size,
            padding=kernel_size // 2,
            padding_mode=padding_mode,  # type: ignore[arg-type]
        )
        self.act = Activation(activation)
        self.hook_out = HookPoint()

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "transposed":
            return self.up(x)
        if self.upsample == "zero_insert":  # stride-2 zero insertion, as in transposed convs
            b, c, h, w = x.shape
            out = x.new_zeros(b, c, 2 * h, 2 * w)
            out[..., ::2, ::2] = x
            return out
        mode = "bilinear" if self.upsample == "bilinear" else "nearest"
        return F.interpolate(x, scale_factor=2, mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = self._up(x)
        x = self.act(self.conv(x))
        if self.pool:
            x = F.max_pool2d(x, 2, ceil_mode=True)
        return self.hook_out(x)


def _conv_blocks(cfg: CNNConfig | ConvDecoderConfig, **mode: Any) -> nn.ModuleList:
    """One ConvBlock per entry of ``cfg.channels``; ``mode`` is ``pool=`` or ``upsample=``."""
    chans = (cfg.in_channels, *cfg.channels)
    return nn.ModuleList(
        ConvBlock(chans[i], chans[i + 1], cfg.kernel_size, cfg.padding_mode, cfg.activation, **mode)
        for i in range(len(cfg.channels))
    )


class CNN(nn.Module):
    """Images (B, C, H, W) → logits (B, n_classes)."""

    def __init__(self, config: CNNConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = config or CNNConfig(**overrides)  # type: ignore[arg-type]
        self.config = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.blocks = _conv_blocks(cfg, pool=cfg.pool)
            self.head = nn.Linear(cfg.channels[-1], cfg.n_classes)
        self.hook_features = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.config.in_channels, "CNN")
        for block in self.blocks:
            x = block(x)
        return self.head(self.hook_features(x.mean(dim=(-2, -1))))


@dataclass
class ConvDecoderConfig:
    """Generator: input (B, in_channels, s, s) doubles in size per entry of ``channels``.

    ``upsample`` in nearest|bilinear|transposed|zero_insert; ``output`` none|sigmoid.
    """

    kind: ClassVar[str] = "conv_decoder"
    in_channels: int = 32
    out_channels: int = 1
    channels: tuple[int, ...] = (64, 64, 32)
    kernel_size: int = 3
    upsample: str = "nearest"
    padding_mode: str = "zeros"
    activation: str = "relu"
    output: str = "sigmoid"
    seed: int = 0

    def __post_init__(self) -> None:
        self.channels = _channels(self.channels, "ConvDecoderConfig.channels")
        check_positive_int(self.in_channels, "ConvDecoderConfig.in_channels")
        check_positive_int(self.out_channels, "ConvDecoderConfig.out_channels")
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, got {self.upsample!r}")
        if self.output not in ("none", "sigmoid"):
            raise ValueError(f"output must be 'none' or 'sigmoid', got {self.output!r}")
        _check_conv(self)


class ConvDecoder(nn.Module):
    """(B, in_channels, s, s) → (B, out_channels, s·2^L, s·2^L), L = len(channels)."""

    def __init__(self, config: ConvDecoderConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = config or ConvDecoderConfig(**overrides)  # type: ignore[arg-type]
        self.config = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.blocks = _conv_blocks(cfg, upsample=cfg.upsample)
            self.to_image = nn.Conv2d(cfg.channels[-1], cfg.out_channels, kernel_size=1)
        self.hook_out = HookPoint()

    def noise_input(self, size: int = 8, batch: int = 1, seed: int = 0) -> torch.Tensor:
        """Fixed uniform noise input (batch, in_channels, size, size), as in Deep Image Prior."""
        g = torch.Generator().manual_seed(seed)
        return torch.rand(batch, self.config.in_channels, size, size, generator=g) * 0.1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_images(z, self.config.in_channels, "ConvDecoder")
        for block in self.blocks:
            z = block(z)
        out = self.to_image(z)
        return self.hook_out(torch.sigmoid(out) if self.config.output == "sigmoid" else out)


@dataclass
class ViTConfig:
    """Vision transformer: patches of ``patch_size`` pixels, CLS token at index 0."""

    kind: ClassVar[str] = "vit"
    image_size: int = 8
    patch_size: int = 2
    in_channels: int = 1
    n_classes: int = 10
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 0
    pos: str = "learned"
    attention: str | list[str] = "softmax"
    temperature: float = 1.0
    window: int = 4
    stride: int = 4
    topk: int = 4
    performer_features: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "in_channels", "n_classes"):
            check_positive_int(getattr(self, name), f"ViTConfig.{name}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        self.blocks_config()  # validates the transformer fields

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def blocks_config(self) -> TransformerConfig:
        """The bidirectional :class:`TransformerConfig` its blocks are built from."""
        return TransformerConfig(
            vocab_size=1, n_ctx=self.n_patches + 1, d_model=self.d_model, n_layers=self.n_layers,
            n_heads=self.n_heads, d_mlp=self.d_mlp, causal=False, pos=self.pos,
            attention=self.attention, temperature=self.temperature, window=self.window,
            stride=self.stride, topk=self.topk, performer_features=self.performer_features,
            seed=self.seed,
        )  # fmt: skip


class ViT(nn.Module):
    """Images (B, C, H, W) → logits (B, n_classes) read from the CLS token."""

    def __init__(self, config: ViTConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = config or ViTConfig(**overrides)  # type: ignore[arg-type]
        self.config = cfg
        bcfg = cfg.blocks_config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.patch_embed = nn.Conv2d(
                cfg.in_channels, cfg.d_model, cfg.patch_size, stride=cfg.patch_size
            )
            self.cls = nn.Parameter(torch.randn(1, 1, cfg.d_model) * 0.02)
            if cfg.pos == "learned":
                self.pos_embed = nn.Parameter(torch.randn(cfg.n_patches + 1, cfg.d_model) * 0.02)
            elif cfg.pos == "sinusoidal":
                self.register_buffer("pos_embed", sinusoidal_table(cfg.n_patches + 1, cfg.d_model))
            self.blocks = nn.ModuleList(Block(bcfg, i) for i in range(cfg.n_layers))
            self.ln_final = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, cfg.n_classes)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.hook_resid_final = HookPoint()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        _check_images(images, cfg.in_channels, "ViT")
        if images.shape[-2:] != (cfg.image_size, cfg.image_size):
            raise ValueError(
                f"ViT expects {cfg.image_size}×{cfg.image_size} images, got "
                f"{tuple(images.shape[-2:])}"
            )
        b = images.shape[0]
        patches = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, P, d)
        x = self.hook_embed(torch.cat([self.cls.expand(b, -1, -1), patches], dim=1))
        if cfg.pos in ("learned", "sinusoidal"):
            x = x + self.hook_pos_embed(self.pos_embed.expand(b, -1, -1))
        for block in self.blocks:
            x = block(x)
        x = self.hook_resid_final(self.ln_final(x))
        return self.head(x[:, 0])


def _check_images(x: torch.Tensor, channels: int, model: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{model} expects images of shape (batch, {channels}, height, width), got "
            f"{tuple(x.shape)}"
        )
