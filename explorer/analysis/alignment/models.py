"""Representations from models: layer activations on fixed inputs, at a snapshot, across seeds.

This is how a model (or a checkpoint, or a seed) becomes a mapping ``layer → (n, d)`` that the
alignment metrics compare.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.analysis.pooling import Pool, pool_features
from explorer.models.hooks import capture, hook_names
from explorer.validation import check_model_inputs, check_positive_int

__all__ = [
    "LAYER_PATTERNS",
    "default_layers",
    "model_at",
    "model_representations",
    "seed_models",
    "text_representations",
]

# One observable per layer, in model order: the residual stream for transformers (ViT too),
# each block's output for MLPs and CNNs.
LAYER_PATTERNS = (
    "hook_encoded",
    "layers.*.hook_post",
    "blocks.0.hook_resid_pre",
    "blocks.*.hook_resid_post",
    "blocks.*.hook_out",
    "hook_features",
)


def default_layers(model: nn.Module) -> list[str]:
    """The hook names of :data:`LAYER_PATTERNS` present in ``model``, in forward order."""
    names = hook_names(model)
    picked = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in LAYER_PATTERNS)]
    if not picked:
        raise ValueError(
            f"{type(model).__name__} has none of the default layer hook points {LAYER_PATTERNS}; "
            f"pass layers=[...] from hook_names(model): {names[:10]}"
        )
    if "blocks.0.hook_resid_pre" in picked:  # embedding first, then blocks in order
        picked.remove("blocks.0.hook_resid_pre")
        picked.insert(0, "blocks.0.hook_resid_pre")
    return picked


def _short(name: str) -> str:
    """Compact layer label: 'blocks.3.hook_resid_post' → 'L3', 'layers.1.hook_post' → 'L1'."""
    special = {
        "blocks.0.hook_resid_pre": "embed",
        "hook_encoded": "input",
        "hook_features": "features",
    }
    parts = name.split(".")
    if name not in special and len(parts) >= 3 and parts[1].isdigit():
        return f"L{parts[1]}"
    return special.get(name, name)


@torch.no_grad()
def model_representations(
    model: nn.Module,
    inputs: Any,
    layers: Sequence[str] | None = None,
    *,
    pool: Pool = "mean",
    short_names: bool = True,
    batch_size: int = 4096,
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``inputs`` (n, ...) in eval mode and return layer → (n, d) float32.

    ``layers``: hook names (default :func:`default_layers`); token/conv outputs are reduced
    with ``pool``. ``short_names`` labels layers 'embed', 'L0', 'L1', … instead of hook names.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    x = check_model_inputs(inputs, model)
    names = list(layers) if layers is not None else default_layers(model)
    was = model.training
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    try:
        for start in range(0, len(x), batch_size):
            cache = capture(model, x[start : start + batch_size], names, dtype=torch.float32)
            for n in names:
                chunks[n].append(np.asarray(pool_features(cache[n].numpy(), pool, name=n)))
    finally:
        model.train(was)
    out = {n: np.concatenate(c) for n, c in chunks.items()}
    if not short_names:
        return out
    labels = [_short(n) for n in names]
    if len(set(labels)) < len(labels):
        return out
    return dict(zip(labels, out.values()))


def model_at(model: nn.Module, params: Mapping[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` holding ``params`` (e.g. a training snapshot's parameters)."""
    clone = copy.deepcopy(model)
    missing = set(dict(clone.named_parameters())) - set(params)
    if missing:
        raise ValueError(
            f"params lack {len(missing)} of the model's parameters, e.g. {sorted(missing)[:3]}"
        )
    clone.load_state_dict(dict(params), strict=False)
    return clone


def seed_models(
    model: nn.Module, task: Any, config: Any, seeds: Sequence[int], steps: int
) -> dict[int, nn.Module]:
    """Train fresh copies of ``model``'s architecture under other seeds for ``steps`` steps.

    The architecture is rebuilt from ``model.config`` with ``seed`` replaced (explorer models
    carry a config dataclass); training uses :class:`explorer.train.MultiSeedTrainer` with the
    same task and :class:`TrainConfig` (batched with vmap where possible).
    """
    from explorer.train.seeds import MultiSeedTrainer

    steps = check_positive_int(steps, "steps")
    seeds = [check_positive_int(s, "every seed", minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: pass at least one integer seed")
    cfg = getattr(model, "config", None)
    if (
        cfg is None
        or not dataclasses.is_dataclass(cfg)
        or "seed" not in {f.name for f in dataclasses.fields(cfg)}
    ):
        raise TypeError(
            f"{type(model).__name__} has no config dataclass with a seed; build seeds yourself"
        )
    arch = type(model)

    def factory(seed: int) -> nn.Module:
        return arch(dataclasses.replace(cfg, seed=seed))  # type: ignore[type-var]

    trainer = MultiSeedTrainer(factory, task, config, seeds=list(seeds))
    for _ in trainer.run(steps):
        pass
    return dict(zip(trainer.seeds, trainer.models()))


@torch.no_grad()
def text_representations(
    lm: Any, texts: Sequence[str], *, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Sentence representations at every layer of a pretrained transformer.

    ``lm``: a :class:`explorer.models.hf.PretrainedTransformer` (e.g. ``load_minilm()``).
    Each hidden state (embeddings, then one per block) is averaged over the sentence's real
    tokens (padding masked out) → ``{"embed": (n, d), "L0": (n, d), …}`` float32.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one string: wrap it in a list")
    texts = list(texts)
    if len(texts) < 2 or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a list of at least two non-empty strings")
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(texts), batch_size):
        enc = lm.encode(texts[start : start + batch_size])
        out = lm(enc)
        mask = enc["attention_mask"][..., None].to(torch.float32)  # (B, T, 1)
        for i, h in enumerate(out.hidden_states):
            name = "embed" if i == 0 else f"L{i - 1}"
            mean = (h.float() * mask).sum(1) / mask.sum(1)
            chunks.setdefault(name, []).append(mean.cpu().numpy())
    return {k: np.concatenate(v) for k, v in chunks.items()}
