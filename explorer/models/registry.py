"""Config ↔ model: :func:`build_model` and JSON-friendly config dicts (used by checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from explorer.models.inr import NeuralField
from explorer.models.mlp import MLP, MLPConfig
from explorer.models.transformer import Transformer, TransformerConfig
from explorer.models.vision import CNN, CNNConfig, ConvDecoder, ConvDecoderConfig, ViT, ViTConfig

__all__ = ["MODELS", "build_model", "config_from_dict", "config_to_dict", "model_kind"]

# kind → (config class, model class)
MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "mlp": (MLPConfig, MLP),
    "neural_field": (MLPConfig, NeuralField),
    "transformer": (TransformerConfig, Transformer),
    "cnn": (CNNConfig, CNN),
    "conv_decoder": (ConvDecoderConfig, ConvDecoder),
    "vit": (ViTConfig, ViT),
}


def build_model(config: Any, kind: str | None = None) -> nn.Module:
    """A fresh model from a config dataclass (or a dict from :func:`config_to_dict`).

    ``kind`` overrides the config's own (e.g. ``"neural_field"`` for an :class:`MLPConfig`).
    """
    if isinstance(config, dict):
        kind = kind or config.get("kind")
        config = config_from_dict(config)
    kind = kind or getattr(config, "kind", None)
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; available: {sorted(MODELS)}")
    cfg_cls, model_cls = MODELS[kind]
    if not isinstance(config, cfg_cls):
        raise TypeError(f"a {kind!r} model needs a {cfg_cls.__name__}, got {type(config).__name__}")
    return model_cls(config)


def config_to_dict(config: Any, kind: str | None = None) -> dict[str, Any]:
    """Config dataclass → plain dict with its ``kind`` (JSON-serialisable)."""
    out = asdict(config)
    out["kind"] = kind or config.kind
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def config_from_dict(data: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict`; unknown keys raise a clear error."""
    kind = data.get("kind")
    if kind not in MODELS:
        raise ValueError(f"config has unknown kind {kind!r}; available: {sorted(MODELS)}")
    cfg_cls = MODELS[kind][0]
    names = {f.name for f in fields(cfg_cls)}
    extra = set(data) - names - {"kind"}
    if extra:
        raise ValueError(f"config for {kind!r} has unknown field(s) {sorted(extra)}")
    return cfg_cls(**{k: v for k, v in data.items() if k != "kind"})


def model_kind(model: nn.Module) -> str:
    """The registry kind of a built-in model instance (exact class match)."""
    for kind, (_, cls) in MODELS.items():
        if type(model) is cls:
            return kind
    raise TypeError(
        f"{type(model).__name__} is not a built-in explorer model; save its state_dict with "
        "save_checkpoint(..., config=None) and rebuild it yourself when loading"
    )
