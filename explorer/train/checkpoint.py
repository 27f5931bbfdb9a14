"""Safe checkpoints: model weights + config + optimizer and training state in one safetensors file.

Tensors live in the safetensors body (``model.*``, ``optimizer.state.<param>.<name>``);
everything else is JSON in the file's metadata (``explorer`` key). Loading never executes code.

Writes go to a temporary file in the same folder (named after the writing process), then
``os.replace`` it over the target, so a crash or error leaves an existing checkpoint intact; the
next save into that folder removes temporary files whose writer process is gone (a save killed
with ``kill -9``). Loading is all-or-nothing: the whole file is checked first — header, the
config (sizes against a bound from the file's own tensors, then the model it describes built on
the ``meta`` device, which allocates nothing), weight names, shapes and dtypes, optimizer class,
parameter groups and the type of every optimizer value — and only then are the model and the
optimizer touched; if applying still fails, both are put back as they were. Every failure is a
:class:`CheckpointError` saying what is wrong. Legacy ``.pt`` files load only through
:func:`load_torch_weights` (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
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
# .<name>.<pid>.<random>.tmp (older writers: no pid)
_TEMP = re.compile(r"^\..+\.(?:safetensors|parquet|json)\.(?:(\d+)\.)?\w+\.tmp$")
_SIZE_FLOOR = 1 << 16  # config sizes up to this pass the bound whatever the file holds


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
    return write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_atomically(
    path: str | os.PathLike[str], write: Callable[[str], object], *, fsync: bool = True
) -> Path:
    """Write ``path`` all at once: ``write(tmp)`` fills a temporary file next to it (named
    ``.<name>.<pid>.<random>.tmp`` after this process), flushed to disk unless ``fsync=False``,
    then renamed over ``path`` — an error or a crash mid-write leaves any previous file intact.
    Temporary files in that folder whose writer process is gone (a ``kill -9``) are removed
    first. Every file explorer writes (checkpoints, run directories) goes through here."""
    path = Path(path)
    _remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared run from other readers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_temps(folder: Path, *, legacy_age_s: float = 3600.0) -> None:
    """Delete temporary files of interrupted saves in ``folder``: those whose writer process is
    no longer running (and, for names without a pid, older than ``legacy_age_s``)."""
    now = time.time()
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match is None or not entry.is_file():
            continue
        pid = match.group(1)
        try:
            stale = not _alive(int(pid)) if pid else now - entry.stat().st_mtime > legacy_age_s
            if stale:
                entry.unlink()
        except OSError:  # removed meanwhile by another save, or not ours to remove
            continue


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get("explorer")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
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
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{path}: checkpoint metadata must be a JSON object, got {raw[:40]!r}"
        )
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {header.get('format')!r} version "
            f"{header.get('version')!r}; this explorer reads {FORMAT!r} version {VERSION}"
        )
    expected: dict[str, tuple[type, ...]] = {
        "config": (dict, type(None)),
        "optimizer": (dict, type(None)),
        "state": (dict,),
    }
    for key, kinds in expected.items():
        if not isinstance(header.get(key, {}), kinds):
            raise CheckpointError(
                f"{path}: header field {key!r} must be a JSON object"
                f"{' or null' if key != 'state' else ''}, got {type(header[key]).__name__}"
            )
    strays = sorted(k for k in tensors if not k.startswith((_MODEL, _OPTIM)))
    if strays:
        raise CheckpointError(
            f"{path}: unexpected tensors {strays[:5]} (not model.* or optimizer.*)"
        )
    return header, tensors


def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    if t.is_complex():
        return "complex"
    return "float" if t.is_floating_point() else "int"


def _check_match(path: Path, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Names, shapes and dtype kinds of the file's weights against ``model`` (meta is fine)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    common = sorted(set(expected) & set(weights))
    shapes = [
        f"{k}: file {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in common
        if weights[k].shape != expected[k].shape
    ]
    kinds = [
        f"{k}: file {weights[k].dtype} vs model {expected[k].dtype}"
        for k in common
        if _kind(weights[k]) != _kind(expected[k])
    ]
    if missing or unexpected or shapes or kinds:
        parts = []
        if missing:
            parts.append(f"missing from file: {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in model: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes[:5]))
        if kinds:
            parts.append("dtype mismatch: " + "; ".join(kinds[:5]))
        raise CheckpointError(
            f"{path} does not match {type(model).__name__}: " + " | ".join(parts) + ". Build the "
            "model with the checkpoint's config (load_checkpoint(path) without a model does this)."
        )


def _rebuild(path: Path, config: dict[str, Any], weights: dict[str, torch.Tensor]) -> nn.Module:
    """The registry model a stored config describes, checked before anything is allocated:
    every integer in the config against a bound from the file's own tensors, then the model
    built on the meta device against the file's weights."""
    stored = sum(t.numel() for t in weights.values())
    bound = max(stored, _SIZE_FLOOR)
    for key, value in config.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and key != "seed" and abs(v) > bound:
                raise CheckpointError(
                    f"{path}: config {key}={value!r} is larger than the file could hold (its "
                    f"model tensors have {stored} numbers in all); the config is corrupt"
                )
    try:
        kind = config["kind"]
        cfg = config_from_dict(config)
        with torch.device("meta"):
            shell = build_model(cfg, kind=kind)
    except Exception as err:  # a config from a file can fail anywhere in a constructor
        raise CheckpointError(
            f"{path}: cannot rebuild the model from its config: {type(err).__name__}: {err}"
        ) from err
    _check_match(path, shell, weights)
    return build_model(cfg, kind=kind)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _same_type(saved: Any, live: Any) -> bool:
    """Whether a saved param-group value can stand where the live optimizer has ``live``."""
    if isinstance(live, bool) or live is None:
        return saved is None or isinstance(saved, bool)
    if isinstance(live, (int, float)):
        return _is_number(saved)
    if isinstance(live, torch.Tensor):
        return _is_number(saved) or isinstance(saved, torch.Tensor)
    if isinstance(live, (tuple, list)):
        return (
            isinstance(saved, (tuple, list))
            and len(saved) == len(live)
            and all(_same_type(s, v) for s, v in zip(saved, live))
        )
    return isinstance(saved, type(live))


def _optimizer_state(
    path: Path,
    header: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
) -> dict[str, Any]:
    """The optimizer state_dict the file describes, checked value by value against the live
    optimizer (class, groups, parameters, every hyper-parameter's and state value's type)."""
    meta = header.get("optimizer")
    if meta is None:
        raise CheckpointError(f"{path} holds no optimizer state; load without optimizer=")
    if not (
        isinstance(meta.get("class"), str)
        and isinstance(meta.get("param_groups"), list)
        and isinstance(meta.get("scalars"), dict)
    ):
        raise CheckpointError(
            f"{path}: the optimizer section is malformed (class, param_groups, scalars)"
        )
    if meta["class"] != type(optimizer).__name__:
        raise CheckpointError(
            f"{path} holds {meta['class']} state but a {type(optimizer).__name__} was passed"
        )
    live = optimizer.state_dict()
    saved_groups, live_groups = meta["param_groups"], live["param_groups"]
    if len(saved_groups) != len(live_groups):
        raise CheckpointError(
            f"{path} holds {len(saved_groups)} parameter group(s) but the optimizer has "
            f"{len(live_groups)}"
        )
    params = [p for g in optimizer.param_groups for p in g["params"]]
    groups = []
    for i, (saved, group) in enumerate(zip(saved_groups, live_groups)):
        if not isinstance(saved, dict) or saved.get("params") != group["params"]:
            raise CheckpointError(
                f"{path}: parameter group {i} holds other parameters than the optimizer's "
                f"({len(group['params'])} parameters)"
            )
        bad = sorted(k for k in saved if k != "params" and k not in group)
        bad += sorted(
            k for k in saved if k in group and k != "params" and not _same_type(saved[k], group[k])
        )
        if bad:
            k = bad[0]
            raise CheckpointError(
                f"{path}: parameter group {i} has an invalid {k!r}: {saved[k]!r} "
                f"(the optimizer holds {group.get(k)!r})"
            )
        groups.append(
            {
                k: tuple(saved[k]) if isinstance(group[k], tuple) else saved.get(k, group[k])
                for k in group
            }
        )
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(_OPTIM):
            continue
        idx_text, _, name = key[len(_OPTIM) :].partition(".")
        idx = int(idx_text) if idx_text.isdigit() else -1
        if not 0 <= idx < len(params) or not name:
            raise CheckpointError(
                f"{path}: optimizer tensor {key!r} names no parameter of the optimizer"
            )
        if value.dim() and value.shape != params[idx].shape:
            raise CheckpointError(
                f"{path}: optimizer state {key!r} has shape {tuple(value.shape)}, its parameter "
                f"{tuple(params[idx].shape)}"
            )
        if not (value.is_floating_point() or _kind(value) == "int"):
            raise CheckpointError(f"{path}: optimizer state {key!r} has dtype {value.dtype}")
        state.setdefault(idx, {})[name] = value
    for idx_text, scalars in meta["scalars"].items():
        idx = int(idx_text) if str(idx_text).isdigit() else -1
        if not 0 <= idx < len(params) or not isinstance(scalars, dict):
            raise CheckpointError(f"{path}: optimizer scalars {idx_text!r} name no parameter")
        for name, value in scalars.items():
            if not (value is None or _is_number(value)):
                raise CheckpointError(
                    f"{path}: optimizer state {name!r} of parameter {idx} must be a finite number, "
                    f"got {value!r}"
                )
            state.setdefault(idx, {})[name] = value
    return {"state": state, "param_groups": groups}


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    device: DeviceLike = "cpu",
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`, all or nothing.

    Without ``model``, a built-in model is rebuilt from the stored config. Weights must match
    the model exactly (names, shapes, dtype kinds), else :class:`CheckpointError` lists the
    differences. With ``optimizer`` (built on the model's parameters), its state is restored
    too. The whole file is checked before ``model`` or ``optimizer`` change; on any error both
    are exactly as before.
    """
    path = Path(path)
    target = resolve_device(device)
    header, tensors = _read(path)
    config = header.get("config")
    weights = {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    if model is None and config is None:
        raise CheckpointError(
            f"{path} stores no model config ({header.get('model_class')}); pass the model "
            "to load into: load_checkpoint(path, model)"
        )
    if model is not None:
        _check_match(path, model, weights)
    opt_state = None if optimizer is None else _optimizer_state(path, header, tensors, optimizer)
    if model is None:
        assert config is not None
        model = _rebuild(path, config, weights)
        backup = None
    else:
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt_backup = None if optimizer is None else copy.deepcopy(optimizer.state_dict())
    try:
        model.load_state_dict(weights, strict=True)
        if optimizer is not None and opt_state is not None:
            optimizer.load_state_dict(opt_state)
    except Exception as err:
        if backup is not None:
            model.load_state_dict(backup)
        if optimizer is not None and opt_backup is not None:
            optimizer.load_state_dict(opt_backup)
        raise CheckpointError(f"{path}: could not apply the checkpoint: {err}") from err
    model.to(target)
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
