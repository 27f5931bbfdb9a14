"""Safe checkpoints: model weights + config + optimizer and training state in one safetensors file.

Tensors live in the safetensors body (``model.*``, ``optimizer.state.<param>.<name>``);
everything else is JSON in the file's metadata (``explorer`` key). Loading never executes code.
Writes go to a temporary file in the same folder, then ``os.replace`` it over the target, so a
crash or error leaves an existing checkpoint intact. Legacy ``.pt`` files load only through
:func:`load_torch_weights` (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from explorer.device import DeviceLike, resolve_device
from explorer.models.registry import build_model, config_from_dict, config_to_dict, model_kind

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "load_torch_weights",
    "save_checkpoint",
]

FORMAT, VERSION = "explorer.checkpoint", 1
_MODEL, _OPTIM = "model.", "optimizer.state."


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated, or does not match the model."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns: the loaded model, its config dict (``None`` for
    models outside the registry), the saved training ``state`` and the file's metadata."""

    model: nn.Module
    config: dict[str, Any] | None
    state: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, torch.Tensor)) and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(
        f"checkpoint state must be JSON-serialisable (numbers, strings, lists, dicts); got "
        f"{type(value).__name__}. Put tensors in the model or optimizer instead."
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=True)


def _split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM}{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    meta = {"class": type(opt).__name__, "param_groups": sd["param_groups"], "scalars": scalars}
    return tensors, meta


def _independent(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors with no shared storage (safetensors refuses tied weights):
    a tensor whose storage was already seen is copied."""
    seen: set[int] = set()
    out = {}
    for key, value in tensors.items():
        t = value.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        out[key] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return out


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
    config: Any = "auto",
) -> Path:
    """Write ``model`` (+ optimizer, + JSON ``state`` such as step and metrics) to ``path``.

    ``config="auto"`` stores the config of a built-in model so :func:`load_checkpoint` can
    rebuild it; pass a dict for your own models or ``None`` to store none. Atomic: an existing
    file at ``path`` is replaced only once the new one is completely written.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path.name!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist; create it first")
    if config == "auto":
        try:
            kind = model_kind(model)
        except TypeError:
            config = None
        else:
            config = config_to_dict(model.config, kind)
    elif config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be 'auto', a dict or None, got {type(config).__name__}")
    tensors = _independent({_MODEL + k: v for k, v in model.state_dict().items()})
    optim_meta = None
    if optimizer is not None:
        opt_tensors, optim_meta = _split_optimizer(optimizer)
        tensors.update(_independent(opt_tensors))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "model_class": type(model).__name__,
        "config": config,
        "optimizer": optim_meta,
        "state": state or {},
    }
    metadata = {"explorer": _dumps(header)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get("explorer")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint (corrupt or truncated: {err}). "
            "Restore it from a copy or re-save it."
        ) from err
    if raw is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not an explorer checkpoint (no 'explorer' "
            "metadata); load its tensors with safetensors.torch.load_file instead."
        )
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({err})") from err
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {header.get('format')!r} version "
            f"{header.get('version')!r}; this explorer reads {FORMAT!r} version {VERSION}"
        )
    return header, tensors


def _check_match(path: Path, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = [
        f"{k}: file {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(weights))
        if weights[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from file: {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in model: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes[:5]))
        raise CheckpointError(
            f"{path} does not match {type(model).__name__}: " + " | ".join(parts) + ". Build the "
            "model with the checkpoint's config (load_checkpoint(path) without a model does this)."
        )


def _optimizer_state(
    header: dict[str, Any], tensors: dict[str, torch.Tensor], template: list[dict[str, Any]]
) -> dict[str, Any]:
    """Rebuild an optimizer state_dict; JSON lists become tuples where the live optimizer's
    param_groups hold tuples (e.g. Adam's betas)."""
    meta = header["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(_OPTIM):
            idx, name = key[len(_OPTIM) :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    groups = []
    for saved, live in zip(meta["param_groups"], template):
        groups.append(
            {k: tuple(v) if isinstance(live.get(k), tuple) else v for k, v in saved.items()}
        )
    return {"state": state, "param_groups": groups + meta["param_groups"][len(groups) :]}


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    device: DeviceLike = "cpu",
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Without ``model``, a built-in model is rebuilt from the stored config. Weights must match
    the model exactly (names and shapes), else :class:`CheckpointError` lists the differences.
    With ``optimizer`` (built on the model's parameters), its state is restored too.
    """
    path = Path(path)
    header, tensors = _read(path)
    config = header.get("config")
    if model is None:
        if config is None:
            raise CheckpointError(
                f"{path} stores no model config ({header.get('model_class')}); pass the model "
                "to load into: load_checkpoint(path, model)"
            )
        try:
            model = build_model(config_from_dict(config), kind=config["kind"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(
                f"{path}: cannot rebuild the model from its config: {err}"
            ) from err
    weights = {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    _check_match(path, model, weights)
    model.load_state_dict(weights, strict=True)
    model.to(resolve_device(device))
    if optimizer is not None:
        if header.get("optimizer") is None:
            raise CheckpointError(f"{path} holds no optimizer state; load without optimizer=")
        saved = header["optimizer"]["class"]
        if saved != type(optimizer).__name__:
            raise CheckpointError(
                f"{path} holds {saved} state but a {type(optimizer).__name__} was passed"
            )
        try:
            optimizer.load_state_dict(
                _optimizer_state(header, tensors, optimizer.state_dict()["param_groups"])
            )
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"{path}: optimizer state does not fit: {err}") from err
    return Checkpoint(model=model, config=config, state=header.get("state", {}), metadata=header)


def load_torch_weights(path: str | os.PathLike[str]) -> Any:
    """Read a legacy ``torch.save`` file safely (``weights_only=True``: tensors and plain
    containers only, no code execution)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(
            f"{path} could not be read with torch.load(weights_only=True): {err}. Files that "
            "need arbitrary code to load are refused on purpose."
        ) from err
