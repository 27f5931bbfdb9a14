"""Attribution of one output to the input, through Captum: integrated gradients, gradient ×
input, saliency and occlusion, for token and pixel inputs.

    result = attribute(model, tokens, target=answer_id, method="integrated_gradients")
    result.values            # (B, T) one score per token
    result.completeness()    # |Σ attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|

Token inputs are attributed at the output of the token-embedding layer (explorer's
``Transformer.embed``; a Hugging Face model's input embeddings), as Captum recommends for
transformers: the model runs with that output replaced by the tensor Captum differentiates. Pixel
(float) inputs are attributed directly. ``target``: a callable ``output -> (B,)``, or a class /
token id whose logit is read (at ``position`` for sequence outputs (B, T, V)).

Per-token scores sum the attribution over the embedding dimension (integrated gradients,
gradient × input), take the mean over it for occlusion (every dimension of an occluded token
carries the same output change) and the L2 norm of the gradient for saliency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.errors import optional_import
from explorer.interventions.metrics import logits_of
from explorer.interventions.run import batch_size, prepare_inputs, repeat_batch, token_strings
from explorer.models.hooks import _call
from explorer.validation import check_positive_int

__all__ = ["ATTRIBUTIONS", "Attribution", "attribute"]

ATTRIBUTIONS = ("integrated_gradients", "gradient_x_input", "saliency", "occlusion")
Target = int | Sequence[int] | torch.Tensor | Callable[[Any], torch.Tensor]


@dataclass
class Attribution:
    """What :func:`attribute` found, as numpy arrays.

    ``values``: (B, T) per token, or (B, H, W) per pixel (summed over channels); ``raw``: the
    attribution of every element of the attributed tensor ((B, T, d) embeddings or the input);
    ``output``: F(x) (B,); ``baseline_output``: F(baseline) (B,); ``delta``: the convergence
    delta Σ attributions − (F(x) − F(baseline)) (integrated gradients only).
    """

    method: str
    values: np.ndarray
    raw: np.ndarray
    output: np.ndarray
    baseline_output: np.ndarray
    delta: np.ndarray | None = None
    tokens: list[list[str]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def completeness(self) -> np.ndarray:
        """Relative completeness error per row, |δ| / |F(x) − F(baseline)| (B,); NaN for
        methods without the completeness axiom (all but integrated gradients)."""
        if self.delta is None:
            return np.full(len(self.output), np.nan)
        span = np.abs(self.output - self.baseline_output)
        return np.abs(self.delta) / np.maximum(span, 1e-12)

    def is_complete(self, tol: float = 0.05) -> bool:
        """True when every row's relative completeness error is below ``tol``."""
        err = self.completeness()
        return bool(np.all(err < tol))

    def frame(self) -> pd.DataFrame:
        """Tidy scores: ``row, position, token, value`` (tokens) or ``row, y, x, value``."""
        v = self.values
        if v.ndim == 2:
            rows = [
                {"row": b, "position": p, "token": self.tokens[b][p] if self.tokens else str(p),
                 "value": float(v[b, p])}
                for b in range(v.shape[0]) for p in range(v.shape[1])
            ]  # fmt: skip
        else:
            b, y, x = np.indices(v.shape)
            rows = [
                {"row": int(i), "y": int(j), "x": int(k), "value": float(s)}
                for i, j, k, s in zip(b.ravel(), y.ravel(), x.ravel(), v.ravel())
            ]
        frame = pd.DataFrame(rows)
        frame["method"] = self.method
        return frame


def _target_fn(target: Target, position: int) -> Callable[[Any], torch.Tensor]:
    if callable(target):
        return target
    ids = torch.as_tensor(target).reshape(-1)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool or not ids.numel():
        raise TypeError(f"target must be class / token id(s) or a callable, got {target!r}")

    def read(output: Any) -> torch.Tensor:
        logits = logits_of(output)
        if logits.ndim == 3:
            logits = logits[:, position]
        if logits.ndim != 2:
            raise ValueError(f"expected logits (B, V) or (B, T, V), got {tuple(logits.shape)}")
        if int(ids.min()) < 0 or int(ids.max()) >= logits.shape[1]:
            raise ValueError(
                f"target ids must lie in [0, {logits.shape[1]}) (the model's outputs), got "
                f"{ids.tolist()[:5]}"
            )
        n = logits.shape[0]
        col = ids.expand(n) if ids.numel() == 1 else ids.repeat(n // ids.numel())
        return logits.gather(1, col.to(logits.device)[:, None])[:, 0]

    return read


class _FromEmbeddings:
    """``read(model(batch))`` with the token-embedding output replaced by the tensor Captum
    differentiates, (k·B, T, d); the batch is repeated k times to match (Captum stacks its
    integration steps and perturbations variant-major)."""

    def __init__(self, model: nn.Module, batch: Any, read: Callable[[Any], torch.Tensor]) -> None:
        self.model, self.batch, self.read = model, batch, read
        self.rows = batch_size(batch)
        self.current: torch.Tensor | None = None

    def substitute(self, _module: nn.Module, _args: Any, _output: Any) -> torch.Tensor | None:
        return self.current

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        self.current = emb
        return self.read(_call(self.model, repeat_batch(self.batch, emb.shape[0] // self.rows)))


def _embedding(model: nn.Module, layer: str | None) -> nn.Module:
    if layer is not None:
        return model.get_submodule(layer)
    inner: Any = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "get_input_embeddings"):
        return inner.get_input_embeddings()  # Hugging Face
    embed = getattr(model, "embed", None)
    if isinstance(embed, nn.Embedding):
        return embed  # explorer's Transformer
    raise ValueError(
        f"cannot tell which module of {type(model).__name__} embeds the tokens; pass layer= its "
        "name (an nn.Embedding)"
    )


def _token_baseline(
    model: nn.Module, batch: Any, embedding: nn.Module, baseline: Any, emb: torch.Tensor
) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        if baseline.shape not in (emb.shape, emb.shape[1:]):
            raise ValueError(
                f"baseline has shape {tuple(baseline.shape)}; expected {tuple(emb.shape)}"
            )
        return baseline.to(emb).expand_as(emb)
    if baseline == "zeros":
        return torch.zeros_like(emb)
    ids = batch["input_ids"] if isinstance(batch, dict) else batch
    tokenizer: Any = getattr(model, "tokenizer", None)
    if baseline == "pad":
        pad = getattr(tokenizer, "pad_token_id", None)
        if tokenizer is None or pad is None:
            raise ValueError(f"{type(model).__name__} has no pad token; use baseline='zeros'")
        special = torch.tensor(tokenizer.all_special_ids, device=ids.device)
        base_ids = torch.where(torch.isin(ids, special), ids, torch.full_like(ids, pad))
    elif isinstance(baseline, int):
        base_ids = torch.full_like(ids, baseline)
    else:
        raise ValueError(
            f"baseline must be 'zeros', 'pad', a token id or a tensor, got {baseline!r}"
        )
    with torch.no_grad():
        return embedding(base_ids)


def attribute(
    model: nn.Module,
    inputs: Any,
    *,
    target: Target,
    method: str = "integrated_gradients",
    position: int = -1,
    baseline: Any = None,
    n_steps: int = 64,
    window: int | tuple[int, ...] = 4,
    layer: str | None = None,
    vocab: Sequence[str] | None = None,
) -> Attribution:
    """Attribute ``target`` of ``model(inputs)`` to the input with Captum's ``method``.

    ``baseline``: the reference input — for tokens ``"zeros"`` (embedding space; default for
    explorer's models), ``"pad"`` (pad-token embeddings, special tokens kept; default for
    Hugging Face models), a token id or a tensor; for pixels a number or a tensor (default 0).
    ``n_steps``: integration steps of integrated gradients. ``window``: occlusion patch edge in
    pixels (tokens are occluded one at a time). ``layer``: name of the token-embedding module
    when it cannot be found. ``vocab`` names the tokens of explorer's models.
    """
    if method not in ATTRIBUTIONS:
        raise ValueError(f"method must be one of {ATTRIBUTIONS}, got {method!r}")
    captum = optional_import("captum.attr", "attribution", package="captum")
    batch = prepare_inputs(model, inputs)
    n_steps = check_positive_int(n_steps, "n_steps")
    read = _target_fn(target, position)
    main = batch["input_ids"] if isinstance(batch, dict) else batch
    tokens = not torch.is_floating_point(main)
    embedding = _embedding(model, layer) if tokens else None
    forward: Callable[[torch.Tensor], torch.Tensor]
    if embedding is not None:
        with torch.no_grad():
            x = embedding(main).detach()
        if baseline is None:
            baseline = "pad" if hasattr(model, "tokenizer") else "zeros"
        base = _token_baseline(model, batch, embedding, baseline, x)
        forward = _FromEmbeddings(model, batch, read)
    else:
        x = main.detach()
        base = torch.as_tensor(0.0 if baseline is None else baseline).to(x).expand_as(x)
        forward = lambda pixels: read(_call(model, pixels))  # noqa: E731
    handle = None
    try:
        if isinstance(forward, _FromEmbeddings):
            handle = embedding.register_forward_hook(forward.substitute)  # type: ignore[union-attr]
        with torch.no_grad():
            out, out_base = forward(x), forward(base)
        if method == "integrated_gradients":
            attr = captum.IntegratedGradients(forward).attribute(x, baselines=base, n_steps=n_steps)
        elif method == "gradient_x_input":
            attr = captum.InputXGradient(forward).attribute(x.clone().requires_grad_())
        elif method == "saliency":
            attr = captum.Saliency(forward).attribute(x.clone().requires_grad_(), abs=True)
        else:
            shape = (1, x.shape[-1]) if tokens else _window(x, window)
            attr = captum.Occlusion(forward).attribute(
                x, sliding_window_shapes=shape, strides=shape, baselines=base
            )
    finally:
        if handle is not None:
            handle.remove()
    raw = attr.detach()
    delta = None
    if method == "integrated_gradients":  # Captum's convergence delta, in the input's precision
        delta = (raw.flatten(1).sum(1) - (out - out_base)).cpu().numpy()
    if tokens:
        reduce = {"saliency": lambda a: a.norm(dim=-1), "occlusion": lambda a: a.mean(-1)}
        values = reduce.get(method, lambda a: a.sum(-1))(raw)
    else:
        values = raw.sum(1) if raw.ndim == 4 else raw
    names = [token_strings(model, row, vocab) for row in main.tolist()] if tokens else None
    return Attribution(
        method, values.cpu().numpy(), raw.cpu().numpy(), out.cpu().numpy(),
        out_base.cpu().numpy(), delta, names, {"n_steps": n_steps, "position": position},
    )  # fmt: skip


def _window(x: torch.Tensor, window: int | tuple[int, ...]) -> tuple[int, ...]:
    """Occlusion patch over (C, H, W) (all channels at once) or (H, W)."""
    edge = (window, window) if isinstance(window, int) else tuple(window)
    return (x.shape[1], *edge) if x.ndim == 4 else edge
