"""Config ↔ model: :func:`build_model` and JSON-friendly config dicts (used by checkpoints),
and task → model: :func:`model_for_task` builds a seeded factory of any built-in family sized
for a task (input width, classes, vocabulary, image size come from the task)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields, replace
from typing import Any

from torch import nn

from explorer.models.inr import NeuralField
from explorer.models.mlp import MLP, MLPConfig
from explorer.models.transformer import Transformer, TransformerConfig
from explorer.models.vision import CNN, CNNConfig, ConvDecoder, ConvDecoderConfig, ViT, ViTConfig

__all__ = [
    "FAMILIES",
    "MODELS",
    "build_model",
    "config_from_dict",
    "config_to_dict",
    "model_for_task",
    "model_kind",
    "task_families",
]

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


# family → the config fields a user chooses (the rest is sized from the task)
FAMILIES: dict[str, tuple[str, ...]] = {
    "mlp": ("depth", "width", "activation", "encoding", "fourier_scale"),
    "neural_field": ("depth", "width", "activation", "encoding", "fourier_scale", "omega0"),
    "transformer": ("n_layers", "n_heads", "d_model", "attention", "pos"),
    "cnn": ("channels", "kernel_size", "activation"),
    "vit": ("n_layers", "n_heads", "d_model", "patch_size", "attention"),
}


def _is_image_batch(task: Any) -> bool:
    x = getattr(task, "x_train", None)
    return x is not None and getattr(x, "ndim", 0) == 4  # (N, C, H, W)


def task_families(task: Any) -> tuple[str, ...]:
    """Model families that fit ``task``, the natural one first: sequences → transformer,
    images (N, C, H, W) → cnn, vit; signals and images as fields → mlp, neural_field;
    other vector inputs → mlp."""
    kind = getattr(task, "kind", None)
    if kind == "sequence":
        return ("transformer",)
    if _is_image_batch(task):
        return ("cnn", "vit")
    if kind in ("signal", "image"):
        return ("mlp", "neural_field")
    return ("mlp",)


def _sized_config(task: Any, family: str) -> Any:
    """The family's config with the task's input/output sizes filled in."""
    meta = getattr(task, "meta", None) or {}
    x = task.x_train
    n_out = int(meta.get("n_classes", meta.get("out_dim", 0)) or 0)
    if not n_out:
        y = task.y_train
        n_out = int(y.shape[-1]) if getattr(y, "ndim", 1) > 1 else 1
    if family == "transformer":
        return TransformerConfig(vocab_size=int(meta["vocab_size"]), n_ctx=int(meta["seq_len"]))
    if family in ("cnn", "vit"):
        _, c, h, w = (int(v) for v in x.shape)
        if family == "cnn":
            return CNNConfig(in_channels=c, n_classes=n_out)
        if h != w:
            raise ValueError(f"a ViT needs square images, the task has {h}×{w}")
        return ViTConfig(
            image_size=h, in_channels=c, n_classes=n_out, patch_size=2 if h <= 8 else 4
        )
    in_dim = int(meta.get("in_dim", x.shape[-1]))
    if family == "neural_field":
        return MLPConfig(in_dim=in_dim, out_dim=n_out, activation="sine", omega0=30.0)
    return MLPConfig(in_dim=in_dim, out_dim=n_out)


def model_for_task(
    task: Any, family: str | None = None, **knobs: Any
) -> Callable[[int], nn.Module]:
    """A factory ``f(seed) -> model`` of ``family`` (default: the task's natural one, see
    :func:`task_families`) sized for ``task``; ``knobs`` set the fields listed in
    :data:`FAMILIES` (e.g. ``depth=2, width=32``). The config is validated here, before any
    model is built: a bad knob raises ValueError naming the field."""
    fits = task_families(task)
    family = family or fits[0]
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    if family not in fits:
        raise ValueError(
            f"a {family!r} model does not fit the {getattr(task, 'name', '')!r} task "
            f"({getattr(task, 'kind', '?')}); use one of {list(fits)}"
        )
    unknown = set(knobs) - set(FAMILIES[family])
    if unknown:
        raise ValueError(
            f"unknown {family} setting(s) {sorted(unknown)}; choose from {list(FAMILIES[family])}"
        )
    if "channels" in knobs:
        knobs["channels"] = tuple(int(c) for c in knobs["channels"])
    config = replace(_sized_config(task, family), **knobs)  # __post_init__ validates
    model_cls = MODELS[family][1]

    def factory(seed: int) -> nn.Module:
        return model_cls(replace(config, seed=int(seed)))

    return factory
