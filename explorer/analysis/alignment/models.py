"""Representations from models: layer activations on fixed inputs, as ``layer → (n, d)``.

This is how a model (or a checkpoint, or a seed: see :mod:`explorer.models.observe` and
:func:`explorer.train.seed_models`) becomes a mapping ``layer → (n, d)`` that the
alignment metrics compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.analysis.pooling import Pool, pool_features
from explorer.models import observe
from explorer.models.hooks import capture
from explorer.modes import eval_mode
from explorer.validation import check_model_inputs, check_positive_int

__all__ = ["model_representations", "text_representations"]


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

    ``layers``: hook names (default :func:`explorer.models.observe.default_layers`); token/conv outputs are reduced
    with ``pool``. ``short_names`` labels layers 'embed', 'L0', 'L1', … instead of hook names.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    x = check_model_inputs(inputs, model)
    names = list(layers) if layers is not None else observe.default_layers(model)
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            cache = capture(model, x[start : start + batch_size], names, dtype=torch.float32)
            for n in names:
                chunks[n].append(np.asarray(pool_features(cache[n].numpy(), pool, name=n)))
    out = {n: np.concatenate(c) for n, c in chunks.items()}
    if not short_names:
        return out
    return dict(zip(observe.short_names(names), out.values()))


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
