"""Point clouds from models: per-sample or per-token activations of every layer, with metadata.

The geometry lens looks at points, not pooled summaries: a transformer's hidden states give one
point per token (metadata: sequence, position, token), an MLP's layers one point per input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.analysis.pooling import Pool, pool_features
from explorer.device import as_numpy
from explorer.models.hooks import capture
from explorer.models.observe import default_layers, short_names
from explorer.modes import eval_mode
from explorer.validation import check_model_inputs, check_positive_int

__all__ = ["model_points", "token_states"]


def _as_points(a: np.ndarray, pool: Pool) -> np.ndarray:
    arr = as_numpy(pool_features(a, pool), dtype=np.float32)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


@torch.no_grad()
def model_points(
    model: nn.Module,
    inputs: Any,
    *,
    layers: Sequence[str] | None = None,
    labels: Any = None,
    pool: Pool = "mean",
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Activations of ``layers`` (default: one observable per layer) on ``inputs`` as points.

    Sequence (B, T, d) and map (B, C, H, W) outputs are reduced by ``pool`` (see
    :func:`explorer.analysis.pool_features`); ``pool="tokens"`` keeps one point per token.
    Returns (layer → (n_points, d) float32, metadata with ``sample`` and, with ``"tokens"`` on
    sequence outputs, ``position``; ``label`` repeats each sample's label over its tokens).
    """
    names = list(layers) if layers is not None else default_layers(model)
    with eval_mode(model):
        cache = capture(model, check_model_inputs(inputs, model), names, dtype=torch.float32)
    first = cache[names[0]]
    n_samples = first.shape[0]
    tokens = first.ndim == 3 and pool == "tokens"
    seq_len = first.shape[1] if tokens else 1
    points = {
        label: _as_points(cache[n].numpy(), pool) for label, n in zip(short_names(names), names)
    }
    meta = pd.DataFrame({"sample": np.repeat(np.arange(n_samples), seq_len)})
    if tokens:
        meta["position"] = np.tile(np.arange(seq_len), n_samples)
    if labels is not None:
        y = np.asarray(labels)
        if y.ndim == 1 and len(y) == n_samples:
            meta["label"] = np.repeat(y, seq_len)
        elif y.shape[:2] == (n_samples, seq_len):
            meta["label"] = y.reshape(-1)
        else:
            raise ValueError(
                f"labels of shape {y.shape} fit neither the {n_samples} samples nor their tokens"
            )
    return points, meta


@torch.no_grad()
def token_states(
    lm: Any, texts: Sequence[str], *, batch_size: int = 32
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Per-token hidden states of a pretrained transformer (e.g. ``load_minilm()``).

    Returns ({"embed", "L0", …} → (n_tokens, d) float32 over all texts' real tokens, metadata
    with ``text`` (index), ``position`` and ``token`` display strings).
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one string: wrap it in a list")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")
    chunks: dict[str, list[np.ndarray]] = {}
    rows: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        enc = lm.encode(batch)
        out = lm(enc)
        mask = enc["attention_mask"].bool().cpu().numpy()  # (B, T)
        ids = enc["input_ids"].cpu().numpy()
        for b in range(len(batch)):
            toks = lm.tokenizer.convert_ids_to_tokens(ids[b][mask[b]].tolist())
            rows += [{"text": start + b, "position": p, "token": t} for p, t in enumerate(toks)]
        for i, h in enumerate(out.hidden_states):
            name = "embed" if i == 0 else f"L{i - 1}"
            chunks.setdefault(name, []).append(h.float().cpu().numpy()[mask])
    return {k: np.concatenate(v) for k, v in chunks.items()}, pd.DataFrame(rows)
