"""Attention bench: AttentionLab vs BertViz head_view on MiniLM (time to view ready, bytes sent
to the page, peak Python memory), attention flow vs networkx max-flow (Abnar & Zuidema's
implementation), head statistics numba vs numpy.

Run from bench/: ``python bench_attention.py`` (needs the ``hf`` and ``bench`` extras).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import networkx as nx
import numpy as np
import torch
from _harness import Bench, peak_python_memory

from explorer.analysis import attention as A
from explorer.models import capture, load_minilm
from widgets.attention import AttentionLab

TEXT = (
    "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat, and "
    "far away a river runs through the valley past old mills and quiet farms. "
) * 40


def minilm_attention(model, n_tokens: int):
    ids = model.tokenizer(TEXT, return_tensors="pt", truncation=True, max_length=n_tokens)
    ids = ids["input_ids"]
    assert ids.shape[1] == n_tokens, ids.shape
    cache = capture(model, ids, names=["blocks.*.attn.hook_pattern"])
    layers = [cache[f"blocks.{i}.attn.hook_pattern"] for i in range(model.n_layers)]
    tokens = model.tokenizer.convert_ids_to_tokens(ids[0].tolist())
    return layers, tokens


def bertviz_html(layers, tokens) -> str:
    from bertviz import head_view

    return head_view(tuple(layers), tokens, html_action="return").data


def numpy_head_stats(p: np.ndarray) -> np.ndarray:
    """Vectorised numpy float64 twin of the kernel (entropy, distance, max, diagonal)."""
    p = p.astype(np.float64)
    t = p.shape[-1]
    d = np.abs(np.arange(t)[:, None] - np.arange(t)[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(-1).mean(-1)
    return np.stack(
        [ent, (p * d).sum(-1).mean(-1), p.max(-1).mean(-1), np.einsum("lhii->lhi", p).mean(-1)], -1
    )


def networkx_flow(mix: np.ndarray, query: int) -> np.ndarray:
    n_layers, t, _ = mix.shape
    g = nx.DiGraph()
    for k in range(n_layers):
        for i in range(t):
            for j in range(t):
                g.add_edge((k, j), (k + 1, i), capacity=float(mix[k, i, j]))
    return np.array([nx.maximum_flow_value(g, (0, s), (n_layers, query)) for s in range(t)])


def main() -> None:
    torch.set_num_threads(2)
    b = Bench("attention")
    model = load_minilm()
    for n in (32, 128, 512):
        layers, tokens = minilm_attention(model, n)
        case = f"MiniLM view ready, {n} tokens"
        html: list[str] = []
        b.time(
            case,
            ours=lambda la=layers, to=tokens: AttentionLab(la, to),
            peer=lambda la=layers, to=tokens, h=html: h.append(bertviz_html(la, to)),
            peer_name="bertviz",
            repeat=5,
            peer_repeat=1 if n == 512 else 3,
            warmup=1 if n < 512 else 0,
        )
        lab = AttentionLab(layers, tokens)
        ours_bytes, peer_bytes = lab.bytes_sent, len(html[-1].encode())
        b.note(case, "bytes ours", ours_bytes)
        b.note(case, "bytes bertviz", peer_bytes)
        b.note(case, "bytes ratio", round(peer_bytes / ours_bytes, 1))
        html.clear()
        mb = peak_python_memory(lambda la=layers, to=tokens: AttentionLab(la, to)) / 2**20
        b.note(case, "peak MB ours", round(mb, 1))
        if n < 512:  # one traced BertViz call at 512 tokens takes minutes
            mb = peak_python_memory(lambda la=layers, to=tokens: bertviz_html(la, to)) / 2**20
            b.note(case, "peak MB bertviz", round(mb, 1))

    # attention flow: 12 layers (MiniLM's 6 twice) × 128 tokens, one query and all queries
    layers, tokens = minilm_attention(model, 128)
    a12 = torch.cat([torch.stack(layers)[:, 0]] * 2).numpy()
    b.time(
        "flow 12 layers x 128 tokens, 1 query",
        ours=lambda: A.attention_flow(a12, queries=[0]),
        repeat=3,
    )
    b.time(
        "flow 12 layers x 128 tokens, all 128 queries",
        ours=lambda: A.attention_flow(a12),
        repeat=1,
        warmup=0,
    )
    b.time("rollout 12 layers x 128 tokens", ours=lambda: A.attention_rollout(a12), repeat=5)
    small = a12[:6, :, :32, :32] / a12[:6, :, :32, :32].sum(-1, keepdims=True)
    mix = A.mixing_matrices(small)
    b.time(
        "flow 6 layers x 32 tokens, 1 query",
        ours=lambda: A.attention_flow(small, queries=[0]),
        peer=lambda: networkx_flow(mix, 0),
        peer_name="networkx",
        repeat=3,
        peer_repeat=1,
    )
    b.note(
        "flow 6 layers x 32 tokens, 1 query",
        "max abs diff vs networkx",
        float(np.abs(A.attention_flow(small, queries=[0])[0] - networkx_flow(mix, 0)).max()),
    )

    layers, tokens = minilm_attention(model, 512)
    p = torch.stack(layers)[:, 0].numpy()
    b.time(
        "head statistics 6x12 heads x 512 tokens",
        ours=lambda: A.head_statistics(p, tokens),
        peer=lambda: numpy_head_stats(p),
        peer_name="numpy (4 of 7 metrics)",
        repeat=3,
    )
    b.report()


if __name__ == "__main__":
    main()
