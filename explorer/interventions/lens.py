"""The logit lens: read the residual stream after every block through the final norm and the
unembedding, and see which tokens each layer already predicts (nostalgebraist, 2020).

    frame = logit_lens(model, tokens, target=answer, vocab=task.meta["vocab"])
    tuned = TunedLens().fit(model, text_batch)             # learned affine translators
    frame = logit_lens(model, tokens, lens=tuned)

``layer`` counts the blocks applied: 0 is the embedding, ``n_layers`` the model's own output
(equal to the model's logits). A :class:`TunedLens` (Belrose et al., 2023) learns one affine map
per layer, h ↦ h + A h + b, trained so the lens matches the final distribution (KL), starting
from the identity (= the logit lens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.interventions.run import prepare_inputs, run_with_hooks, token_strings
from explorer.interventions.sites import site_names
from explorer.validation import check_positive_int

__all__ = ["TunedLens", "lens_divergence", "logit_lens", "residual_stream", "unembedding"]


def unembedding(model: nn.Module) -> tuple[nn.Module | None, nn.Module]:
    """(final norm or None, unembedding) of explorer's Transformer or a causal LM."""
    head = getattr(model, "lm_head", None)
    if head is not None:  # PretrainedTransformer with a language-model head
        return getattr(model, "final_norm", None), head
    unembed = getattr(model, "unembed", None)
    if isinstance(unembed, nn.Module):
        return getattr(model, "ln_final", None), unembed
    raise ValueError(
        f"{type(model).__name__} has no unembedding to read the residual stream through. The "
        "logit lens needs explorer's Transformer or a causal LM loaded with its head "
        "(load_pretrained(path, head='causal_lm'))."
    )


def _stream_sites(model: nn.Module) -> list[str]:
    names = set(site_names(model))
    sites = ["blocks.0.hook_resid_pre"]
    layer = 0
    while f"blocks.{layer}.hook_resid_post" in names:
        sites.append(f"blocks.{layer}.hook_resid_post")
        layer += 1
    if layer == 0 or sites[0] not in names:
        raise ValueError(
            f"{type(model).__name__} has no residual-stream sites blocks.{{i}}.hook_resid_post"
        )
    return sites


def residual_stream(model: nn.Module, inputs: Any) -> tuple[torch.Tensor, Any]:
    """The stream before block 0 and after every block, (L + 1, B, T, d), and the output."""
    sites = _stream_sites(model)
    run = run_with_hooks(model, inputs, cache=sites)
    return torch.stack([run[s] for s in sites]), run.output


def _read(model: nn.Module, stream: torch.Tensor) -> torch.Tensor:
    norm, head = unembedding(model)
    x = norm(stream) if norm is not None else stream
    return head(x)


def _kl_per_layer(model: nn.Module, stream: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """Mean KL(final ‖ read-out) per layer of ``stream`` (L, B, T, d); ``final`` log-probs."""
    logp = torch.log_softmax(_read(model, stream), -1)
    return (final.exp() * (final - logp)).sum(-1).flatten(1).mean(1)


def lens_divergence(model: nn.Module, inputs: Any, *, lens: TunedLens | None = None) -> np.ndarray:
    """How far each layer's read-out is from the model's own prediction on ``inputs``: the mean
    KL divergence (nats) of the logit lens (or ``lens``) to the output distribution, for the
    embedding and every block but the last, (n_layers,)."""
    stream, _ = residual_stream(model, inputs)
    with torch.no_grad():
        final = torch.log_softmax(_read(model, stream[-1]), -1)
        if lens is not None:
            stream = lens.translate(stream)
        return _kl_per_layer(model, stream[:-1], final).numpy()


class TunedLens:
    """Per-layer affine translators h ↦ h + A h + b fitted so that the lens at every layer
    matches the model's final next-token distribution (KL divergence), full batch, Adam.

    Fitted attributes: ``translators_`` (L, d, d) and ``biases_`` (L, d) for layers 0..L−1
    (the last layer is the model's output and stays the identity), ``loss_`` (mean KL per
    layer on the fitting inputs, (L,)), ``logit_lens_loss_`` (the same for the plain logit
    lens). :func:`lens_divergence` scores it on other inputs.
    """

    def __init__(self, *, steps: int = 200, lr: float = 1e-2, seed: int = 0) -> None:
        self.steps, self.lr, self.seed = steps, lr, seed

    def fit(self, model: nn.Module, inputs: Any) -> TunedLens:
        check_positive_int(self.steps, "steps")
        stream, _ = residual_stream(model, inputs)
        with torch.no_grad():
            final = torch.log_softmax(_read(model, stream[-1]), -1)
        h = stream[:-1].detach()  # (L, B, T, d)
        n_layers, d = h.shape[0], h.shape[-1]
        g = torch.Generator().manual_seed(self.seed)
        a = (torch.randn(n_layers, d, d, generator=g) * 1e-4).to(h).requires_grad_()
        b = torch.zeros(n_layers, 1, 1, d, dtype=h.dtype, requires_grad=True)
        opt = torch.optim.Adam([a, b], lr=self.lr)
        frozen = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(self.steps):
                opt.zero_grad()
                _kl_per_layer(
                    model, h + torch.einsum("lbtd,led->lbte", h, a) + b, final
                ).sum().backward()
                opt.step()
        finally:
            for p, req in zip(model.parameters(), frozen):
                p.requires_grad_(req)
        self.translators_, self.biases_ = a.detach(), b.detach().reshape(n_layers, d)
        with torch.no_grad():
            self.logit_lens_loss_ = _kl_per_layer(model, h, final).numpy()
            self.loss_ = _kl_per_layer(model, self.translate(stream)[:-1], final).numpy()
        return self

    def translate(self, stream: torch.Tensor) -> torch.Tensor:
        """Apply the fitted translators to a stream (L + 1, B, T, d); the last layer stays."""
        if not hasattr(self, "translators_"):
            raise ValueError("this TunedLens is not fitted: call .fit(model, inputs) first")
        n = self.translators_.shape[0]
        if stream.shape[0] != n + 1 or stream.shape[-1] != self.translators_.shape[-1]:
            raise ValueError(
                f"the lens was fitted for {n} layers of width {self.translators_.shape[-1]}, "
                f"got a stream of shape {tuple(stream.shape)}"
            )
        a, b = self.translators_.to(stream), self.biases_.to(stream)
        head = stream[:-1] + torch.einsum("lbtd,led->lbte", stream[:-1], a) + b[:, None, None]
        return torch.cat([head, stream[-1:]])


def logit_lens(
    model: nn.Module,
    inputs: Any,
    *,
    target: int | Sequence[int] | None = None,
    top_k: int = 5,
    row: int = 0,
    lens: TunedLens | None = None,
    vocab: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Top tokens at every layer and position of sequence ``row`` of ``inputs``.

    ``target``: a token id (or one per position, (T,)) whose rank (1 = top) and probability are
    reported at every layer. Returns a tidy frame ``layer, position, input, rank, token,
    token_id, probability, is_target``: the ``top_k`` tokens per (layer, position), plus the
    target's row where it is not among them. ``vocab`` names the tokens of explorer's models.
    """
    check_positive_int(top_k, "top_k")
    batch = prepare_inputs(model, inputs)
    stream, _ = residual_stream(model, batch)
    if not 0 <= row < stream.shape[1]:
        raise IndexError(f"row {row} is out of range for a batch of {stream.shape[1]}")
    stream = stream[:, row : row + 1]
    if lens is not None:
        stream = lens.translate(stream)
    with torch.no_grad():
        probs = torch.softmax(_read(model, stream).float(), -1)[:, 0]  # (L + 1, T, V)
    n_layers, t, v = probs.shape
    ids = batch["input_ids"] if isinstance(batch, dict) else batch
    in_tokens = token_strings(model, ids[row].tolist(), vocab)
    names = token_strings(model, range(v), vocab) if v <= 4096 else None
    top = probs.topk(min(top_k, v), dim=-1)
    goals: list[int | None] = [None] * t
    if target is not None:
        tt = torch.as_tensor(target).reshape(-1)
        tt = tt.expand(t) if tt.numel() == 1 else tt
        if tt.shape[0] != t or int(tt.min()) < 0 or int(tt.max()) >= v:
            raise ValueError(f"target must be one token id in [0, {v}) or one per position ({t})")
        goals = [int(i) for i in tt]
    rows: list[dict[str, Any]] = []
    for layer in range(n_layers):
        for pos in range(t):
            p, goal = probs[layer, pos], goals[pos]
            shown = top.indices[layer, pos].tolist()
            extra = [goal] if goal is not None and goal not in shown else []
            for tok in shown + extra:
                rows.append({
                    "layer": layer, "position": pos, "input": in_tokens[pos],
                    "rank": int((p > p[tok]).sum()) + 1, "token": names[tok] if names else token_strings(model, [tok], vocab)[0], "token_id": tok,
                    "probability": float(p[tok]), "is_target": tok == goal,
                })  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.attrs.update(n_layers=n_layers - 1, lens="tuned" if lens is not None else "logit")
    return frame
