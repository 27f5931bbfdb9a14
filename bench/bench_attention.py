"""Attention bench, ours and the peer interleaved in one process: AttentionLab vs BertViz
head_view on MiniLM at 32, 128 and 512 tokens (time until the view is ready, each side warmed up
and timed several times; bytes sent to the page; peak Python memory), attention flow vs
networkx max-flow (Abnar & Zuidema's implementation), head statistics vs a vectorised numpy
twin of 4 of its 7 metrics.

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


def bench_views(b: Bench, model) -> None:  # type: ignore[no-untyped-def]
    for n in (32, 128, 512):
        layers, tokens = minilm_attention(model, n)
        case = "attention view ready (6 layers x 12 heads)"
        html: list[str] = []
        row = b.time(
            case,
            ours=lambda la=layers, to=tokens: AttentionLab(la, to),
            peer=lambda la=layers, to=tokens, h=html: h.append(bertviz_html(la, to)),
            peer_name="bertviz head_view (HTML)",
            repeat=5,
            peer_repeat=3 if n < 512 else 2,  # warmed up, then timed 3× (2× at 512 tokens)
        )
        lab = AttentionLab(layers, tokens)
        ours_bytes, peer_bytes = lab.bytes_sent, len(html[-1].encode())
        html.clear()
        b.note(f"{case}, {n} tokens", "bytes ours / bertviz", f"{ours_bytes} / {peer_bytes}")
        mb = peak_python_memory(lambda la=layers, to=tokens: AttentionLab(la, to)) / 2**20
        b.note(f"{case}, {n} tokens", "peak MB ours", round(mb, 1))
        if n < 512:  # one traced BertViz call at 512 tokens takes minutes
            mb = peak_python_memory(lambda la=layers, to=tokens: bertviz_html(la, to)) / 2**20
            b.note(f"{case}, {n} tokens", "peak MB bertviz", round(mb, 1))
        b.summary(
            row,
            size=f"MiniLM, {n} tokens",
            agreement=f"same attention tensors; page bytes {ours_bytes / 2**20:.2f} MiB vs "
            f"{peer_bytes / 2**20:.2f} MiB ({peer_bytes / ours_bytes:.0f}x)",
        )


def bench_flow(b: Bench, model) -> None:  # type: ignore[no-untyped-def]
    layers, _ = minilm_attention(model, 128)
    a12 = np.concatenate([np.stack([x[0].numpy() for x in layers])] * 2)  # 12 layers
    b.time(
        "flow 12 layers x 128 tokens, 1 query", lambda: A.attention_flow(a12, queries=[0]), repeat=3
    )
    b.time("rollout 12 layers x 128 tokens", lambda: A.attention_rollout(a12), repeat=5)
    small = a12[:6, :, :32, :32] / a12[:6, :, :32, :32].sum(-1, keepdims=True)
    mix = A.mixing_matrices(small)
    row = b.time(
        "attention flow (max-flow), 1 query",
        ours=lambda: A.attention_flow(small, queries=[0]),
        peer=lambda: networkx_flow(mix, 0),
        peer_name="networkx maximum_flow (Abnar & Zuidema)",
        repeat=3,
    )
    diff = float(np.abs(A.attention_flow(small, queries=[0])[0] - networkx_flow(mix, 0)).max())
    b.summary(row, size="6 layers x 32 tokens", agreement=f"max |Δ| {diff:.0e}")


def bench_head_statistics(b: Bench, model) -> None:  # type: ignore[no-untyped-def]
    layers, tokens = minilm_attention(model, 512)
    p = np.stack([x[0].numpy() for x in layers])
    row = b.time(
        "head statistics (7 metrics)",
        ours=lambda: A.head_statistics(p, tokens),
        peer=lambda: numpy_head_stats(p),
        peer_name="numpy twin (4 of the 7 metrics)",
        repeat=5,
    )
    frame = A.head_statistics(p, tokens)
    names = ["entropy", "distance", "max_weight", "diagonal"]
    ours = np.stack(
        [
            frame[frame.metric == m].sort_values(["layer", "head"])["value"].to_numpy()
            for m in names
        ],
        axis=-1,
    )
    diff = float(np.abs(ours - numpy_head_stats(p).reshape(-1, 4)).max())
    b.summary(
        row, size="6 x 12 heads, 512 tokens", agreement=f"4 shared metrics: max |Δ| {diff:.0e}"
    )


def main() -> None:
    torch.set_num_threads(2)
    b = Bench("attention")
    model = load_minilm()
    bench_views(b, model)
    bench_flow(b, model)
    bench_head_statistics(b, model)
    b.report()


if __name__ == "__main__":
    main()
